"""The trusted side of an isolated controller: the engine that plays its episodes.

A :class:`Sandbox` owns one container (:mod:`~autotts_gym.isolation.container`) and
sends it *units* of work. A unit is one controller setting playing a set of episodes
that never share a question and split (one seed of one point over the splits); the
container runs each unit in a fresh child process, so nothing the controller learns in
one unit reaches another. For every request the broker

* validates it as untrusted input (JSON; the slot, operation and arguments as plain ints
  in range; a stop reason as a short string),
* applies it to the engine's :class:`~autotts_gym.engine.Episode` (every cost is computed
  here) and counts it against the episode's action limit,
* replies with what the action revealed and nothing else: the value, the touched
  branches' depth, status, latest answer, last probed depth and tokens, the branches
  that finished, the probes revealed.

Answer ids are relabelled per episode by a secret permutation (:func:`relabel`): the
engine's ids follow the order answers first appear in the pool, so raw ids would leak
which answers are common, and equal labels across episodes would link them. The result
of every episode (its correctness included) stays here.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotts_gym.engine import Episode, EpisodeResult
from autotts_gym.engine.protocol import FINISHED, MAX_REASON_CHARS, BudgetExceeded, InvalidAction
from autotts_gym.isolation import wire
from autotts_gym.isolation.container import Container, ContainerLimits

_MAX_LIST = 4096  # longest list argument (branches, bursts) of one request
_MAX_COUNT = 4096  # largest n of open_and_probe_many / read_whole_many, burst
_QUESTION_PREFIX = re.compile(r"^question \d+: ")


class UnitFailed(RuntimeError):
    """The controller's unit of work failed; ``kind`` and ``message`` say how.

    Attributes:
        kind: ``exception``, ``contract``, ``invalid-request``, ``step-limit``, ``timeout``,
            ``cpu-limit``, ``memory``, ``crash``, ``syntax-error``, ``isolation``.
        message: one paragraph for a person (or the LLM that wrote the code).
        where: the episode ``(split, question, seed)`` it happened in, if any.
        frames: the controller file's traceback lines.
    """

    def __init__(self, kind: str, message: str, where: dict[str, Any] | None = None, frames: Sequence[str] = ()):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.where = where or {}
        self.frames = list(frames)
        self.log = ""  # the tail of the container's output, when it is known

    def describe(self) -> str:
        """The message with where it happened and the controller's lines."""
        text = self.message
        if self.where:
            text += " (" + ", ".join(f"{k} {v}" for k, v in self.where.items()) + ")"
        if self.frames:
            text += "\n" + "\n".join("  " + f for f in self.frames)
        return text


@dataclass(frozen=True)
class IsolationLimits:
    """Limits of an isolated run.

    Attributes:
        cpu_seconds: CPU time of one unit of work (one seed of one setting).
        wall_seconds: wall-clock time of a whole container (start-up included).
        max_actions: attempted primitive actions per episode.
        container: what the operating system grants (memory, processes, files, output).
    """

    cpu_seconds: float = 600.0
    wall_seconds: float = 900.0
    max_actions: int = 100_000
    container: ContainerLimits = field(default_factory=ContainerLimits)


def relabel(key: str, split: str, question: int, seed: int, size: int) -> list[int]:
    """The secret permutation of a question's answer ids in one episode, with ``-1``
    mapped to itself (``labels[-1] == -1``)."""
    digest = hashlib.sha256(f"{key}|{split}|{question}|{seed}".encode()).digest()
    labels = list(range(size))
    random.Random(digest).shuffle(labels)
    labels.append(-1)
    return labels


class _Slot:
    """An episode of a unit, with its labels and action allowance."""

    __slots__ = ("episode", "labels", "inverse", "left", "limit", "ended", "where")

    def __init__(self, episode: Episode, labels: list[int], max_actions: int, where: dict[str, Any]) -> None:
        self.episode = episode
        self.labels = labels
        inverse = [0] * len(labels)
        for original, label in enumerate(labels[:-1]):
            inverse[label] = original
        inverse[-1] = -1
        self.inverse = inverse
        self.left = self.limit = max_actions
        self.ended = False
        self.where = where


