"""Evaluating a controller's source in isolation, under the paper's protocol.

:func:`evaluate_isolated` is :func:`autotts_gym.evaluation.evaluate.evaluate_many` for untrusted
code: the controller runs in containers (:mod:`~autotts_gym.isolation.container`), the
engine here (:mod:`~autotts_gym.isolation.broker`). Work is cut into units of one point
(a beta, a grid setting, or fixed parameters) and one seed over every split and
question, so no unit sees a question of a split twice; ``workers`` containers share the
units. Honest controllers score exactly what they score in-process (tested for every
built-in method): only the answer ids' labels differ, and votes do not depend on them.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import random
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotts_gym.data.store import Split
from autotts_gym.evaluation.evaluate import EpisodeOptions, Evaluation, _evaluation
from autotts_gym.isolation.broker import IsolationLimits, Sandbox, UnitFailed, relabel


@dataclass(frozen=True)
class IsolatedController:
    """What the engine side knows of an isolated controller: its name and one point's
    parameters (the code itself never runs here)."""

    name: str
    point: dict[str, Any]

    @property
    def beta(self) -> float | None:
        """The beta that built this point, if any."""
        return self.point.get("beta")

    def params(self) -> dict[str, Any]:
        """The point's parameters."""
        return dict(self.point["params"])

    def describe(self) -> str:
        """``name(k=v, ...)`` for tables and logs."""
        args = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params().items())
        return f"{self.name}({args})" if args else self.name


@dataclass
class IsolatedRun:
    """The outcome of :func:`evaluate_isolated`.

    Attributes:
        description: class name, name, docstring and points, as the controller gave them.
        evaluations: per point, one :class:`Evaluation` per split (in the splits' order).
        timing: seconds: ``startup`` (containers ready), ``describe``, ``play`` (units),
            ``engine`` (time the engine spent applying actions and replying),
            ``trace``; and ``units``.
        traces: ``(point index, split index, question, seed) -> the engine's trace`` of
            the traced episodes.
    """

    description: dict[str, Any]
    evaluations: list[list[Evaluation]]
    timing: dict[str, float] = field(default_factory=dict)
    traces: dict[tuple[int, int, int, int], tuple[list[dict[str, Any]], Any]] = field(default_factory=dict)


def new_key() -> str:
    """A fresh secret for the per-episode answer labels."""
    return secrets.token_hex(16)


def _units(points: int, splits: Sequence[Split], seeds: Sequence[int], key: str) -> list[tuple[int, int, list]]:
    """``(point, seed, [(split index, question), ...])``; the episodes of a unit in a secret
    order, so an episode's slot does not say which question it is."""
    units = []
    for p in range(points):
        for seed in seeds:
            cells = [(i, q) for i, s in enumerate(splits) for q in range(s.num_questions)]
            digest = hashlib.sha256(f"{key}|order|{p}|{seed}".encode()).digest()
            random.Random(digest).shuffle(cells)
            units.append((p, seed, cells))
    return units


def _play_units(
    sandbox: Sandbox,
    description: dict[str, Any],
    units: list[tuple[int, int, list]],
    splits: Sequence[Split],
    options: EpisodeOptions,
    key: str,
    class_name: str | None,
    trace: set[tuple[int, int, int, int]] = frozenset(),
) -> tuple[list[tuple[int, int, tuple]], dict, float]:
    """Play units in one sandbox; rows ``(point, split index, row)`` and traces."""
    rows, traces = [], {}
    for p, seed, cells in units:
        point = description["points"][p]
        episodes = []
        for i, q in cells:
            split = splits[i]
            traced = (p, i, q, seed) in trace
            e = options.episode(split, q, seed, trace=traced)
            labels = relabel(key, split.name, q, seed, len(e.question.vocab))
            where = {"at": f"{description['name']} {point['label']}", "split": split.name, "question": q, "seed": seed}
            episodes.append((e, labels, where))
        results = sandbox.play(point["params"], point["beta"], episodes, class_name)
        for (i, q), (e, _, _), r in zip(cells, episodes, results):
            rows.append(
                (
                    p,
                    i,
                    (q, seed, r.answer, r.correct, r.tokens, r.sequential_tokens, r.intervals, r.branches_opened)
                    + (r.probes, r.actions, r.stop_reason),
                )
            )
            if (p, i, q, seed) in trace:
                traces[(p, i, q, seed)] = (e.trace, r)
    return rows, traces, {"engine": sandbox.engine_seconds, "requests": sandbox.requests}


