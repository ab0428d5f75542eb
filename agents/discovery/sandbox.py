"""Isolated evaluation of a candidate controller's sweep.

:func:`evaluate_candidate` statically checks the candidate, then runs its beta sweep
(or its free-parameter grid) in separate processes (``python -m
agents.discovery.sandbox JOB RESULT``, a fresh interpreter with a minimal environment:
no API keys) with

* a CPU-time limit and an address-space limit (:func:`~agents.discovery.guards.apply_limits`),
  a wall-clock timeout enforced by the parent, a limit on the worker's output;
* a per-episode step limit (:class:`~agents.discovery.view.EpisodeView` counts
  attempted primitive actions);
* an audit hook blocking files, sockets, subprocesses, ``os.*`` and the like, and
  restricted builtins (:mod:`~agents.discovery.guards`).

The evaluation itself is :func:`autotts_gym.evaluation.evaluate_many` on the search
splits. Whatever goes wrong (syntax error, forbidden import, exception, timeout,
infinite loop, memory bomb, forbidden file or socket access, step limit) comes back as
a :class:`SweepOutcome` with ``ok=False`` and a diagnostic; nothing is raised.

With traces on, the worker also replays the most informative episodes of its best point
with the engine's trace on and returns them annotated (:mod:`~agents.discovery.traces`).
"""

from __future__ import annotations

import dataclasses
import errno
import importlib
import json
import linecache
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agents.base import Controller
from agents.discovery import guards
from agents.discovery.checks import CandidateRejected, check_candidate
from agents.discovery.contract import ALLOWED_MODULES
from agents.discovery.traces import annotate, choose_episodes
from agents.discovery.view import StepLimitExceeded, ViewedController
from autotts_gym.evaluation import evaluate_many, make_options
from autotts_gym.store import load_store
from autotts_gym.voting import beta_confidence

