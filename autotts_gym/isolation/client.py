"""The sandbox's side: runs untrusted controller code, holding only what episodes revealed.

This module runs inside the isolated process (see :mod:`autotts_gym.isolation.container`)
and imports nothing that holds data: the standard library, ``greenlet``, the Episode
protocol and the wire format. It has two parts.

* :class:`RemoteEpisode`: the Episode protocol over the channel. Each action is a request
  to the trusted engine; the reply carries what the action revealed (answers, depths,
  statuses, branch tokens as plain numbers), which the episode keeps as its *mirror*;
  views read the mirror. Answer ids are the engine's per-episode labels.
* :func:`main`: the *zygote*. It drops privileges, loads the runtime, compiles the
  controller's source (without running it) and then, for each unit of work the engine
  sends, forks a child that executes the source afresh, runs the unit's episodes (each
  in a greenlet, so one message carries one request per episode in flight) and exits.
  The zygote then kills whatever the child left behind and wipes the scratch folder, so
  nothing survives from one unit to the next.
"""

from __future__ import annotations

import importlib
import math
import os
import signal
import socket
import sys
import traceback
import types
from array import array
from typing import Any

from autotts_gym.engine.protocol import ACTIVE, FINISHED, NO_ANSWER_ID, PRUNED, BudgetExceeded, InvalidAction
from autotts_gym.engine.views import BranchViews
from autotts_gym.isolation import wire

# Operations that open branches (their replies may name branches the mirror lacks).
_OPENING = frozenset(
    {wire.BRANCH, wire.OPEN_AND_PROBE, wire.OPEN_AND_PROBE_MANY, wire.READ_WHOLE, wire.READ_WHOLE_MANY}
)
# Strings of the batch being gathered (stop reasons, error reports), sent with it.
_STRINGS: list[str] = []

_ERRORS = {"InvalidAction": InvalidAction, "BudgetExceeded": BudgetExceeded}


def _set_probed(depth: list, latest: list, probed_at: list, js: list, ds: list, answers: list) -> None:
    """Branch ``js[i]`` was probed at depth ``ds[i]`` and answered ``answers[i]``."""
    for i in range(len(js)):
        j = js[i]
        depth[j] = probed_at[j] = ds[i]
        latest[j] = answers[i]