class Sandbox:
    """A controller's source running in a container, driven by the engine here.

    Args:
        folder: a private temporary folder (the container's stage and log).
        source: the controller module's source.
        filename: how tracebacks name it (``candidate.py``, or the user's path).
        limits: CPU, wall clock, actions and what the OS grants.
    """

    def __init__(self, folder: Path, source: str, filename: str, limits: IsolationLimits) -> None:
        self.limits = limits
        self.started = time.monotonic()
        self.deadline = self.started + limits.wall_seconds
        self.container = Container(folder, source, filename, limits.container, limits.cpu_seconds)
        self.startup_seconds = 0.0
        self.engine_seconds = 0.0  # spent applying actions and replying
        self.requests = 0  # requests served
        kind, *rest = self._control()
        if kind == "syntax-error":
            raise UnitFailed("syntax-error", rest[0])
        if kind != "ready":
            raise UnitFailed("crash", f"the container did not start: {kind}")
        self.startup_seconds = time.monotonic() - self.started

    # ------------------------------------------------------------------ plumbing
    def _remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            self._timeout()
        return left

    def _timeout(self) -> None:
        self.container.kill()
        raise UnitFailed("timeout", f"the controller exceeded its wall-clock limit of {self.limits.wall_seconds:g} s")

    def _control(self) -> list:
        sock = self.container.control
        sock.settimeout(self._remaining())
        try:
            return wire.recv_data(sock)
        except TimeoutError:
            self._timeout()
        except (wire.ChannelClosed, OSError, ValueError, EOFError):
            self.container.kill()
            raise self._died() from None

    def _died(self) -> UnitFailed:
        code = self.container.proc.poll()
        tail = " | ".join(self.container.log_tail(600).strip().splitlines()[-3:])
        return UnitFailed("crash", f"the container ended (exit {code}){': ' + tail if tail else ''}")

    def _start(self, job: dict[str, Any]) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            wire.send_data(self.container.control, job)
            socket.send_fds(self.container.control, [b"u"], [theirs.fileno()])
        except OSError:
            ours.close()
            self.container.kill()
            raise self._died() from None
        finally:
            theirs.close()
        return ours

    def _finish(self, channel: socket.socket) -> str:
        """Close the unit's channel and wait for the zygote to report the child gone."""
        channel.close()
        kind, status = self._control()
        return status

    def _child_status_failure(self, status: str) -> UnitFailed:
        if status in ("signal SIGXCPU", "signal SIGKILL"):
            return UnitFailed(
                "cpu-limit",
                f"the controller used more than its CPU-time limit of {self.limits.cpu_seconds:g} s per unit "
                f"(an endless loop?)",
            )
        tail = " | ".join(self.container.log_tail(600).strip().splitlines()[-3:])
        return UnitFailed("crash", f"the controller's process ended ({status}){': ' + tail if tail else ''}")

    def _receive(self, channel: socket.socket, packed: bool = False) -> Any:
        """The next message of a unit's channel (None if the child closed it): a JSON
        message, or with ``packed`` a batch of requests (:func:`wire.unpack_requests`)."""
        channel.settimeout(self._remaining())
        try:
            payload = wire.recv_frame(channel)
            if packed and payload[:1] != b"[":
                return wire.unpack_requests(payload)
            return json.loads(payload)
        except TimeoutError:
            self._timeout()
        except (wire.ChannelError, ValueError, RecursionError) as err:
            raise UnitFailed(
                "invalid-request", f"the controller's process broke the channel: {str(err)[:200]}"
            ) from None
        except (wire.ChannelClosed, OSError):
            return None

    # ------------------------------------------------------------------ work
    def describe(self, job: dict[str, Any]) -> dict[str, Any]:
        """Load the controller in a fresh child and describe it (class, points)."""
        channel = self._start({"kind": "describe", **job})
        msg = self._receive(channel)
        status = self._finish(channel)
        if msg is None:
            raise self._child_status_failure(status)
        try:
            return _described(msg)
        except UnitFailed as err:
            raise self._explained(err) from None

    def _explained(self, err: UnitFailed) -> UnitFailed:
        """``err`` with the limit it hit spelled out."""
        c = self.limits.container
        if err.kind == "memory":
            err.message = f"the controller exceeded its memory limit of {c.memory_mb:g} MB ({err.message})"
        elif err.kind == "output-limit":
            err.message = (
                f"the controller wrote more than {c.output_bytes} bytes to a file or its output ({err.message})"
            )
        err.args = (err.message,)
        return err

    def play(
        self,
        params: dict[str, Any],
        beta: float | None,
        episodes: Sequence[tuple[Episode, list[int], dict[str, Any]]],
        class_name: str | None = None,
    ) -> list[EpisodeResult]:
        """Play one unit: every episode with the controller built from ``params``.

        Args:
            episodes: ``(episode, labels, where)``; no two share a question of a split.
        """
        slots = [_Slot(e, labels, self.limits.max_actions, where) for e, labels, where in episodes]
        infos = []
        for i, s in enumerate(slots):
            e = s.episode
            q = e.question
            has_conf = q.probe_confidence is not None
            infos.append(
                [i, [e.num_available, e.budget, e.kappa_probe, q.interval_tokens, s.labels[q.no_answer_id], has_conf]]
            )
        channel = self._start(
            {"kind": "play", "params": params, "beta": beta, "class_name": class_name, "episodes": infos}
        )
        try:
            self._serve(channel, slots)
        except UnitFailed as err:
            self.container.kill()  # the run has failed: nothing more to play here
            raise self._explained(err) from None
        status = self._finish(channel)
        if status != "exit 0":
            raise self._child_status_failure(status)
        return [s.episode.result for s in slots]

    def _serve(self, channel: socket.socket, slots: list[_Slot]) -> None:
        unit = Unit(slots)
        while True:
            requests = self._receive(channel, packed=True)
            if requests is None:  # the child died: how, the zygote says
                raise self._child_status_failure(self._finish(channel))
            if requests and requests[0] == "failed":
                raise _reported_failure(requests)
            if not requests:  # an empty batch: the child is done
                unit.check_finished()
                return
            clock = time.perf_counter()
            replies = unit.apply(requests)
            self.engine_seconds += time.perf_counter() - clock
            self.requests += len(requests)
            try:
                wire.send_data(channel, ["replies", replies])
            except OSError:
                raise self._child_status_failure(self._finish(channel)) from None


