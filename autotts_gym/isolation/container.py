"""The operating-system container of an isolated controller (bubblewrap).

What the process inside holds and may touch is decided here, before any of its code runs:

* **Namespaces** (``bwrap``): its own PID namespace (it sees and can signal only its own
  processes; when the container ends the kernel kills every process left in it), its own
  network namespace (no interface but a down loopback), its own IPC and UTS namespaces,
  and its own mount namespace with a read-only view of exactly: ``/usr``, the Python
  installation (interpreter, standard library, the site-packages that hold numpy, scipy
  and greenlet), and a staged folder with the controller's source and the modules it may
  import (:func:`stage_runtime`). No store, no project, no home folder. A size-limited
  tmpfs at ``/scratch`` is the only writable place.
* **User**: started as root, the container drops to a uid of its own
  (:func:`sandbox_uid`, no capabilities, ``no_new_privs``) before loading anything the
  controller wrote; started as an ordinary user, it runs in a user namespace
  (``--unshare-user --disable-userns``) with no capabilities.
* **Limits** (``setrlimit`` in the launching fork, so the container's first instruction
  already runs under them): address space, processes, open files, file size (its log
  and scratch files), no core dumps. The CPU time of each unit of work is limited by the
  zygote; the wall-clock time of the whole container by the broker.
* **Environment**: cleared; only a fixed PATH, HOME=/scratch, LANG and thread counts.
  Python runs with ``-s -S`` (no user site, no ``site``: no ``.pth`` file or
  ``sitecustomize`` runs) and a ``sys.path`` of read-only folders only.

:func:`support` says whether this machine can provide all of this, and if not, what is
missing, in one sentence.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from autotts_gym.utils.build import pure_python_requested

# Modules the staged runtime holds: (package-relative source, staged path). Controllers
# import agents.base, autotts_gym.engine.voting (or its alias autotts_gym.voting) and the
# protocol's names from autotts_gym.engine; the library's own controllers are there too.
# None of them holds data.
_RUNTIME_FILES = (
    *((f"autotts_gym/engine/{m}.py", f"autotts_gym/engine/{m}.py") for m in ("protocol", "controller", "voting", "views")),
    ("autotts_gym/voting.py", "autotts_gym/voting.py"),
    ("autotts_gym/isolation/wire.py", "autotts_gym/isolation/wire.py"),
    ("autotts_gym/isolation/client.py", "autotts_gym/isolation/client.py"),
    ("agents/base.py", "agents/base.py"),
    # The library's controllers, so a user's controller may build on them.
    *((f"agents/{m}.py", f"agents/{m}.py") for m in ("sc", "asc", "esc", "parallel_probe", "cmc", "dsr", "dsr_lock")),
)
_GENERATED = {
    "autotts_gym/__init__.py": '"""autotts-gym, as an isolated controller sees it: the protocol and voting only."""\n',
    "autotts_gym/isolation/__init__.py": "",
    "agents/__init__.py": '"""Controllers (the base class only, inside the sandbox)."""\n',
    "autotts_gym/engine/__init__.py": (
        '"""The engine\'s public names, as an isolated controller sees them: the protocol only\n'
        '(the engine itself runs in another process)."""\n\n'
        "from autotts_gym.engine.protocol import *  # noqa: F401,F403\n"
        "from autotts_gym.engine.protocol import BudgetExceeded, EpisodeResult, InvalidAction  # noqa: F401\n"
        "\n\ndef __getattr__(name):  # Episode on first use: the client imports this package\n"
        "    if name == 'Episode':\n"
        "        from autotts_gym.isolation.client import RemoteEpisode\n\n"
        "        return RemoteEpisode\n"
        "    raise AttributeError(name)\n"
    ),
}
# Third-party packages the runtime imports (their site-packages folders are mounted).
_PACKAGES = ("numpy", "scipy", "greenlet")

