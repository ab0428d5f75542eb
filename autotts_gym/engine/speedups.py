"""The optional C loops (``autotts_gym.engine._speedups``) and the switch that turns them off.

``pip install`` builds the extension when a C compiler is available; without it every
caller uses its reference Python, which gives identical results (tests/core/test_speedups.py
runs both). Set ``AUTOTTS_PURE_PYTHON=1`` before importing autotts_gym to force the
Python paths, e.g. to step through them in a debugger.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def _load() -> ModuleType | None:
    if os.environ.get("AUTOTTS_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:  # the optional extension, by name: the package's __init__ is not needed for it
        return importlib.import_module("autotts_gym.engine._speedups")
    except ImportError:
        return None


C: ModuleType | None = _load()


def enabled() -> bool:
    """True if the C loops are in use."""
    return C is not None