class RemoteEpisode(BranchViews):
    """An episode played by an engine in another process.

    Args:
        slot: the episode's number in its unit (its name on the channel).
        info: ``(num_available, budget, kappa_probe, interval_tokens, no_answer_id,
            has_confidence)`` as the engine sent them.
        hub: the greenlet that carries requests to the engine.
    """

    # The per-branch lists the views read are BranchViews' slots.
    __slots__ = (
        "_slot",
        "_hub",
        "_available",
        "_budget",
        "_kappa",
        "_delta",
        "_no_answer",
        "_btok",
        "_whole",
        "_probes",
        "_nprobes",
        "_confidence",
        "_prunes",
        "_deferred",
        "_done",
    )

    def __init__(self, slot: int, info: tuple, hub: Any) -> None:
        self._slot = slot
        self._hub = hub
        self._available, self._budget, self._kappa, self._delta, self._no_answer, has_conf = info
        self._depth: list[int] = []
        self._status: list[int] = []
        self._latest: list[int] = []
        self._probed_at: list[int] = []
        self._btok: list[int] = []
        self._whole: set[int] = set()
        self._finals: list[int] = []
        self._finished_order: list[int] = []
        self._probes: list[list] = []  # the replies' probe lists, in order
        self._nprobes = 0
        self._confidence: dict[tuple[int, int], float] | None = {} if has_conf else None
        self._prunes = 0
        self._deferred: list[int] = []  # PRUNEs applied to the mirror, sent with the next request
        self._done = False
        self._active: list[int] = []  # active branches in opening order
        self._vote: tuple[int, tuple[int, int, int]] = (0, (NO_ANSWER_ID, 0, 0))  # (finished, their vote)

    # ------------------------------------------------------------- channel
    def _ask(self, request: list) -> Any:
        """Send ``[slot, op, args...]`` (flat ints: see :mod:`~autotts_gym.isolation.wire`)
        and take in what the reply revealed."""
        try:
            packed = array("q", request)
        except (TypeError, OverflowError):
            raise InvalidAction(
                f"{wire.OP_NAMES[request[1]]}: its arguments are ints, got {request[2:]!r}"[:300]
            ) from None
        deferred = self._deferred
        if not deferred:
            return self._take(request[1], self._hub.switch((packed, 1))[0])
        # PRUNEs reveal nothing: they travel with this request, in order, and their replies
        # only confirm what the mirror already did (an error there is the engine's word).
        packed = array("q", self._flush()) + packed
        replies = self._hub.switch((packed, len(deferred) + 1))
        deferred.clear()
        errors = [r[3] for r in replies[:-1] if r[3] is not None]
        value = self._take(request[1], replies[-1])
        if errors:
            raise _ERRORS.get(errors[0][0], InvalidAction)(errors[0][1])
        return value

    def _flush(self) -> list[int]:
        """The deferred PRUNEs as packed requests."""
        slot, prune = self._slot, wire.PRUNE
        return [x for j in self._deferred for x in (slot, prune, j)]

    def _take(self, op: int, reply: list) -> Any:
        """Take in what a reply revealed; its value, or its error raised."""
        value, rows, probes, error = reply
        if probes:  # (branches, depths, answers[, confidences]): probed, hence active there
            js, ds, answers = probes[0], probes[1], probes[2]
            if op in _OPENING:
                top = max(js)
                if top >= len(self._depth):
                    self._open(top)
            _set_probed(self._depth, self._latest, self._probed_at, js, ds, answers)
            self._probes.append(probes)  # as received; revealed_probes flattens them
            self._nprobes += len(js)
            if self._confidence is not None:
                self._confidence.update(zip(zip(js, ds), probes[3]))
        if rows:
            for j, d, status, latest_answer, tokens, finished in rows:
                if j >= len(self._depth):
                    self._open(j)
                if status != ACTIVE and self._status[j] == ACTIVE:
                    self._active.remove(j)
                self._depth[j] = d
                self._status[j] = status
                self._latest[j] = latest_answer
                self._btok[j] = tokens
                if finished:
                    self._finished_order.append(j)
                    self._finals.append(latest_answer)
        if error is not None:
            kind, message = error
            raise _ERRORS.get(kind, InvalidAction)(message)
        return value

    def _open(self, j: int) -> None:
        """Open branches up to ``j`` in the mirror."""
        n = len(self._depth)
        if j < n:
            return
        k = j + 1 - n
        self._active.extend(range(n, j + 1))
        self._depth.extend([0] * k)
        self._status.extend([ACTIVE] * k)
        self._latest.extend([NO_ANSWER_ID] * k)
        self._probed_at.extend([-1] * k)
        self._btok.extend([0] * k)

    # ------------------------------------------------------------- actions
    def branch(self) -> int:
        """BRANCH: open the next branch, decode its first interval; its number."""
        return self._ask([self._slot, wire.BRANCH])

    def continue_branch(self, j: int) -> int:
        """CONTINUE(j): one more interval; the final answer if it finished, else -1."""
        return self._ask([self._slot, wire.CONTINUE, j])

    def probe(self, j: int) -> int:
        """PROBE(j): reveal branch j's answer at its current depth."""
        return self._ask([self._slot, wire.PROBE, j])

    def prune(self, j: int) -> None:
        """PRUNE(j): deactivate branch j; what it revealed stays."""
        if type(j) is int and not self._done and 0 <= j < len(self._status) and self._status[j] == ACTIVE:
            # Admissible (the engine's own check, on the mirror): apply it here, send it later.
            self._status[j] = PRUNED
            self._active.remove(j)
            self._deferred.append(j)
        else:  # the engine says why not
            self._ask([self._slot, wire.PRUNE, j])
        self._prunes += 1

    def answer(self, answer: int | None = None, reason: str = "answer") -> None:
        """ANSWER: end the episode with a revealed answer id (None: the aggregation rule).
        The result (with its correctness) stays with the engine: returns None."""
        if answer is not None and (type(answer) is not int or not -1 <= answer < 2**62):
            raise InvalidAction(f"ANSWER({answer!r}): an answer is an answer id this episode revealed, a plain int")
        if type(reason) is not str:
            raise InvalidAction(f"a stop reason is a str, not {type(reason).__name__}")
        _STRINGS.append(reason)
        self._ask([self._slot, wire.ANSWER, wire.NONE if answer is None else answer, len(_STRINGS) - 1])
        self._done = True

    def open_and_probe(self) -> tuple[int, int]:
        """BRANCH then PROBE the new branch; ``(branch, answer)``."""
        j, a = self._ask([self._slot, wire.OPEN_AND_PROBE])
        return j, a

    def open_and_probe_many(self, n: int) -> list[int]:
        """:meth:`open_and_probe` ``n`` times; the revealed answers."""
        j0 = len(self._depth)
        self._ask([self._slot, wire.OPEN_AND_PROBE_MANY, n])
        return self._latest[j0:]

    def continue_and_probe(self, j: int) -> int:
        """CONTINUE(j) then PROBE(j) unless it finished; the revealed answer."""
        return self._ask([self._slot, wire.CONTINUE_AND_PROBE, j])

    def continue_and_probe_many(self, branches: Any, bursts: Any = None) -> list[int]:
        """:meth:`continue_and_probe` on each branch in turn (``bursts[i]`` times, cut short
        when it finishes); each branch's last revealed answer."""
        js = list(branches)
        if bursts is None:
            self._ask([self._slot, wire.CONTINUE_AND_PROBE_MANY, len(js), *js, wire.NONE])
        else:
            bursts = list(bursts)
            self._ask([self._slot, wire.CONTINUE_AND_PROBE_MANY, len(js), *js, len(bursts), *bursts])
        latest = self._latest
        return [latest[j] for j in js]

    def read_whole(self) -> tuple[int, int]:
        """Open the next branch and read it whole; ``(branch, final answer)``."""
        j, a = self._ask([self._slot, wire.READ_WHOLE])
        self._whole.add(j)
        return j, a

    def read_whole_many(self, n: int) -> list[int]:
        """:meth:`read_whole` ``n`` times; the final answers."""
        j0 = len(self._depth)
        self._ask([self._slot, wire.READ_WHOLE_MANY, n])
        self._whole.update(range(j0, len(self._depth)))
        return self._latest[j0:]

    # --------------------------------------------------------------- views
    @property
    def done(self) -> bool:
        """True once ANSWER was taken."""
        return self._done

    @property
    def num_available(self) -> int:
        """Branches that can be opened in all."""
        return self._available

    @property
    def can_branch(self) -> bool:
        """True if BRANCH is admissible now."""
        return not self._done and len(self._depth) < self._available and self.remaining_budget >= 1

    @property
    def revealed_probes(self) -> list[tuple[int, int, int]]:
        """Every ``(branch, depth, answer)`` revealed by PROBE, in order."""
        return [t for chunk in self._probes for t in zip(chunk[0], chunk[1], chunk[2])]

    def probe_confidence(self, j: int, depth: int | None = None) -> float:
        """The recorded confidence of a revealed probe; NaN if none."""
        d = self._depth[j] if depth is None else depth
        if self._confidence is None:
            return math.nan
        return self._confidence.get((j, d), math.nan)

    @property
    def tokens(self) -> int:
        """Tokens charged so far: Delta per interval of an unfinished branch, the engine's
        charge of a finished one."""
        return sum(map(self.branch_tokens, range(len(self._depth))))

    def branch_tokens(self, j: int) -> int:
        """Tokens charged to branch j so far."""
        return self._btok[j] if self._status[j] == FINISHED else self._depth[j] * self._delta

    @property
    def sequential_tokens(self) -> int:
        """Tokens of the longest branch so far."""
        return max(map(self.branch_tokens, range(len(self._depth))), default=0)

    @property
    def cost(self) -> float:
        """The MDP cost in intervals: sum of depths + kappa_probe x probes."""
        return sum(self._depth) + self._kappa * self._nprobes

    @property
    def budget(self) -> float | None:
        """The budget in intervals (None: unlimited)."""
        return self._budget

    @property
    def kappa_probe(self) -> float:
        """Cost of one PROBE in intervals."""
        return self._kappa

    @property
    def remaining_budget(self) -> float:
        """Intervals left before the budget binds (inf without budget)."""
        return math.inf if self._budget is None else self._budget - self.cost

    @property
    def num_actions(self) -> int:
        """Primitive actions taken so far (a whole read counts as one)."""
        whole = self._whole
        stepwise = sum(d for j, d in enumerate(self._depth) if j not in whole)
        return stepwise + len(whole) + self._nprobes + self._prunes + self._done

    @property
    def no_answer_id(self) -> int:
        """Id of the no-answer string (``ERR``) in this episode, -1 if none occurs."""
        return self._no_answer

    @property
    def interval_tokens(self) -> int:
        """Delta, tokens per interval."""
        return self._delta

    def answer_text(self, answer: int) -> str:
        """Not available in isolation: answer texts would let episodes be linked."""
        raise InvalidAction(
            "answer_text is not available to an isolated controller (texts would link episodes); "
            "compare answer ids, and use no_answer_id for the no-answer string"
        )