class Unit:
    """The episodes of one unit as the engine plays them: applies batches of requests
    (from :func:`wire.unpack_requests`) and answers each with what it revealed."""

    def __init__(self, slots: list[_Slot]) -> None:
        self.slots = slots
        self.open = len(slots)
        # A batch holds, per episode, its deferred PRUNEs (each branch once) and one request.
        self.most = sum(s.episode.num_available for s in slots) + 2 * len(slots) + 16

    def apply(self, requests: list) -> list:
        """Apply a batch in order; its replies (:class:`UnitFailed` ends the unit)."""
        if not isinstance(requests[0], list) or len(requests) > self.most:
            raise UnitFailed("invalid-request", "a batch of requests is malformed")
        slots = self.slots
        replies = []
        for request in requests:
            slot, op = request[0], request[1]
            if not 0 <= slot < len(slots) or slots[slot].ended:
                raise UnitFailed("invalid-request", f"a request names no running episode of this unit: {slot}")
            s = slots[slot]
            if op == wire.END or op == wire.FAIL:
                if op == wire.FAIL:
                    message = request[2][:2000] or "the controller raised"
                    raise UnitFailed(_failure_kind(message), message, s.where, request[3].splitlines()[-6:])
                s.ended = True
                self.open -= 1
                if not s.episode.done:  # returned without answering: the aggregation rule
                    s.episode.answer(reason="end")
                replies.append(None)
            else:
                replies.append(_act(s.episode, s, op, request))
        return replies

    def check_finished(self) -> None:
        """Raise :class:`UnitFailed` if an episode is still running."""
        if self.open:
            raise UnitFailed("invalid-request", f"the controller left {self.open} episodes unfinished")


def _over(s: _Slot) -> UnitFailed:
    return UnitFailed("step-limit", f"the episode attempted more than {s.limit} primitive actions", s.where)


def _weight(op: int, request: list) -> int:
    """Primitive actions a request other than continue_and_probe_many attempts
    (composites count their parts)."""
    if op == wire.OPEN_AND_PROBE or op == wire.CONTINUE_AND_PROBE:
        return 2
    if op == wire.OPEN_AND_PROBE_MANY:
        return 2 * max(1, request[2])
    if op == wire.READ_WHOLE_MANY:
        return max(1, request[2])
    return 1


