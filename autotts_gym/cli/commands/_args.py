"""Argument types of the ``autotts`` commands: a bad value stops at parsing with a
sentence that names the flag and what is allowed (argparse prefixes the flag)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _parse(text: str, kind: type) -> float:
    try:
        return kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def at_least(minimum: int) -> Callable[[str], int]:
    """An integer type accepting ``minimum`` and above."""

    def parse(text: str) -> int:
        value = int(_parse(text, int))
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


positive_int = at_least(1)
"""An integer >= 1 (counts: seeds, workers, rounds, questions)."""

nonnegative_int = at_least(0)
"""An integer >= 0 (seeds of a generator, frequencies where 0 means none)."""


def positive_float(text: str) -> float:
    """A finite number > 0 (budgets, time limits)."""
    value = _parse(text, float)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    """A finite number >= 0 (cost weights)."""
    value = _parse(text, float)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def unit_float(text: str) -> float:
    """A number in [0, 1] (betas)."""
    value = _parse(text, float)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {text}")
    return value