CANDIDATE_FILE = "candidate.py"
LOG_TAIL_CHARS = 4000


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one sandbox process.

    Attributes:
        cpu_seconds: CPU time for loading and evaluating the candidate.
        wall_seconds: wall-clock time for the whole process, start-up included.
        memory_mb: address space the candidate may add to the worker's.
        max_actions: attempted primitive actions per episode.
        output_bytes: largest file the worker may write (its log, its result).
    """

    cpu_seconds: float = 600.0
    wall_seconds: float = 900.0
    memory_mb: float = 2048.0
    max_actions: int = 100_000
    output_bytes: int = 64 * 2**20


@dataclass(frozen=True)
class SweepJob:
    """What to evaluate a candidate on.

    Attributes:
        store: the store source (``load_store``: None/"default", a folder, release JSON).
        splits: split patterns of the store (the search splits).
        betas: the sweep (in free-parameter mode: at most this many grid settings).
        seeds: episode seeds.
        shuffle, subsample, budget_tokens: the protocol (see ``EpisodeOptions``).
        free_params: the candidate declares ``grid()`` instead of ``schedule(beta)``.
        trace_episodes: informative episodes to trace at the best point (0: none).
    """

    store: str | None
    splits: tuple[str, ...]
    betas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    seeds: tuple[int, ...] = tuple(range(20))
    shuffle: str = "release"
    subsample: int | None = None
    budget_tokens: float | None = None
    free_params: bool = False
    trace_episodes: int = 3


@dataclass
class SweepOutcome:
    """The result of evaluating one candidate.

    Attributes:
        ok: True if every point was evaluated.
        failure: ``{"stage", "kind", "message"}`` when not ok.
        candidate: class name, name and docstring (when the module loaded).
        points: per evaluated point: index, label, beta, params, mean accuracy (percent),
            tokens and sequential tokens over the splits, and ``splits`` (split name ->
            evaluation summary dict).
        traces: annotated traces of the traced point.
        seconds: wall time of the whole evaluation.
        log: the tail of the sandbox processes' output.
        timing: seconds per phase of the sandbox process (the slowest shard): ``startup``
            (interpreter and imports), ``setup`` (store), ``load``, ``evaluate``, ``trace``.
    """

    ok: bool
    failure: dict[str, str] | None = None
    candidate: dict[str, Any] = field(default_factory=dict)
    points: list[dict[str, Any]] = field(default_factory=list)
    traces: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    log: str = ""
    timing: dict[str, float] = field(default_factory=dict)


def failed(stage: str, kind: str, message: str, **extra: Any) -> SweepOutcome:
    """A failed outcome."""
    return SweepOutcome(ok=False, failure={"stage": stage, "kind": kind, "message": message}, **extra)


def evaluate_candidate(
    source: str,
    job: SweepJob,
    limits: SandboxLimits | None = None,
    *,
    workers: int = 1,
    static_check: bool = True,
) -> SweepOutcome:
    """Check and evaluate a candidate module in sandbox processes.

    Args:
        source: the candidate module's source.
        job: store, splits, sweep and protocol.
        limits: per-process limits.
        workers: sandbox processes (the points are shared among them).
        static_check: run the static check first (tests switch it off to reach the
            runtime guards with code the static check would reject).
    """
    limits = limits or SandboxLimits()
    started = time.perf_counter()
    if static_check:
        try:
            check_candidate(source, CANDIDATE_FILE, free_params=job.free_params)
        except CandidateRejected as err:
            return failed("static", err.kind, err.message, seconds=time.perf_counter() - started)
    folder = Path(tempfile.mkdtemp(prefix="autotts-sandbox-"))
    try:
        (folder / CANDIDATE_FILE).write_text(source, encoding="utf-8")
        shards = max(1, min(workers, len(job.betas)))
        results, logs = _run_shards(folder, job, limits, shards)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    outcome = _merge(results)
    outcome.log = "\n".join(logs)[-LOG_TAIL_CHARS:]
    outcome.seconds = time.perf_counter() - started
    return outcome


def _run_shards(
    folder: Path, job: SweepJob, limits: SandboxLimits, shards: int
) -> tuple[list[SweepOutcome], list[str]]:
    """Start one worker per shard, wait within the wall-clock limit, collect results."""
    procs = []
    for shard in range(shards):
        spec = {
            "job": asdict(job),
            "limits": asdict(limits),
            "candidate": str(folder / CANDIDATE_FILE),
            "shard": [shard, shards],
        }
        job_path = folder / f"job-{shard}.json"
        job_path.write_text(json.dumps(spec))
        log = open(folder / f"log-{shard}.txt", "wb")
        cmd = [sys.executable, "-m", "agents.discovery.sandbox", str(job_path), str(folder / f"result-{shard}.json")]
        proc = subprocess.Popen(
            cmd, cwd=folder, env=_child_env(folder), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        procs.append((proc, log))
    launched = time.monotonic()
    deadline = launched + limits.wall_seconds
    results, logs = [], []
    for shard, (proc, log) in enumerate(procs):
        timed_out = False
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            proc.wait()
        log.close()
        text = (folder / f"log-{shard}.txt").read_bytes()[-LOG_TAIL_CHARS:].decode("utf-8", "replace")
        logs.append(text)
        result = _shard_result(folder / f"result-{shard}.json", proc.returncode, timed_out, limits, text)
        if result.timing:
            # Start-up is what the process took beyond the phases it measured itself.
            result.timing["startup"] = round(time.monotonic() - launched - sum(result.timing.values()), 3)
        results.append(result)
    return results, logs


def _child_env(folder: Path) -> dict[str, str]:
    """A minimal environment: no API keys or other secrets reach candidate code."""
    root = str(Path(__file__).resolve().parents[2])
    path = [root, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join(path),
        "HOME": str(folder),
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _shard_result(path: Path, returncode: int, timed_out: bool, limits: SandboxLimits, log: str) -> SweepOutcome:
    if timed_out:
        return failed("evaluate", "timeout", f"the sandbox exceeded its wall-clock limit of {limits.wall_seconds:g} s")
    if path.is_file() and path.stat().st_size:
        try:
            data = json.loads(path.read_text())
        except ValueError:
            data = None
        if isinstance(data, dict):
            return SweepOutcome(**data)
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return failed(
            "evaluate",
            "cpu-limit",
            f"the candidate used more than its CPU-time limit of {limits.cpu_seconds:g} s (an endless loop?)",
        )
    tail = log.strip().splitlines()[-3:]
    return failed(
        "evaluate", "crash", f"the sandbox process exited with code {returncode}: {' | '.join(tail) or 'no output'}"
    )


def _merge(results: list[SweepOutcome]) -> SweepOutcome:
    """One outcome from the shards' outcomes: the first failure, or all points."""
    for r in results:
        if not r.ok:
            return r
    points = sorted((p for r in results for p in r.points), key=lambda p: p["index"])
    best = best_point(points)
    traced = [r.traces for r in results if r.traces]
    traces = next(
        (t for t in traced if t and t[0].get("point") == (best or {}).get("label")), traced[0] if traced else []
    )
    timing = {k: max(r.timing.get(k, 0.0) for r in results) for k in results[0].timing}
    return SweepOutcome(ok=True, candidate=results[0].candidate, points=points, traces=traces, timing=timing)