SANDBOX_ROOT = "/sandbox"
# Vote counts up to which the container gets beta confidences precomputed (beyond, it
# loads scipy, which is mounted).
CONFIDENCE_VOTES = 160
SCRATCH = "/scratch"
# Address space the runtime itself maps (the interpreter, greenlet and the staged modules
# map about 25 MB), added to the controller's own memory limit. The limit holds per
# process; max_processes bounds how many there are.
RUNTIME_ADDRESS_SPACE = 256 * 2**20
# Processes of the container's user besides the controller's own: the zygote and the
# child running a unit.
RUNTIME_PROCESSES = 2

_BOOT = (
    "import sys, json; c = json.loads(sys.argv[1]); sys.path[:] = c['path']; "
    "from autotts_gym.isolation.client import main; main(sys.argv[1:])"
)


class IsolationUnavailable(RuntimeError):
    """This machine cannot contain a controller (the message says what is missing)."""


@dataclass(frozen=True)
class ContainerLimits:
    """What the operating system grants the container.

    Attributes:
        memory_mb: address space for the controller, on top of the runtime's.
        max_processes: processes the controller may add (forks, threads count too).
        open_files: file descriptors per process.
        output_bytes: largest file it may write (its log, scratch files).
        scratch_bytes: size of the /scratch tmpfs.
        contain: False runs the controller's process without the container (no
            namespaces, no private mounts: it can read files and use the network) and
            only with the limits above. For machines without namespaces, and only when
            the user asks for it by its loud name.
    """

    memory_mb: float = 2048.0
    max_processes: int = 4
    open_files: int = 64
    output_bytes: int = 64 * 2**20
    scratch_bytes: int = 16 * 2**20
    contain: bool = True


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def stage_runtime(folder: Path, source: str) -> Path:
    """Write the read-only tree the container sees at /sandbox: the runtime modules and
    ``candidate.py``. Returns the tree's root."""
    root = folder / "sandbox"
    repo = _repo_root()
    for src, dst in _RUNTIME_FILES:
        target = root / "lib" / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(repo / src, target)
        for suffix in () if pure_python_requested() else EXTENSION_SUFFIXES:  # its compiled build, if built
            compiled = (repo / src).with_suffix(suffix)
            if compiled.exists():
                shutil.copyfile(compiled, target.with_suffix(suffix))
    for dst, text in _GENERATED.items():
        (root / "lib" / dst).write_text(text)
    (root / "candidate.py").write_text(source, encoding="utf-8")
    # Beta confidences computed here, so the container need not load scipy to vote.
    (root / "confidence.json").write_text(json.dumps(_confidences()))
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


@cache
def _confidences() -> list[list[float]]:
    from autotts_gym.engine.voting import confidence_table

    return confidence_table(CONFIDENCE_VOTES)


def _python_mounts() -> list[str]:
    """Folders of the Python installation the container needs, read-only."""
    folders = {sys.base_prefix, sys.prefix, str(Path(sys.executable).resolve().parent.parent)}
    for name in _PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            raise IsolationUnavailable(f"the isolated runtime needs the Python package {name!r}: pip install {name}")
        folders.add(str(Path(spec.origin).resolve().parent.parent))
    # Drop folders inside others, and /usr (mounted anyway).
    kept = sorted(folders)
    kept = [f for f in kept if not any(f != g and f.startswith(g.rstrip("/") + "/") for g in kept)]
    return [f for f in kept if not (f == "/usr" or f.startswith("/usr/"))]


def _python_path(root: str) -> list[str]:
    paths = sysconfig.get_paths()
    out = [f"{root}/lib", paths["stdlib"], paths["platstdlib"]]
    out += [p for p in sys.path if p.endswith("lib-dynload")]
    for name in _PACKAGES:
        spec = importlib.util.find_spec(name)
        out.append(str(Path(spec.origin).resolve().parent.parent))
    seen: list[str] = []
    for p in out:
        if p not in seen:
            seen.append(p)
    return seen


