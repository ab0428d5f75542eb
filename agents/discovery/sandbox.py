"""Evaluating a candidate controller's sweep: static check, then isolation.

:func:`evaluate_candidate` statically checks the candidate (a fast first line with a
clear diagnosis for the LLM, never the line relied on), then runs its beta sweep (or
its free-parameter grid) with :func:`autotts_gym.isolation.evaluate_isolated`: the
candidate's code runs in an operating-system container (its own PID, network, IPC and
mount namespaces, an unprivileged user, resource limits; see
:mod:`autotts_gym.isolation.container`) holding no data but what its episodes reveal,
and the engine, here, applies its actions, charges every cost and scores every answer.

Whatever goes wrong (syntax error, contract, exception, timeout, endless loop, memory
or process bomb, step limit, a dead or misbehaving process) comes back as a
:class:`SweepOutcome` with ``ok=False`` and a diagnostic; nothing is raised.

With traces on, the engine also replays the most informative episodes of the best point
with its trace on and returns them annotated (:mod:`~agents.discovery.traces`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from agents.discovery.checks import CandidateRejected, check_candidate
from agents.discovery.traces import annotate, choose_episodes
from autotts_gym.data.sources import load_store
from autotts_gym.evaluation.evaluate import make_options
from autotts_gym.isolation import (
    ContainerLimits,
    IsolationLimits,
    IsolationUnavailable,
    UnitFailed,
    evaluate_isolated,
)

CANDIDATE_FILE = "candidate.py"
LOG_TAIL_CHARS = 4000


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of a candidate's evaluation.

    Attributes:
        cpu_seconds: CPU time of one unit of work (one point, one seed, every split).
        wall_seconds: wall-clock time of one container, start-up included.
        memory_mb: address space the candidate may use beyond the runtime's.
        max_actions: attempted primitive actions per episode.
        output_bytes: largest file the container may write (its log, scratch files).
        max_processes: processes the candidate may add (forks and threads count).
        contain: run in an OS container; False only with the explicit opt-out
            (``autotts discover --unsafe-no-containment``): the candidate still runs in
            its own process, holding only what it revealed, but can read files and use
            the network.
    """

    cpu_seconds: float = 600.0
    wall_seconds: float = 900.0
    memory_mb: float = 2048.0
    max_actions: int = 100_000
    output_bytes: int = 64 * 2**20
    max_processes: int = 4
    contain: bool = True

    def isolation(self) -> IsolationLimits:
        """These limits as :class:`autotts_gym.isolation.IsolationLimits`."""
        return IsolationLimits(
            cpu_seconds=self.cpu_seconds,
            wall_seconds=self.wall_seconds,
            max_actions=self.max_actions,
            container=ContainerLimits(
                memory_mb=self.memory_mb,
                max_processes=self.max_processes,
                output_bytes=self.output_bytes,
                contain=self.contain,
            ),
        )


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
        key: the secret of the per-episode answer labels (None: a fresh one per call);
            a discovery run keeps one in its folder, so ``--resume`` replays exactly.
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
    key: str | None = None


@dataclass
class SweepOutcome:
    """The result of evaluating one candidate.

    Attributes:
        ok: True if every point was evaluated.
        failure: ``{"stage", "kind", "message"}`` when not ok (stage ``setup``: the
            search splits could not be loaded or this machine cannot isolate).
        candidate: class name, name and docstring (when the module loaded).
        points: per evaluated point: index, label, beta, params, mean accuracy (percent),
            tokens and sequential tokens over the splits, and ``splits`` (split name ->
            evaluation summary dict).
        traces: annotated traces of the traced point.
        seconds: wall time of the whole evaluation.
        log: the tail of the container's output.
        timing: seconds per phase: ``startup``, ``describe``, ``play``, ``engine``,
            ``trace``, ``total``.
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
    """Check and evaluate a candidate module in isolation.

    Args:
        source: the candidate module's source.
        job: store, splits, sweep and protocol.
        limits: per-container limits.
        workers: containers (units of work are shared among them).
        static_check: run the static check first (tests switch it off to reach the
            runtime containment with code the static check would reject).
    """
    limits = limits or SandboxLimits()
    started = time.perf_counter()
    if static_check:
        try:
            check_candidate(source, CANDIDATE_FILE, free_params=job.free_params)
        except CandidateRejected as err:
            return failed("static", err.kind, err.message, seconds=time.perf_counter() - started)
    try:
        splits = _search_splits(job.store, job.splits)
    except (ValueError, KeyError, OSError) as err:
        return failed("setup", "setup-error", f"the search splits could not be loaded: {err}")
    options = make_options(job.seeds, job.shuffle, job.subsample, job.budget_tokens)
    whys: dict[tuple[int, int, int, int], str] = {}

    def to_trace(evaluations: list[list[Any]]) -> list[tuple[int, int, int, int]]:
        best = best_point(_points(evaluations, described))
        if best is None or job.trace_episodes <= 0:
            return []
        for i, q, seed, why in choose_episodes(evaluations[best["index"]], job.trace_episodes):
            whys[(best["index"], i, q, seed)] = why
        return list(whys)

    described: list[dict[str, Any]] = []
    try:
        run = evaluate_isolated(
            source,
            splits,
            options,
            filename=CANDIDATE_FILE,
            mode="grid" if job.free_params else "betas",
            betas=job.betas,
            strict=True,
            max_points=len(job.betas),
            limits=limits.isolation(),
            workers=workers,
            key=job.key,
            trace=to_trace,
            on_describe=described.extend,
        )
    except IsolationUnavailable as err:
        return failed("setup", "isolation-unavailable", str(err), seconds=time.perf_counter() - started)
    except UnitFailed as err:
        stage = "load" if err.kind in ("syntax-error", "contract") and not err.where else "evaluate"
        return failed(stage, err.kind, err.describe(), seconds=time.perf_counter() - started, log=err.log)
    points = _points(run.evaluations, run.description["points"])
    traces = []
    for (p, i, q, seed), why in whys.items():
        raw, result = run.traces[(p, i, q, seed)]
        split = splits[i]
        traces.append(
            annotate(raw, split.question(q), result, split=split.name, seed=seed, point=points[p]["label"], why=why)
        )
    candidate = {k: run.description[k] for k in ("class_name", "name", "docstring")}
    timing = {k: round(v, 3) for k, v in run.timing.items()}
    return SweepOutcome(
        ok=True, candidate=candidate, points=points, traces=traces, seconds=time.perf_counter() - started, timing=timing
    )


@lru_cache(maxsize=4)
def _search_splits(store: str | None, patterns: tuple[str, ...]) -> list[Any]:
    # Loaded once per process: every round of a run plays the same splits.
    return load_store(store).select(list(patterns))


def _points(evaluations: list[list[Any]], described: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per point: label, beta, params, the means over the splits and each split's summary."""
    points = []
    for i, (evs, d) in enumerate(zip(evaluations, described)):
        point = {"index": i, "label": d["label"], "beta": d["beta"], "params": dict(d["params"])}
        point["splits"] = {ev.split.name: ev.summary.as_dict() for ev in evs}
        for key in ("accuracy", "tokens", "sequential_tokens"):
            point[key] = sum(getattr(ev.summary, key) for ev in evs) / len(evs)
        points.append(point)
    return points


def best_point(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The point with the highest mean accuracy, ties to fewer mean tokens, then the
    earlier point."""
    if not points:
        return None
    return min(points, key=lambda p: (-round(p["accuracy"], 9), round(p["tokens"], 6), p["index"]))