def best_point(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The point with the highest mean accuracy, ties to fewer mean tokens, then the
    earlier point."""
    if not points:
        return None
    return min(points, key=lambda p: (-round(p["accuracy"], 9), round(p["tokens"], 6), p["index"]))


# =============================================================================== worker
def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """The sandbox process: set up, lock down, load the candidate, evaluate, trace."""
    started = time.perf_counter()
    # ---- setup: everything the candidate or this worker will touch is imported now,
    # before the guard forbids loading modules.
    for name in sorted(ALLOWED_MODULES):
        importlib.import_module(name)
    import scipy.special  # noqa: F401  (beta_confidence imports it lazily)

    beta_confidence(1, 0)
    job = SweepJob(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec["job"].items()})
    limits = SandboxLimits(**spec["limits"])
    try:
        splits = load_store(job.store).select(list(job.splits))
    except (ValueError, KeyError, OSError) as err:
        return asdict(failed("setup", "setup-error", f"the search splits could not be loaded: {err}"))
    options = make_options(job.seeds, job.shuffle, job.subsample, job.budget_tokens)
    path = spec["candidate"]
    source = Path(path).read_text(encoding="utf-8")
    linecache.cache[path] = (len(source), None, source.splitlines(True), path)
    try:
        code = compile(source, path, "exec")  # now: a syntax error's report reads the file
    except SyntaxError as err:
        return asdict(failed("load", "syntax-error", f"{CANDIDATE_FILE}, line {err.lineno}: syntax error: {err.msg}"))
    shard, shards = spec["shard"]

    # ---- lock down.
    guard = guards.AuditGuard()
    guard.install()
    guards.apply_limits(limits.cpu_seconds, limits.memory_mb, limits.output_bytes)
    guard.phase = "loading"
    run = _CandidateRun(guard, path, limits)
    run.timing["setup"] = round(time.perf_counter() - started, 3)
    return run.execute(code, job, splits, options, shard, shards)


class _CandidateRun:
    """Loading, checking and evaluating the candidate under the guard; any failure
    becomes a failed outcome with a diagnostic."""

    def __init__(self, guard: Any, path: str, limits: SandboxLimits) -> None:
        self.guard = guard
        self.path = path
        self.limits = limits
        self.stage = "load"
        self.wrappers: list[Any] = []
        self.timing: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, name: str) -> None:
        """Record the seconds since the last lap under ``name``."""
        now = time.perf_counter()
        self.timing[name] = round(now - self._clock, 3)
        self._clock = now

    def execute(
        self, code: Any, job: SweepJob, splits: list[Any], options: Any, shard: int, shards: int
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {}
        self._clock = time.perf_counter()
        try:
            cls, docstring = self.load(code)
            candidate = {"class_name": cls.__name__, "name": cls.name, "docstring": docstring}
            self.guard.phase = "running"
            points = _points(cls, job)
            self.lap("load")
            self.stage = "evaluate"
            mine = [p for p in points if p["index"] % shards == shard]
            evaluated = self.evaluate(cls, mine, splits, options)
            self.lap("evaluate")
            self.stage = "trace"
            traces = self.trace(evaluated, job, options) if job.trace_episodes > 0 else []
            self.lap("trace")
            if self.guard.violations:
                raise _Violation()
            points_out = [{k: v for k, v in p.items() if k != "evaluations"} for p in evaluated]
            outcome = SweepOutcome(ok=True, candidate=candidate, points=points_out, traces=traces, timing=self.timing)
            return asdict(outcome)
        except BaseException as err:  # noqa: B036 - every failure of candidate code is a result
            with self.guard.trusted():
                return asdict(self.failure(err, candidate))

    def load(self, code: Any) -> tuple[type, str]:
        """Execute the candidate module with restricted builtins; its controller class
        and docstring."""
        module = types.ModuleType("candidate")
        module.__file__ = self.path
        module.__dict__["__builtins__"] = guards.restricted_builtins(self.guard)
        sys.modules["candidate"] = module  # dataclasses resolves annotations through it
        exec(code, module.__dict__)
        self.stage = "contract"
        found = [
            v
            for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, Controller) and v is not Controller and v.__module__ == "candidate"
        ]
        if len(found) != 1:
            raise _ContractError(f"the module must define exactly one Controller subclass, found {len(found)}")
        cls = found[0]
        params = getattr(cls, "__dataclass_params__", None)
        if params is None or not params.frozen:
            raise _ContractError(f"{cls.__name__} must be a frozen dataclass")
        if not isinstance(cls.name, str) or not cls.name.strip() or cls.name == Controller.name:
            raise _ContractError(f'{cls.__name__} must set name = "..." to its own non-empty string')
        return cls, str(module.__doc__ or "").strip()

    def evaluate(
        self, cls: type, points: list[dict[str, Any]], splits: list[Any], options: Any
    ) -> list[dict[str, Any]]:
        """Every point on every split in one ``evaluate_many`` call."""
        cells = []
        for p in points:
            controller = cls(**p["params"])
            wrapper = ViewedController(controller, self.limits.max_actions, p["label"], p["beta"])
            self.wrappers.append(wrapper)
            cells.extend((wrapper, s) for s in splits)
        evaluations = evaluate_many(cells, options, workers=1)
        per_point = len(splits)
        for i, p in enumerate(points):
            evs = evaluations[i * per_point : (i + 1) * per_point]
            p["evaluations"] = evs
            p["splits"] = {ev.split.name: ev.summary.as_dict() for ev in evs}
            for key in ("accuracy", "tokens", "sequential_tokens"):
                p[key] = sum(getattr(ev.summary, key) for ev in evs) / len(evs)
        return points

    def trace(self, points: list[dict[str, Any]], job: SweepJob, options: Any) -> list[dict[str, Any]]:
        """Replay the informative episodes of this shard's best point with traces on."""
        best = best_point(points)
        if best is None:
            return []
        out = []
        evaluations = best["evaluations"]
        for i, q, seed, why in choose_episodes(evaluations, job.trace_episodes):
            wrapper, split = evaluations[i].controller, evaluations[i].split
            episode = options.episode(split, q, seed, trace=True)
            result = wrapper(episode)
            out.append(
                annotate(
                    episode.trace, split.question(q), result, split=split.name, seed=seed, point=best["label"], why=why
                )
            )
        return out

    def failure(self, err: BaseException, candidate: dict[str, Any]) -> SweepOutcome:
        """The failed outcome of an exception, with where it happened."""
        violations = self.guard.violations
        if violations:
            kind = "forbidden-import" if violations[0].startswith("import") else "sandbox-violation"
            message = f"the candidate attempted a forbidden operation: {violations[0]}"
        elif isinstance(err, _ContractError):
            kind, message = "contract", str(err)
        elif isinstance(err, StepLimitExceeded):
            kind, message = "step-limit", f"{err} (the limit is {self.limits.max_actions})"
        elif isinstance(err, MemoryError):
            kind, message = (
                "memory",
                f"the candidate exceeded the memory limit of {self.limits.memory_mb:g} MB (MemoryError)",
            )
        elif isinstance(err, OSError) and err.errno == errno.EFBIG:
            kind, message = "output-limit", f"the candidate's output exceeded {self.limits.output_bytes} bytes"
        elif isinstance(err, guards.SandboxViolation):
            kind, message = "sandbox-violation", str(err)
        else:
            kind, message = "exception", f"{type(err).__name__}: {err}"
        where = self.where()
        frames = self.candidate_frames(err)
        text = message + (f" ({where})" if where else "") + (("\n" + frames) if frames else "")
        return failed(self.stage, kind, text, candidate=candidate)

    def where(self) -> str:
        for w in self.wrappers:
            if w.current is not None:
                e = w.current
                return f"at {w.label}, question {e.question.index}, after {e.num_actions} actions"
        return ""

    def candidate_frames(self, err: BaseException) -> str:
        frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == self.path]
        return "\n".join(
            f"  {CANDIDATE_FILE}, line {f.lineno}, in {f.name}: {(f.line or '').strip()}" for f in frames[-4:]
        )