def _ancestors(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


_UIDS = itertools.count()


def sandbox_uid() -> int:
    """A uid no account uses, fresh for every container of this process (root only), so
    containers cannot signal or share process limits with each other."""
    return 0x70000000 + (os.getpid() % 0x10000) * 0x100 + next(_UIDS) % 0x100


def bwrap_command(stage: Path, privileged: bool, scratch_bytes: int) -> list[str]:
    """The ``bwrap`` arguments of a container over the staged tree ``stage``."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise IsolationUnavailable(_MISSING_BWRAP)
    cmd = [bwrap, "--die-with-parent", "--new-session"]
    if privileged:
        cmd += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        cmd += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        cmd += ["--unshare-all", "--unshare-user", "--disable-userns"]
    cmd += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/lib", "/lib64", "/sbin", "/lib32", "/libx32"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            cmd += ["--ro-bind", top, top]
    made: set[str] = {"/usr"}
    for folder in [*_python_mounts(), SANDBOX_ROOT]:
        for parent in _ancestors(folder + "/x"):
            if parent not in made and not parent.startswith("/usr"):
                cmd += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        source = str(stage) if folder == SANDBOX_ROOT else folder
        cmd += ["--ro-bind", source, folder]
        made.add(folder)
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    cmd += ["--perms", "1777", "--size", str(int(scratch_bytes)), "--tmpfs", SCRATCH]
    cmd += ["--chdir", SCRATCH, "--clearenv"]
    for k, v in _PLAIN_ENV.items():
        cmd += ["--setenv", k, v]
    return cmd


# The container's whole environment: no API key or other secret of the caller's.
_PLAIN_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": SCRATCH,
    "LANG": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

_MISSING_BWRAP = (
    "isolation needs bubblewrap (the `bwrap` command), which is not installed: "
    "apt-get install bubblewrap (Debian/Ubuntu) or dnf install bubblewrap (Fedora)"
)


@cache
def support() -> str | None:
    """None if this machine can run isolated controllers, else one sentence saying what
    is missing."""
    if not sys.platform.startswith("linux"):
        return f"isolation needs Linux namespaces; this is {sys.platform}"
    if shutil.which("bwrap") is None:
        return _MISSING_BWRAP
    for name in _PACKAGES:
        if importlib.util.find_spec(name) is None:
            return f"the isolated runtime needs the Python package {name!r}: pip install {name}"
    privileged = _privileged()
    with tempfile.TemporaryDirectory(prefix="autotts-probe-") as tmp:
        stage = Path(tmp) / "sandbox"
        stage.mkdir()
        cmd = bwrap_command(stage, privileged, 2**20) + [sys.executable, "-s", "-S", "-c", "pass"]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"bubblewrap could not start a container: {err}"
    if proc.returncode != 0:
        why = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        hint = (
            ""
            if privileged
            else " (unprivileged user namespaces may be disabled: sysctl kernel.unprivileged_userns_clone=1 "
            "or user.max_user_namespaces > 0)"
        )
        return f"bubblewrap could not start a container: {why[0]}{hint}"
    return None


def _privileged() -> bool:
    """Start bwrap privileged (as root) and drop to a uid of the container's own; else
    bwrap makes a user namespace, as it does for ordinary users.
    ``AUTOTTS_ISOLATION_USERNS=1`` takes the ordinary user's way as root too (tests)."""
    return os.geteuid() == 0 and os.environ.get("AUTOTTS_ISOLATION_USERNS", "") in ("", "0")


def _count_processes(uid: int) -> int:
    n = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    n += 1
            except OSError:
                pass
    return n


class Container:
    """A running container: the zygote of :mod:`autotts_gym.isolation.client`.

    Args:
        folder: a private temporary folder of the caller (the stage and the log go there).
        source: the controller module's source.
        filename: the name tracebacks give the source.
        limits: what the OS grants.
        cpu_seconds: CPU time of each unit of work.
    """

    def __init__(self, folder: Path, source: str, filename: str, limits: ContainerLimits, cpu_seconds: float) -> None:
        missing = support() if limits.contain else None
        if missing:
            raise IsolationUnavailable(missing)
        self.folder = folder
        stage = stage_runtime(folder, source)
        privileged = _privileged() and limits.contain
        root, scratch = (SANDBOX_ROOT, SCRATCH) if limits.contain else (str(stage), str(folder / "scratch"))
        self.uid = sandbox_uid() if privileged else os.getuid()
        if privileged:
            folder.chmod(0o711)  # the container's user must traverse it to reach the stage
        config = {
            "path": _python_path(root),
            "uid": self.uid if privileged else None,
            "source": f"{root}/candidate.py",
            "filename": filename,
            "scratch": scratch,
            "cpu_seconds": cpu_seconds,
        }
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        config["control_fd"] = theirs.fileno()
        info_read, info_write = os.pipe()
        if limits.contain:
            cmd = bwrap_command(stage, privileged, limits.scratch_bytes) + ["--info-fd", str(info_write)]
        else:
            os.mkdir(scratch, 0o700)
            cmd = []
        cmd += [sys.executable, "-s", "-S", "-c", _BOOT, json.dumps(config)]
        self.log_path = folder / "log.txt"
        nproc = RUNTIME_PROCESSES + limits.max_processes + (0 if privileged else _count_processes(self.uid))
        address_space = RUNTIME_ADDRESS_SPACE + int(limits.memory_mb * 2**20)

        def apply_limits() -> None:  # in the fork, before bwrap and the zygote exist
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
            resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.output_bytes, limits.output_bytes))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(theirs.fileno(), info_write),
                preexec_fn=apply_limits,
                start_new_session=True,
                cwd=None if limits.contain else scratch,
                env=None if limits.contain else _PLAIN_ENV,
            )
        theirs.close()
        os.close(info_write)
        self.control = ours
        self.namespace = self._namespace(info_read) if limits.contain else None

    def _namespace(self, info_fd: int) -> str | None:
        """The container's PID namespace, from what bwrap reports on its info fd."""
        with os.fdopen(info_fd, "rb") as fh:
            text = fh.read()  # bwrap closes it once the container is set up
        try:
            self.init_pid = int(json.loads(text)["child-pid"])
            return os.readlink(f"/proc/{self.init_pid}/ns/pid")
        except (ValueError, KeyError, OSError):
            return None

    def processes(self) -> list[int]:
        """Live processes of the container's PID namespace (without zombies)."""
        if self.namespace is None:
            return []
        found = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if os.readlink(f"/proc/{entry.name}/ns/pid") == self.namespace:
                        with open(f"/proc/{entry.name}/stat") as fh:
                            if fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                                found.append(int(entry.name))
                except OSError:
                    pass
        return found

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the container's live processes and the children they
        reaped (the zygote reaps every unit's process)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.processes():
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    total += sum(map(int, fh.read().rsplit(")", 1)[1].split()[11:15]))  # utime .. cstime
            except OSError:
                pass
        return total / tick

    def log_tail(self, chars: int = 4000) -> str:
        """The end of what the container printed."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(max(0, os.path.getsize(self.log_path) - chars))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """End the container and every process in it, and check that they are gone."""
        if self.namespace is not None:
            try:  # the namespace's init: the kernel kills the whole namespace with it
                if os.readlink(f"/proc/{self.init_pid}/ns/pid") == self.namespace:
                    os.kill(self.init_pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        self._reap()

    def _reap(self) -> None:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            left = self.processes()
            if not left:
                return
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.01)
        raise RuntimeError(f"processes {self.processes()} of a container outlived it")

    def close(self) -> None:
        """Ask the zygote to leave, then make sure the container is gone."""
        try:
            self.control.close()
        finally:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
            self._reap()
