"""Runtime guards of a sandbox process: resource limits, an audit hook and restricted
builtins. Installed by the sandbox worker after its own setup (imports, store), before
any candidate code runs.

* :func:`apply_limits`: CPU time (``RLIMIT_CPU``, on top of what setup used), address
  space (``RLIMIT_AS``, on top of what setup mapped), file size (``RLIMIT_FSIZE``: the
  worker's own output; Python ignores SIGXFSZ, so a write beyond fails with EFBIG),
  no core dumps.
* :class:`AuditGuard`: a ``sys.addaudithook`` hook. After setup it blocks opening
  files, imports of modules not yet loaded, sockets, subprocesses, ``os.system`` and
  every other ``os.*`` event, ``ctypes``, frame introspection, and (once the candidate
  module is loaded) ``compile``/``exec``. A blocked event raises
  :class:`SandboxViolation` and is recorded, so a candidate that catches the exception
  still fails its round.
* :func:`restricted_builtins`: the candidate module's builtins: without the forbidden
  names, with an ``__import__`` that admits only whitelisted modules.
"""

from __future__ import annotations

import builtins
import resource
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from agents.discovery.contract import ALLOWED_MODULES, FORBIDDEN_NAMES

# Audit events blocked once setup is over (exact names, then prefixes).
BLOCKED_EVENTS = frozenset(
    {
        "open",
        "import",
        "builtins.input",
        "sys._current_frames",
        "sys.settrace",
        "sys.setprofile",
        "sys.addaudithook",
        "code.__new__",
        "function.__new__",
        "time.sleep",
    }
)
BLOCKED_PREFIXES = (
    "os.",
    "subprocess.",
    "socket.",
    "shutil.",
    "ctypes.",
    "pty.",
    "fcntl.",
    "mmap.",
    "resource.",
    "signal.",
    "syslog.",
    "urllib.",
    "http.",
    "ftplib.",
    "smtplib.",
    "telnetlib.",
    "nntplib.",
    "imaplib.",
    "poplib.",
    "webbrowser.",
    "glob.",
    "tempfile.",
    "sqlite3.",
    "marshal.",
    "pickle.",
    "shelve.",
    "gc.",
    "cpython.",
    "winreg.",
    "msvcrt.",
    "_winapi.",
)
# Blocked only while the controller runs: the module's own load needs them
# (dataclasses and namedtuple generate methods with exec; namedtuple reads its
# caller's frame for __module__).
RUNNING_ONLY = frozenset({"compile", "exec", "object.__getattr__", "sys._getframe"})


class SandboxViolation(RuntimeError):
    """Candidate code attempted something the sandbox forbids."""


class AuditGuard:
    """The sandbox's audit hook; ``phase`` is ``"setup"`` (nothing blocked),
    ``"loading"`` (the candidate module executes) or ``"running"`` (its controller runs).
    """

    def __init__(self) -> None:
        self.phase = "setup"
        self.violations: list[str] = []
        self._trusted = 0

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if self.phase == "setup" or self._trusted:
            return
        if event in RUNNING_ONLY:
            if self.phase == "running":
                self.violation(_describe(event, args))
            return
        if event in BLOCKED_EVENTS or event.startswith(BLOCKED_PREFIXES):
            self.violation(_describe(event, args))

    def violation(self, what: str) -> None:
        """Record a forbidden attempt and raise :class:`SandboxViolation`."""
        self.violations.append(what)
        raise SandboxViolation(f"the sandbox blocked {what}")

    @contextmanager
    def trusted(self) -> Iterator[None]:
        """Let the worker's own code (formatting a traceback) through."""
        self._trusted += 1
        try:
            yield
        finally:
            self._trusted -= 1

    def install(self) -> None:
        """Add the hook to this process (it cannot be removed)."""
        sys.addaudithook(self)


def _describe(event: str, args: tuple[Any, ...]) -> str:
    shown = ", ".join(repr(a)[:60] for a in args[:2])
    return f"{event}({shown})"


def apply_limits(cpu_seconds: float, memory_mb: float, output_bytes: int) -> None:
    """Limit this process from now on: ``cpu_seconds`` more CPU time (SIGXCPU, then
    SIGKILL 5 s later), ``memory_mb`` more address space (allocations beyond raise
    MemoryError), files of at most ``output_bytes`` (writes beyond raise OSError EFBIG),
    no core dumps."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime + cpu_seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 5))
    limit = _address_space() + int(memory_mb * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_FSIZE, (output_bytes, output_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _address_space() -> int:
    # Mapped bytes now (Linux); elsewhere RLIMIT_AS is not enforced anyway.
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * resource.getpagesize()
    except OSError:
        return 0


def restricted_builtins(guard: AuditGuard) -> dict[str, Any]:
    """Builtins for the candidate module: the forbidden names removed, ``__import__``
    limited to whitelisted modules (recorded as a violation otherwise)."""
    real_import: Callable[..., Any] = builtins.__import__

    def guarded_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if level != 0 or name not in ALLOWED_MODULES:
            guard.violations.append(f"import {name!r}")
            raise ImportError(f"import of {name!r} is not allowed in a candidate")
        return real_import(name, globals, locals, fromlist, level)

    names = {k: v for k, v in vars(builtins).items() if k not in FORBIDDEN_NAMES}
    names["__import__"] = guarded_import
    return names
