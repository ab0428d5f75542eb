"""Method specs and method matrices: the library side of ``autotts evaluate``,
``compare`` and ``table``.

A *method spec* names one controller: a registry spec (``sc``, ``cmc``,
``path/to/file.py:ClassName``, ... see :mod:`agents.registry`) optionally followed by
``@beta``: ``cmc@0.5`` is CMC built from its schedule at beta 0.5, ``sc`` is SC with the
paper's settings. :func:`run_methods` evaluates a list of specs on a list of splits in
one :func:`~autotts_gym.evaluation.evaluate.evaluate_many` call, so every cell shares one pool of
worker processes.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.registry import DEFAULT_BETA, METHODS, make_controller, resolve_class
from agents.registry import parse_method_spec as split_method_spec
from autotts_gym.data.sources import load_store
from autotts_gym.data.store import Store
from autotts_gym.evaluation.evaluate import EpisodeOptions, Evaluation, evaluate_many
from autotts_gym.reporting.tables import PoolReference, Table1, build_table1, pool_reference, split_roles

# The rows of the paper's Table 1, in its order.
TABLE1_ROWS = ("sc", "asc", "esc", "parallel-probe", "cmc@0.5", "cmc@1.0")
# The methods and betas `autotts compare` sweeps by default.
COMPARE_METHODS = ("sc", "asc", "esc", "parallel-probe", "cmc")
COMPARE_BETAS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class MethodSpec:
    """One controller to evaluate: a registry spec, an optional beta and overrides.

    Attributes:
        method: registry spec (``sc``, ``cmc``, ``file.py:Class``, ``ppo:model.zip``).
        beta: build from the family's schedule at this beta (None: the method's
            default settings).
        overrides: parameter values replacing the scheduled or default ones.
    """

    method: str
    beta: float | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Any:
        """The controller (see :func:`agents.registry.make_controller`)."""
        return make_controller(self.method, beta=self.beta, overrides=self.overrides)

    def __str__(self) -> str:
        return self.method if self.beta is None else f"{self.method}@{self.beta:g}"


def parse_method_spec(text: str, overrides: dict[str, Any] | None = None) -> MethodSpec:
    """``"cmc@0.5"`` -> MethodSpec("cmc", 0.5); ``"sc"`` -> MethodSpec("sc").

    The syntax is :func:`agents.registry.parse_method_spec`'s (the one parser of it).
    """
    method, beta = split_method_spec(text)
    return MethodSpec(method, beta, dict(overrides or {}))


def parse_list(text: str) -> list[str]:
    """A comma-separated command-line list, blanks dropped."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_betas(text: str) -> list[float]:
    """``"0,0.25,1"`` -> [0.0, 0.25, 1.0], each checked to lie in [0, 1]."""
    betas = []
    for item in parse_list(text):
        try:
            beta = float(item)
        except ValueError:
            raise ValueError(f"--betas expects comma-separated numbers in [0, 1], got {item!r}") from None
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"--betas: beta must lie in [0, 1], got {beta:g}")
        betas.append(beta)
    return betas


def sweep_specs(methods: Sequence[str], betas: Sequence[float], overrides: dict[str, Any] | None = None) -> list[MethodSpec]:
    """Every method at every beta; a method with its own ``@BETA`` is evaluated at that
    beta only, and a method without a beta schedule (a user class, a PPO policy) once,
    at its defaults."""
    specs = []
    for text in methods:
        method, beta = split_method_spec(text)
        if beta is not None:
            specs.append(MethodSpec(method, beta, dict(overrides or {})))
        elif _has_schedule(method):
            specs.extend(MethodSpec(method, float(b), dict(overrides or {})) for b in betas)
        else:
            specs.append(MethodSpec(method, None, dict(overrides or {})))
    return specs


def _has_schedule(method: str) -> bool:
    if method.startswith("ppo:"):
        return False
    return resolve_class(method).has_schedule()