# ======================================================================== the zygote
def _drop_privileges(uid: int) -> None:
    """Become ``uid`` with no capabilities and no way to regain any (root launches only)."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _no_new_privileges() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: setuid binaries grant nothing
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: the zygote cannot be traced by its children


def main(argv: list[str] | None = None) -> None:
    """The zygote: ``python -s -S -c ... CONFIG`` inside the container; talks on the inherited ``control_fd``."""
    import json

    config = json.loads((argv or sys.argv[1:])[0])
    if config.get("uid") is not None:
        _drop_privileges(int(config["uid"]))
    _no_new_privileges()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    control = socket.socket(fileno=int(config["control_fd"]))
    # Everything a controller may use is loaded now, once; children inherit it.
    import greenlet  # noqa: F401

    # What controller files import, loaded once for every child (by name: the runtime
    # itself uses only the core's Controller).
    importlib.import_module("agents.base")
    import autotts_gym.engine  # noqa: F401  (the protocol's names, as candidates import them)
    from autotts_gym.engine.voting import preload_confidence

    with open(os.path.join(os.path.dirname(config["source"]), "confidence.json")) as fh:
        preload_confidence(json.load(fh))
    source = open(config["source"], encoding="utf-8").read()
    filename = config["filename"]
    import linecache

    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as err:
        wire.send_data(control, ["syntax-error", f"{filename}, line {err.lineno}: syntax error: {err.msg}"])
        return
    wire.send_data(control, ["ready"])
    scratch = config["scratch"]
    while True:
        try:
            job = wire.recv_data(control)
            _, fds, _, _ = socket.recv_fds(control, 1, 1)
        except (wire.ChannelClosed, OSError):
            return
        if not fds:
            return
        pid = os.fork()
        if pid == 0:  # the child: runs the controller's code, then leaves
            status = 1
            try:
                control.close()
                _child(code, job, socket.socket(fileno=fds[0]), config)
                status = 0
            finally:
                os._exit(status)
        os.close(fds[0])
        _, status = os.waitpid(pid, 0)
        _sweep(scratch)
        wire.send_data(control, ["exited", _describe_status(status)])


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f"signal {signal.Signals(sig).name}"
    return f"exit {os.WEXITSTATUS(status)}"


def _sweep(scratch: str) -> None:
    """Kill every process the child left behind, then wipe the scratch folder and the
    namespace's System V IPC objects, so nothing carries over to the next unit."""
    while True:
        try:
            os.kill(-1, signal.SIGKILL)  # every process of this namespace but init and us
        except ProcessLookupError:
            pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
        try:
            os.kill(-1, 0)
        except ProcessLookupError:
            break
        os.sched_yield()
    _wipe(scratch)
    _remove_ipc()