def evaluate_isolated(
    source: str,
    splits: Sequence[Split],
    options: EpisodeOptions,
    *,
    filename: str = "candidate.py",
    mode: str = "betas",
    betas: Sequence[float] = (),
    overrides: dict[str, Any] | None = None,
    class_name: str | None = None,
    strict: bool = False,
    max_points: int = 64,
    limits: IsolationLimits | None = None,
    workers: int = 1,
    key: str | None = None,
    trace: Callable[[list[list[Evaluation]]], list[tuple[int, int, int, int]]] | None = None,
    on_describe: Callable[[list[dict[str, Any]]], Any] | None = None,
) -> IsolatedRun:
    """Evaluate a controller module's source in isolation.

    Args:
        source: the module's source (untrusted).
        splits: the splits to play (their data never leaves this process).
        options: the protocol (seeds, shuffle, budget, kappa_probe).
        filename: how error messages name the source.
        mode: ``"betas"`` (``schedule(beta)`` per beta, then ``overrides``), ``"grid"``
            (the class's ``grid()``) or ``"params"`` (``overrides`` as the parameters).
        betas: the betas of ``"betas"`` mode.
        class_name: the controller class (None: the module's only Controller subclass).
        strict: enforce the discovery contract (frozen dataclass, own ``name``).
        max_points: most grid settings accepted.
        limits: CPU, wall clock, actions and what the OS grants.
        workers: containers playing units side by side.
        key: the secret of the answer labels and episode order (None: a fresh one).
        trace: given the evaluations, the ``(point, split index, question, seed)``
            episodes to replay with the engine's trace on.
        on_describe: called with the points as soon as the controller described them.

    Raises:
        UnitFailed: the controller failed (its kind, message, episode and lines).
        IsolationUnavailable: this machine cannot contain it.
    """
    limits = limits or IsolationLimits()
    key = key or new_key()
    timing: dict[str, float] = {}
    folder = Path(tempfile.mkdtemp(prefix="autotts-isolated-"))
    sandbox: Sandbox | None = None
    try:
        started = time.monotonic()
        (folder / "0").mkdir(mode=0o700)
        sandbox = Sandbox(folder / "0", source, filename, limits)
        timing["startup"] = sandbox.startup_seconds
        lap = time.monotonic()
        request = {
            "mode": mode,
            "betas": [float(b) for b in betas],
            "overrides": dict(overrides or {}),
            "class_name": class_name,
            "strict": strict,
            "max_points": max_points,
        }
        description = sandbox.describe(request)
        name = class_name or description["class_name"]
        if on_describe is not None:
            on_describe(description["points"])
        timing["describe"] = time.monotonic() - lap
        lap = time.monotonic()
        units = _units(len(description["points"]), splits, options.seeds, key)
        _JOB.update(
            folder=folder, source=source, filename=filename, limits=limits, workers=max(1, workers),
            description=description, units=units, splits=splits, options=options, key=key, class_name=name,
        )  # fmt: skip
        try:
            rows, work = _run_units(sandbox)
        finally:
            _JOB.clear()
        timing["play"] = time.monotonic() - lap
        timing.update(work)
        timing["units"] = len(units)
        per_cell: dict[tuple[int, int], list[tuple]] = {}
        for p, i, row in rows:
            per_cell.setdefault((p, i), []).append(row)
        seconds = timing["play"] / max(1, len(description["points"]) * len(splits))
        evaluations = [
            [
                _evaluation(
                    IsolatedController(description["name"], point), s, per_cell.get((p, i), []), options, seconds
                )
                for i, s in enumerate(splits)
            ]
            for p, point in enumerate(description["points"])
        ]
        traces: dict = {}
        if trace is not None:
            lap = time.monotonic()
            wanted = trace(evaluations)
            if wanted:
                trace_units = [(p, seed, [(i, q)]) for p, i, q, seed in wanted]
                _, traces, _ = _play_units(sandbox, description, trace_units, splits, options, key, name, set(wanted))
            timing["trace"] = time.monotonic() - lap
        timing["total"] = time.monotonic() - started
        return IsolatedRun(description, evaluations, timing, traces)
    except UnitFailed as err:
        if sandbox is not None and not err.log:
            err.log = sandbox.container.log_tail()
        raise
    finally:
        if sandbox is not None:
            sandbox.container.close()
        shutil.rmtree(folder, ignore_errors=True)


# One job for forked workers, inherited by fork (the splits stay in memory, not pickled).
_JOB: dict[str, Any] = {}


def _share(sandbox: Sandbox, index: int) -> tuple[list, dict[str, float]]:
    """Play a worker's share of the units; its rows and what the work took: the engine's
    seconds and requests, and the CPU seconds of this process and of the container."""
    j = _JOB
    mine = j["units"][index :: j["workers"]]
    cpu = time.process_time()
    rows, _, work = _play_units(sandbox, j["description"], mine, j["splits"], j["options"], j["key"], j["class_name"])
    work["engine_cpu"] = time.process_time() - cpu
    work["sandbox_cpu"] = sandbox.container.cpu_seconds()
    return rows, work


def _worker(index: int) -> tuple[list, dict[str, float], tuple | None]:
    """A forked engine with a container of its own, playing its share of the units."""
    folder = _JOB["folder"] / f"{index}"
    folder.mkdir(mode=0o700)
    try:
        sandbox = Sandbox(folder, _JOB["source"], _JOB["filename"], _JOB["limits"])
        try:
            rows, work = _share(sandbox, index)
        finally:
            sandbox.container.close()
        return rows, work, None
    except UnitFailed as err:
        return [], {}, (err.kind, err.message, err.where, err.frames)


def _run_units(sandbox: Sandbox) -> tuple[list, dict[str, float]]:
    """Play every unit: share 0 in ``sandbox``, the others in forked engines with
    containers of their own, side by side."""
    workers = _JOB["workers"]
    if workers == 1:
        return _share(sandbox, 0)
    ctx = mp.get_context("fork")
    with ctx.Pool(workers - 1) as pool:
        pending = pool.map_async(_worker, range(1, workers))
        rows, work = _share(sandbox, 0)
        for more, theirs, failure in pending.get():
            if failure is not None:
                raise UnitFailed(*failure)
            rows += more
            for k, v in theirs.items():
                work[k] += v
    return rows, work