def run_methods(
    store: Store | str | os.PathLike | None,
    specs: Sequence[MethodSpec],
    options: EpisodeOptions,
    *,
    splits: Sequence[str] | None = None,
    workers: int | None = None,
    progress: bool = False,
    isolate: bool = False,
) -> list[Evaluation]:
    """Evaluate every spec on every selected split in one worker pool.

    Controllers are all built (and so checked) before the store is loaded. With
    ``isolate``, each spec's code runs as discovery's candidates do
    (:func:`autotts_gym.isolation.evaluate_isolated`): in an OS container holding only
    what its episodes revealed.

    Args:
        store: a Store, a path, or None/"default" for the embedded default store.
        specs: the methods.
        options: the protocol (seeds, shuffle, budget, ...).
        splits: split patterns (``model/benchmark``, ``*/aime25``); all by default.
        workers: processes (default: all cores).
        progress: show a tqdm progress bar on stderr.
        isolate: run every spec's code isolated (not ``ppo:`` policies).

    Returns:
        One Evaluation per (spec, split), spec-major.
    """
    controllers = [spec.build() for spec in specs]  # bad specs fail before the store loads
    chosen = load_store(store).select(splits)
    if isolate:
        return [ev for spec in specs for ev in _run_isolated(spec, chosen, options, workers)]
    cells = [(controller, split) for controller in controllers for split in chosen]
    return evaluate_many(cells, options, workers=workers, progress=progress)


def _run_isolated(spec: MethodSpec, splits: Sequence[Any], options: EpisodeOptions, workers: int | None) -> list[Evaluation]:
    """One spec's evaluations, its code run in isolation."""
    from autotts_gym.evaluation.evaluate import default_workers
    from autotts_gym.isolation import evaluate_isolated

    if spec.method.startswith("ppo:"):
        raise ValueError(f"{spec}: --isolate runs controller code, not ppo: policies (they need torch)")
    source, filename, class_name = isolated_source(spec.method)
    beta = spec.beta if spec.beta is not None else DEFAULT_BETA.get(spec.method)
    mode = "betas" if beta is not None else "params"
    run = evaluate_isolated(
        source,
        splits,
        options,
        filename=filename,
        mode=mode,
        betas=[beta] if beta is not None else [],
        overrides=spec.overrides,
        class_name=class_name,
        workers=workers or default_workers(),
    )
    return run.evaluations[0]


def isolated_source(method: str) -> tuple[str, str, str]:
    """``(module source, file name, class name)`` of a method spec, for isolation."""
    cls = resolve_class(method)
    if method in METHODS:
        return f"from {cls.__module__} import {cls.__name__}\n", f"{method} (built-in)", cls.__name__
    where, _, name = method.rpartition(":")
    path = Path(where) if where.endswith(".py") else Path(sys.modules[cls.__module__].__file__ or "")
    return path.read_text(encoding="utf-8"), str(path), name


@dataclass
class Table1Run:
    """A Table 1 and what it was built from.

    Attributes:
        table: the Table 1 layout (see :mod:`autotts_gym.reporting.tables`).
        evaluations: one Evaluation per (row, split), row-major.
        references: the pool references of the evaluated splits.
        seconds: wall time of the evaluation.
    """

    table: Table1
    evaluations: list[Evaluation]
    references: list[PoolReference]
    seconds: float


def run_table1(
    store: Store | str | os.PathLike | None,
    rows: Sequence[str] = TABLE1_ROWS,
    options: EpisodeOptions | None = None,
    *,
    search: Sequence[str] | None = None,
    heldout: Sequence[str] | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> Table1Run:
    """The paper's Table 1 for every model of a store: evaluate every row on every
    search and held-out split (one worker pool) and add the pool reference rows.

    Args:
        store: a Store, a path, or None/"default".
        rows: method specs (``sc``, ``cmc@0.5``, ``file.py:Class``); the paper's six by default.
        options: the protocol (default: 100 seeds, the release's shuffle).
        search, heldout: benchmark names (defaults: see
            :func:`autotts_gym.reporting.tables.split_roles`).
        workers: processes (default: all cores).
        progress: show a tqdm progress bar on stderr.
    """
    store = load_store(store)
    search, heldout = split_roles(store, search, heldout)
    patterns = [f"*/{b}" for b in (*search, *heldout)]
    specs = [parse_method_spec(r) for r in rows]
    started = time.perf_counter()
    evaluations = run_methods(store, specs, options or EpisodeOptions(), splits=patterns, workers=workers, progress=progress)
    seconds = time.perf_counter() - started
    references = [pool_reference(s) for s in store.select(patterns)]
    table = build_table1([e.summary for e in evaluations], search, heldout, references)
    return Table1Run(table, evaluations, references, seconds)
