"""Progress bars: tqdm on stderr, on by default (also when stderr is a pipe or a log
file), as users of tqdm-based tools expect. ``--no-progress`` on the command line, or
``TQDM_DISABLE=1`` in the environment, turns them off."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def progress_bar(total: int | None, *, desc: str, unit: str, enabled: bool = True, initial: int = 0) -> Any:
    """A tqdm bar on stderr.

    On a terminal it redraws often and disappears when done; into a pipe or a file it
    redraws every few seconds and stays, so a log shows that the run was alive and how
    far it got.

    Args:
        total: the count when done (None: unknown).
        desc: the bar's label.
        unit: what is counted (``ep``, ``step``, ``q``).
        enabled: False gives a disabled bar (same interface, prints nothing).
        initial: the count already done.
    """
    from tqdm.auto import tqdm

    interactive = sys.stderr.isatty()
    disable = not enabled or os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes")
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        initial=initial,
        file=sys.stderr,
        dynamic_ncols=True,
        disable=disable,
        mininterval=0.1 if interactive else 5.0,
        leave=not interactive,
    )


def add_progress_argument(parser: argparse.ArgumentParser | Any) -> None:
    """``--progress`` / ``--no-progress`` (default: on) on a parser or argument group."""
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="progress bars on stderr (default: on, also when stderr is not a terminal; "
        "--no-progress or TQDM_DISABLE=1 turns them off)",
    )
