"""The ``autotts`` command line: a thin dispatcher over :mod:`autotts_gym.cli.commands`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from autotts_gym.cli.commands import COMMANDS


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser. Every subcommand is listed; only the one ``argv`` names (all,
    when ``argv`` is None) has its module imported and its arguments added."""
    parser = argparse.ArgumentParser(
        prog="autotts", description="Evaluate, learn and discover test-time-scaling controllers on replayed trajectories."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None) if argv is not None else None
    for name, module_name, help_text in COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if argv is None or name == chosen:
            module = importlib.import_module(f"autotts_gym.cli.commands.{module_name}")
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``autotts``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
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