class _ContractError(Exception):
    """The loaded module breaks the candidate contract."""


class _Violation(Exception):
    """A violation was recorded although the candidate swallowed the exception."""


def _points(cls: Any, job: SweepJob) -> list[dict[str, Any]]:
    """The points of the sweep: one per beta, or one per declared grid setting."""
    fields = {f.name for f in dataclasses.fields(cls)}
    if job.free_params:
        settings = cls.grid()
        if not isinstance(settings, (list, tuple)) or not 1 <= len(settings) <= len(job.betas):
            raise _ContractError(f"grid() must return a list of 1 to {len(job.betas)} dicts of parameters")
        labelled = [(f"setting {i + 1}", None, s) for i, s in enumerate(settings)]
    else:
        if not cls.has_schedule():
            raise _ContractError(f"{cls.__name__} must define @staticmethod schedule(beta) -> dict")
        labelled = []
        for b in job.betas:
            params = cls.schedule(float(b))
            if params != cls.schedule(float(b)):
                raise _ContractError(f"schedule({b:g}) returned different parameters on a second call: it must be pure")
            labelled.append((f"beta={b:g}", float(b), params))
    points = []
    for i, (label, beta, params) in enumerate(labelled):
        if not isinstance(params, dict):
            raise _ContractError(f"{label}: the parameters must be a dict, got {type(params).__name__}")
        unknown = sorted(set(params) - fields)
        if unknown:
            raise _ContractError(f"{label}: {', '.join(unknown)} are not fields of {cls.__name__}")
        cls(**params)  # constructible
        points.append({"index": i, "label": label, "beta": beta, "params": dict(params)})
    return points


def main(argv: list[str] | None = None) -> int:
    """``python -m agents.discovery.sandbox JOB RESULT``: the worker's entry point."""
    job_path, result_path = (argv or sys.argv[1:])[:2]
    spec = json.loads(Path(job_path).read_text())
    out = open(result_path, "w", encoding="utf-8")  # opened before the guard forbids opening files
    result = _worker(spec)
    out.write(json.dumps(result, default=str))
    out.flush()
    # Leave without interpreter shutdown: nothing of the candidate's runs after this.
    os._exit(0)


if __name__ == "__main__":
    main()