def _wipe(folder: str) -> None:
    for entry in os.scandir(folder):
        path = entry.path
        try:
            if entry.is_dir(follow_symlinks=False):
                os.chmod(path, 0o700)
                _wipe(path)
                os.rmdir(path)
            else:
                os.unlink(path)
        except OSError:
            pass


def _remove_ipc() -> None:
    # Shared memory, message queues and semaphores outlive their creator: remove them.
    import ctypes

    libc = None
    for kind, column, remove in (("shm", 1, "shmctl"), ("msg", 1, "msgctl"), ("sem", 1, "semctl")):
        try:
            with open(f"/proc/sysvipc/{kind}") as fh:
                ids = [int(line.split()[column]) for line in fh.readlines()[1:] if line.strip()]
        except OSError:
            continue
        for ipc_id in ids:
            libc = libc or ctypes.CDLL(None)
            if kind == "sem":
                libc.semctl(ipc_id, 0, 0)  # IPC_RMID
            else:
                getattr(libc, remove)(ipc_id, 0, None)


def _child(code: types.CodeType, job: dict, channel: socket.socket, config: dict) -> None:
    """One unit of work in a fresh child: describe the controller, or play episodes."""
    import resource

    cpu = int(config["cpu_seconds"]) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 2))
    job["filename"] = config["filename"]
    try:
        module = _load(code, config["filename"])
        if job["kind"] == "describe":
            wire.send_json(channel, ["described", _describe(module, job)])
        else:
            _play(module, job, channel)
    except _Failure as err:
        wire.send_json(channel, ["failed", err.kind, err.message, err.frames])
    except BaseException as err:  # noqa: B036 - every failure of controller code is a result
        wire.send_json(
            channel, ["failed", "exception", f"{type(err).__name__}: {err}", _frames(err, config["filename"])]
        )


