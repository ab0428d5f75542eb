"""Which build of the engine runs: compiled (Cython, from the same ``.py`` files) or plain
Python, and the switch ``AUTOTTS_PURE_PYTHON=1`` that makes the package import every
module from its ``.py`` source even where a compiled build sits beside it (to step
through the engine in a debugger, or to compare the two builds)."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

PACKAGE = "autotts_gym"


def pure_python_requested() -> bool:
    """True if ``AUTOTTS_PURE_PYTHON`` is set (to anything but ``0``)."""
    return os.environ.get("AUTOTTS_PURE_PYTHON", "") not in ("", "0")


def is_compiled(module: ModuleType) -> bool:
    """True if ``module`` was loaded from a compiled build."""
    return isinstance(getattr(module, "__loader__", None), importlib.machinery.ExtensionFileLoader)


class SourceFirst(importlib.abc.MetaPathFinder):
    """Finds the package's modules as usual, but loads a module from its ``.py`` file when
    the usual finder would load a compiled one."""

    def find_spec(self, fullname: str, path, target=None):  # noqa: ANN001 (the finder protocol)
        if not fullname.startswith(PACKAGE + "."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            return spec
        source = Path(spec.origin).parent / (fullname.rpartition(".")[2] + ".py")
        return importlib.util.spec_from_file_location(fullname, source) if source.is_file() else spec


def install_source_first() -> None:
    """Import the package's modules from their sources from now on (idempotent)."""
    if not any(isinstance(finder, SourceFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, SourceFirst())