def _int_arg(args: list, i: int, what: str) -> int:
    if len(args) <= i or type(args[i]) is not int:
        raise InvalidAction(f"{what} takes an int, got {type(args[i]).__name__ if len(args) > i else 'nothing'}")
    return args[i]


def _count(args: list, what: str) -> int:
    n = _int_arg(args, 0, what)
    if not 0 <= n <= _MAX_COUNT:
        raise InvalidAction(f"{what}({n}): n must lie in [0, {_MAX_COUNT}]")
    return n


def _act(e: Episode, s: _Slot, op: int, request: list) -> list:
    """Apply an action (a request from :func:`wire.unpack_requests`: plain ints, lists of
    ints, None, strings) to the engine's episode; the reply ``[value, rows, probes,
    error]`` with every answer id relabelled."""
    labels = s.labels
    n0, f0, p0 = len(e._pool), len(e._finished_order), len(e._probe_log)
    touched: Sequence[int] = ()
    value: Any = None
    error = None
    try:
        if op == wire.CONTINUE_AND_PROBE_MANY:  # the hot path of lock-step controllers
            js, bursts = request[2], request[3]
            s.left -= 2 * (sum(bursts) if bursts else len(js))
            if len(js) > _MAX_LIST or (bursts is not None and len(bursts) != len(js)):
                raise InvalidAction(f"continue_and_probe_many takes at most {_MAX_LIST} branches, one burst each")
            if s.left < 0:
                raise _over(s)
            revealed = e.continue_and_probe_many(js, bursts)
            if bursts is None and len(e._probe_log) - p0 == 2 * len(js):
                # Every branch stepped once and probed, none finished: the log's new entries are
                # the branches in order, and each answered what the call returned for it.
                log = e._probe_log
                return [None, None, [log[p0::2], log[p0 + 1 :: 2], list(map(labels.__getitem__, revealed))], None]
        else:
            s.left -= _weight(op, request)
            if s.left < 0:
                raise _over(s)
            args = request[2:]
            if op == wire.OPEN_AND_PROBE:
                j, a = e.open_and_probe()
                value = [j, labels[a]]
            elif op == wire.CONTINUE_AND_PROBE:
                j = _int_arg(args, 0, "continue_and_probe")
                value = labels[e.continue_and_probe(j)]
            elif op == wire.BRANCH:
                value = e.branch()
            elif op == wire.CONTINUE:
                j = _int_arg(args, 0, "continue_branch")
                touched = (j,)
                value = labels[e.continue_branch(j)]
            elif op == wire.PROBE:
                j = _int_arg(args, 0, "probe")
                touched = (j,)
                value = labels[e.probe(j)]
            elif op == wire.PRUNE:
                j = _int_arg(args, 0, "prune")
                touched = (j,)
                e.prune(j)
            elif op == wire.ANSWER:
                label, reason = args[0], args[1]
                if label is None:
                    e.answer(None, reason[:MAX_REASON_CHARS])
                elif not -1 <= label < len(labels) - 1:
                    raise InvalidAction(f"ANSWER({label!r}): an answer is an answer id this episode revealed")
                else:
                    e.answer(s.inverse[label], reason[:MAX_REASON_CHARS])
            elif op == wire.OPEN_AND_PROBE_MANY:
                e.open_and_probe_many(_count(args, "open_and_probe_many"))
            elif op == wire.READ_WHOLE:
                j, a = e.read_whole()
                value = [j, labels[a]]
            elif op == wire.READ_WHOLE_MANY:
                e.read_whole_many(_count(args, "read_whole_many"))
            else:
                raise InvalidAction(f"unknown operation {op}")
    except BudgetExceeded as err:
        error = ("BudgetExceeded", _QUESTION_PREFIX.sub("", str(err)))
    except (InvalidAction, ValueError, IndexError) as err:
        error = ("InvalidAction", _QUESTION_PREFIX.sub("", str(err)))
    rows, probes = _revealed(e, labels, n0, f0, p0, touched)
    return [value, rows, probes, error]


