"""Checks of user-given values at the library's boundaries (``gym.make``, the protocol
options): one sentence naming the argument, what is allowed and what was given."""

from __future__ import annotations

import math
import operator
from typing import Any


def check_budget(name: str, value: Any) -> float | None:
    """A per-episode budget: None (unlimited) or a finite number >= 0 (0 admits only
    ANSWER, an edge case the engine defines)."""
    if value is None:
        return None
    number = _number(name, value, "a finite number >= 0 or None (no budget)")
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{name} must be a finite number >= 0 or None (no budget), got {value!r}")
    return number


def check_nonnegative(name: str, value: Any) -> float:
    """A finite number >= 0 (a cost weight, kappa_probe)."""
    number = _number(name, value, "a finite number >= 0")
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def check_positive_int(name: str, value: Any) -> int:
    """An integer >= 1 (a count)."""
    try:
        number = operator.index(value)  # ints and numpy integers; not floats or strings
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or number < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return number


def _number(name: str, value: Any, allowed: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {allowed}, got {value!r}") from None
