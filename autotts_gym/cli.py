"""The ``autotts`` command line: a thin dispatcher over :mod:`autotts_gym.commands`."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

import autotts_gym.commands as commands_pkg


def _command_modules() -> list:
    modules = []
    for info in pkgutil.iter_modules(commands_pkg.__path__):
        if info.name.startswith("_"):
            continue
        modules.append(importlib.import_module(f"{commands_pkg.__name__}.{info.name}"))
    return sorted(modules, key=lambda m: getattr(m, "ORDER", 100))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every discovered subcommand."""
    parser = argparse.ArgumentParser(
        prog="autotts", description="Evaluate, learn and discover test-time-scaling controllers on replayed trajectories."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``autotts``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except BrokenPipeError:
        # The reader (e.g. `| head`) closed the pipe early: not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, RuntimeError) as err:
        # Library errors are sentences that name file, question and field: print, no trace.
        # (A RuntimeError only if it is one of ours: a controller that raised, a failed
        # isolated run, a machine that cannot isolate; anything else is a bug to see.)
        if isinstance(err, RuntimeError) and not type(err).__module__.startswith(("autotts_gym.", "agents.")):
            raise
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        msg = err.describe() if hasattr(err, "describe") else msg
        print(f"autotts {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