def _revealed(e: Episode, labels: list, n0: int, f0: int, p0: int, touched: Sequence[int]) -> tuple:
    """What an action revealed. Probes as a flat list (branch, depth, label, ...): a probed
    branch is active at that depth with that latest answer. Rows (branch, depth, status,
    latest, tokens) for every other change: opened, finished (in finishing order),
    pruned, or continued without a probe. An unfinished branch's tokens are its depth
    times Delta (the MDP's charge), so only finished branches carry theirs."""
    log = e._probe_log
    pool = e._pool
    probes = None
    end = len(log)
    if end > p0:
        q = e.question
        answer_at = q.answer_at
        js, ds, answers = [], [], []
        for k in range(p0, end, 2):
            j = log[k]
            d = log[k + 1]
            js.append(j)
            ds.append(d)
            answers.append(labels[answer_at[pool[j]][d]])
        probes = [js, ds, answers]
        if q.probe_confidence is not None:
            confs = q.probe_confidence
            probes.append([confs[pool[log[k]]][log[k + 1]] for k in range(p0, end, 2)])
    n1 = len(pool)
    finished = e._finished_order[f0:]
    changed = [*finished]
    if n1 > n0:
        changed += range(n0, n1)
    if touched:
        changed += touched
    rows = None
    if changed:
        depth, status, latest = e._depth, e._status, e._latest
        rows, seen = [], set()
        for j in changed:
            if 0 <= j < n1 and j not in seen:
                seen.add(j)
                tokens = e.branch_tokens(j) if status[j] == FINISHED else 0
                rows.append((j, depth[j], status[j], labels[latest[j]], tokens, j in finished))
    return rows, probes


def _failure_kind(message: str) -> str:
    """``memory`` for a MemoryError, ``output-limit`` for a write beyond the file-size
    limit, ``exception`` for anything else the controller raised."""
    if message.startswith("MemoryError"):
        return "memory"
    if "[Errno 27]" in message:  # EFBIG: RLIMIT_FSIZE
        return "output-limit"
    return "exception"


def _reported_failure(msg: list) -> UnitFailed:
    message = msg[2] if len(msg) > 2 and isinstance(msg[2], str) else "the controller failed"
    kind = msg[1] if len(msg) > 1 and msg[1] in ("contract", "engine") else _failure_kind(message)
    frames = [f for f in (msg[3] if len(msg) > 3 and isinstance(msg[3], list) else []) if isinstance(f, str)]
    return UnitFailed(kind, message[:2000], None, frames[-6:])


def _described(msg: Any) -> dict[str, Any]:
    """The describe reply, validated: only plain JSON data of the expected shape."""
    if isinstance(msg, list) and msg and msg[0] == "failed":
        raise _reported_failure(msg)
    if not (isinstance(msg, list) and len(msg) == 2 and msg[0] == "described" and isinstance(msg[1], dict)):
        raise UnitFailed("invalid-request", "the controller's process answered the description with something else")
    d = msg[1]
    points = d.get("points")
    if not isinstance(points, list) or not points:
        raise UnitFailed("contract", "the controller described no points")
    clean = []
    for p in points:
        if not isinstance(p, dict) or not isinstance(p.get("params"), dict) or not isinstance(p.get("label"), str):
            raise UnitFailed("contract", "a point's description is malformed")
        beta = p.get("beta")
        if beta is not None and type(beta) is not float:
            raise UnitFailed("contract", "a point's beta is not a float")
        clean.append({"label": p["label"][:80], "beta": beta, "params": _plain(p["params"], p["label"])})
    return {
        "class_name": str(d.get("class_name", ""))[:200],
        "name": str(d.get("name", ""))[:200],
        "docstring": str(d.get("docstring", ""))[:20000],
        "points": clean,
    }


def _plain(params: dict, label: str) -> dict[str, Any]:
    """Parameters as plain JSON values (str keys; numbers, strings, bools, None, lists)."""

    def ok(v: Any, depth: int = 0) -> bool:
        if v is None or type(v) in (bool, int, float, str):
            return True
        if type(v) is list and depth < 4 and len(v) <= 1000:
            return all(ok(x, depth + 1) for x in v)
        return False

    for k, v in params.items():
        if type(k) is not str or not ok(v):
            raise UnitFailed(
                "contract", f"{label}: parameter {str(k)[:40]!r} is not plain data (numbers, strings, lists)"
            )
    return params