class _Failure(Exception):
    def __init__(self, kind: str, message: str, frames: list[str] | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.frames = kind, message, frames or []


def _frames(err: BaseException, name: str) -> list[str]:
    """The controller file's lines in the traceback, innermost last."""
    return [
        f"{name}, line {f.lineno}, in {f.name}: {(f.line or '').strip()}"
        for f in traceback.extract_tb(err.__traceback__)
        if f.filename == name
    ][-6:]


def _load(code: types.CodeType, filename: str) -> types.ModuleType:
    module = types.ModuleType("candidate")
    module.__file__ = filename
    sys.modules["candidate"] = module  # dataclasses resolves annotations through it
    exec(code, module.__dict__)
    return module


def _controller_class(module: types.ModuleType, name: str | None) -> type:
    from autotts_gym.engine.controller import Controller

    if name:
        cls = module.__dict__.get(name)
        if not (isinstance(cls, type) and issubclass(cls, Controller)):
            raise _Failure("contract", f"{name} is not a Controller subclass defined in the file")
        return cls
    found = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, Controller) and v is not Controller and v.__module__ == "candidate"
    ]
    if len(found) != 1:
        raise _Failure("contract", f"the module must define exactly one Controller subclass, found {len(found)}")
    return found[0]


def _describe(module: types.ModuleType, job: dict) -> dict:
    """The controller class, its docstring and the parameters of every requested point."""
    import dataclasses

    cls = _controller_class(module, job.get("class_name"))
    if job.get("strict"):
        params = getattr(cls, "__dataclass_params__", None)
        if params is None or not params.frozen:
            raise _Failure("contract", f"{cls.__name__} must be a frozen dataclass")
        if not isinstance(cls.name, str) or not cls.name.strip() or cls.name == "controller":
            raise _Failure("contract", f'{cls.__name__} must set name = "..." to its own non-empty string')
    from autotts_gym.engine.controller import coerce_override

    defaults = {f.name: f.default for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
    fields = list(defaults)
    overrides = {k: coerce_override(v, defaults.get(k)) for k, v in job.get("overrides", {}).items()}
    points = []
    if job["mode"] == "grid":
        settings = cls.grid()
        if not isinstance(settings, (list, tuple)) or not 1 <= len(settings) <= job["max_points"]:
            raise _Failure("contract", f"grid() must return a list of 1 to {job['max_points']} dicts of parameters")
        for i, s in enumerate(settings):
            points.append({"label": f"setting {i + 1}", "beta": None, "params": s})
    elif job["mode"] == "betas":
        if not cls.has_schedule():
            raise _Failure("contract", f"{cls.__name__} must define @staticmethod schedule(beta) -> dict")
        for b in job["betas"]:
            params = cls.schedule(float(b))
            if params != cls.schedule(float(b)):
                raise _Failure(
                    "contract", f"schedule({b:g}) returned different parameters on a second call: it must be pure"
                )
            if isinstance(params, dict):
                params = {**params, **overrides}
            points.append({"label": f"beta={b:g}", "beta": float(b), "params": params})
    else:
        points.append({"label": "params", "beta": None, "params": overrides})
    for p in points:
        if not isinstance(p["params"], dict):
            raise _Failure("contract", f"{p['label']}: the parameters must be a dict, got {type(p['params']).__name__}")
        unknown = sorted(set(p["params"]) - set(fields)) if fields else []
        if unknown:
            raise _Failure("contract", f"{p['label']}: {', '.join(map(str, unknown))} are not fields of {cls.__name__}")
        cls(**p["params"])  # constructible
    return {
        "class_name": cls.__name__,
        "name": str(getattr(cls, "name", cls.__name__)),
        "docstring": str(module.__doc__ or "").strip(),
        "points": points,
    }


def play_episodes(controller: Any, episodes: list, exchange: Any, filename: str) -> None:
    """Run ``controller`` on every episode ``(slot, info)``, each in its own greenlet;
    ``exchange(requests) -> replies`` carries one batch to the engine: a request from
    every episode waiting for it (after its deferred PRUNEs)."""
    import greenlet

    hub = greenlet.getcurrent()

    def play_one(episode: RemoteEpisode) -> tuple[array, int]:
        try:
            controller(episode)
        except BaseException as err:  # noqa: B036 - reported, the engine fails the unit
            _STRINGS.append(f"{type(err).__name__}: {err}"[:2000])
            _STRINGS.append("\n".join(_frames(err, filename)))
            return array("q", (episode._slot, wire.FAIL, len(_STRINGS) - 2, len(_STRINGS) - 1)), 1
        return array("q", [*episode._flush(), episode._slot, wire.END]), len(episode._deferred) + 1

    # (greenlet, what to send it): the episode to start with, then the engine's replies to
    # what it handed over: (its packed requests, how many).
    pending = [(greenlet.greenlet(play_one), RemoteEpisode(slot, tuple(info), hub)) for slot, info in episodes]
    while pending:
        requests, waiting, n = [], [], 0
        for g, value in pending:
            packed, count = g.switch(value)
            requests.append(packed)
            if not g.dead:
                waiting.append((n, n + count, g))
            n += count
        replies = exchange(requests)
        pending = [(g, replies[i:j]) for i, j, g in waiting]


def _play(module: types.ModuleType, job: dict, channel: socket.socket) -> None:
    """Run the unit's episodes over the channel (:func:`play_episodes`)."""
    cls = _controller_class(module, job.get("class_name"))
    controller = cls(**job["params"])
    if job.get("beta") is not None:
        try:
            object.__setattr__(controller, "beta", float(job["beta"]))
        except AttributeError:
            pass

    def exchange(requests: list[array]) -> list:
        wire.send_frame(channel, wire.pack_arrays(requests, _STRINGS))
        _STRINGS.clear()
        kind, replies = wire.recv_data(channel)
        if kind != "replies":
            raise _Failure("engine", str(replies))
        return replies

    play_episodes(controller, job["episodes"], exchange, job["filename"])
    wire.send_frame(channel, wire.pack_arrays([], []))  # an empty batch: done
