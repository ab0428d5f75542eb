"""The evaluation protocol: run a controller on every (question, seed) of some splits.

For each question and each seed, the question's branch pool is put in the order of
:func:`autotts_gym.evaluation.orders.branch_order` (the release's shuffle by default, which
reproduces the paper's figures), a fresh :class:`~autotts_gym.engine.Episode` is made
and the controller runs it. Accuracy is the mean over seeds and questions of
1{answer == gold}; tokens the mean total tokens per episode.

``evaluate_many`` runs a whole matrix of (controller, split) cells in one pool of
worker processes (``fork``: the store and the controllers are inherited, not pickled),
so both cores work and each cell costs no start-up.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autotts_gym.data.sources import load_store
from autotts_gym.data.store import Split, Store
from autotts_gym.engine import Episode, EpisodeResult
from autotts_gym.engine.recorded import RecordedEpisode, is_recorded
from autotts_gym.evaluation.orders import branch_order
from autotts_gym.utils.arguments import check_budget, check_nonnegative, check_positive_int
from autotts_gym.utils.progress import progress_bar

RECORD_FIELDS = (
    "split",
    "question",
    "seed",
    "answer",
    "correct",
    "tokens",
    "sequential_tokens",
    "intervals",
    "branches_opened",
    "probes",
    "actions",
    "stop_reason",
)


@dataclass(frozen=True)
class EpisodeOptions:
    """How episodes are built (the protocol), shared by every cell of a run.

    Attributes:
        seeds: episode seeds (the paper: 0..99).
        shuffle: ``"release"`` (the paper's), ``"numpy"`` or ``"identity"``.
        subsample: keep only the first k branches of each order.
        budget_tokens / budget_intervals: per-episode budget (None: unlimited).
        kappa_probe: cost of one probe in intervals.
    """

    seeds: tuple[int, ...] = tuple(range(100))
    shuffle: str = "release"
    subsample: int | None = None
    budget_tokens: float | None = None
    budget_intervals: float | None = None
    kappa_probe: float = 0.0

    def episode(self, split: Split, question: int, seed: int, trace: bool = False) -> Episode:
        """The episode of ``(question, seed)`` under these options."""
        data = split.question(question)
        order = branch_order(data.num_branches, seed, question, self.shuffle, self.subsample)
        # A store recorded by a live run holds only what that run generated: its episodes
        # stop with a clear error when asked for anything else.
        return (RecordedEpisode if is_recorded(split) else Episode)(
            data,
            order,
            budget_tokens=self.budget_tokens,
            budget_intervals=self.budget_intervals,
            kappa_probe=self.kappa_probe,
            trace=trace,
        )


@dataclass
class Summary:
    """Aggregate figures of one (controller, split) cell.

    Accuracy is in percent; tokens are mean total tokens per episode; the ``*_ci``
    pairs are 95% bootstrap intervals over questions (seeds averaged per question).
    """

    split: str
    model: str
    benchmark: str
    method: str
    params: dict[str, Any]
    beta: float | None
    episodes: int
    questions: int
    seeds: int
    accuracy: float
    accuracy_ci: tuple[float, float]
    tokens: float
    tokens_ci: tuple[float, float]
    sequential_tokens: float
    sequential_tokens_ci: tuple[float, float]
    branches_opened: float
    seconds: float = 0.0  # worker-seconds spent on this cell (episodes / seconds = per-core rate)
    stop_reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


@dataclass
class Evaluation:
    """Per-episode records and the summary of one (controller, split) cell."""

    controller: Any
    split: Split
    records: dict[str, np.ndarray]
    summary: Summary

    def rows(self) -> list[dict[str, Any]]:
        """Records as dicts (one per episode), with the answer string."""
        vocabs = self.split.vocabs
        out = []
        for i in range(len(self.records["question"])):
            row = {k: self.records[k][i] for k in RECORD_FIELDS if k in self.records}
            q, a = int(row["question"]), int(row["answer"])
            row = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            row["split"] = self.split.name
            row["answer_text"] = vocabs[q][a] if a >= 0 else ""
            out.append(row)
        return out


class ControllerError(RuntimeError):
    """A controller raised: the message names the method, beta, split, question and seed,
    and the controller's own lines of the traceback."""


def controller_error(controller: Any, split: Split, question: int, seed: int, err: BaseException) -> ControllerError:
    """The :class:`ControllerError` of ``err``, raised by ``controller`` in one episode."""
    import traceback

    name = getattr(controller, "name", type(controller).__name__)
    beta = getattr(controller, "beta", None)
    at = f"{name}" + (f" at beta {beta:g}" if beta is not None else "")
    frames = [
        f"  {f.filename}, line {f.lineno}, in {f.name}: {(f.line or '').strip()}"
        for f in traceback.extract_tb(err.__traceback__)
        if f"{os.sep}autotts_gym{os.sep}" not in f.filename and not f.filename.endswith(f"agents{os.sep}base.py")
    ][-4:]
    where = f"{at}, split {split.name}, question {question}, seed {seed}"
    return ControllerError(f"{where}: {type(err).__name__}: {err}" + ("\n" + "\n".join(frames) if frames else ""))


def _run_cell_questions(controller: Any, split: Split, questions: Sequence[int], options: EpisodeOptions) -> list[tuple]:
    rows = []
    seeds = options.seeds
    q = seed = -1
    try:
        for q in questions:
            for seed in seeds:
                episode = options.episode(split, q, seed)
                r: EpisodeResult = controller(episode)
                rows.append(
                    (q, seed, r.answer, r.correct, r.tokens, r.sequential_tokens, r.intervals, r.branches_opened, r.probes, r.actions, r.stop_reason)
                )
    except Exception as err:  # a controller's bug, reported with where it happened
        raise controller_error(controller, split, q, seed, err) from None
    return rows


# The job of a pool of forked workers: set before the pool starts, inherited by fork.
_JOB: dict[str, Any] = {}


def _worker(task: tuple[int, int, tuple[int, ...]]) -> tuple[int, list[tuple], float]:
    cell, split_index, questions = task
    controller = _JOB["controllers"][cell]
    split = _JOB["splits"][split_index]
    started = time.perf_counter()
    rows = _run_cell_questions(controller, split, questions, _JOB["options"])
    return cell, rows, time.perf_counter() - started


def default_workers() -> int:
    """Worker processes to use: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def evaluate_many(
    cells: Sequence[tuple[Any, Split]],
    options: EpisodeOptions | None = None,
    *,
    workers: int | None = None,
    progress: bool | Callable[[int], None] = False,
    chunk_questions: int = 2,
) -> list[Evaluation]:
    """Evaluate every ``(controller, split)`` cell under one protocol.

    Args:
        cells: pairs of a controller (anything callable on an Episode that returns an
            EpisodeResult, e.g. a :class:`agents.base.Controller`) and a split.
        options: the protocol (seeds, shuffle, budget, ...).
        workers: processes (default: all cores; 1 runs in this process).
        progress: True for a tqdm bar over episodes, or a callback taking a count.
        chunk_questions: questions per task handed to a worker.
    """
    options = options or EpisodeOptions()
    workers = default_workers() if workers is None else max(1, workers)
    splits: list[Split] = []
    split_index: dict[int, int] = {}
    for _, split in cells:
        if id(split) not in split_index:
            split_index[id(split)] = len(splits)
            splits.append(split)
    tasks = []
    for c, (_, split) in enumerate(cells):
        qs = list(range(split.num_questions))
        for i in range(0, len(qs), chunk_questions):
            tasks.append((c, split_index[id(split)], tuple(qs[i : i + chunk_questions])))
    # Expensive cells first, so the pool does not idle on one long tail.
    tasks.sort(key=lambda t: -_cost_hint(cells[t[0]][0]))
    total = sum(len(options.seeds) * s.num_questions for _, s in cells)
    tick = _progress(progress, total)

    results: dict[int, list[tuple]] = {c: [] for c in range(len(cells))}
    elapsed = {c: 0.0 for c in range(len(cells))}  # worker-seconds spent on each cell
    _JOB.update(controllers=[c for c, _ in cells], splits=splits, options=options)
    try:
        if workers == 1 or len(tasks) == 1:
            for task in tasks:
                c, rows, seconds = _worker(task)
                elapsed[c] += seconds
                results[c].extend(rows)
                tick(len(rows))
        else:
            ctx = mp.get_context("fork")
            with ctx.Pool(workers) as pool:
                for c, rows, seconds in pool.imap_unordered(_worker, tasks):
                    results[c].extend(rows)
                    elapsed[c] += seconds
                    tick(len(rows))
    finally:
        _JOB.clear()
        tick(None)
    return [_evaluation(controller, split, results[c], options, elapsed[c]) for c, (controller, split) in enumerate(cells)]


def _cost_hint(controller: Any) -> float:
    # Slow cells first, so the pool does not idle on one long tail (Controller.cost_hint).
    return float(getattr(controller, "cost_hint", 1.0))


def _progress(progress: bool | Callable[[int], None], total: int) -> Callable[[int | None], None]:
    if callable(progress):
        return lambda n: n is not None and progress(n)
    if not progress:
        return lambda n: None
    bar = progress_bar(total, desc="episodes", unit="ep")
    return lambda n: bar.close() if n is None else bar.update(n)


def _evaluation(controller: Any, split: Split, rows: list[tuple], options: EpisodeOptions, seconds: float) -> Evaluation:
    rows.sort(key=lambda r: (r[0], r[1]))
    cols = list(zip(*rows)) if rows else [()] * 11
    records = {
        "question": np.asarray(cols[0], np.int32),
        "seed": np.asarray(cols[1], np.int64),
        "answer": np.asarray(cols[2], np.int32),
        "correct": np.asarray(cols[3], bool),
        "tokens": np.asarray(cols[4], np.int64),
        "sequential_tokens": np.asarray(cols[5], np.int64),
        "intervals": np.asarray(cols[6], float),
        "branches_opened": np.asarray(cols[7], np.int32),
        "probes": np.asarray(cols[8], np.int32),
        "actions": np.asarray(cols[9], np.int32),
        "stop_reason": np.asarray(cols[10], object),
    }
    return Evaluation(controller, split, records, summarize(controller, split, records, seconds))


def bootstrap_ci(per_question: np.ndarray, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean, resampling questions."""
    n = len(per_question)
    if n == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    means = per_question[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def question_means(questions: np.ndarray, values: np.ndarray, num_questions: int) -> np.ndarray:
    """Per question, the mean of ``values`` over its episodes (NaN for a question with none)."""
    counts = np.bincount(questions, minlength=num_questions).astype(float)
    sums = np.bincount(questions, weights=values.astype(float), minlength=num_questions)
    with np.errstate(invalid="ignore"):
        return sums / counts


def summarize(controller: Any, split: Split, records: dict[str, np.ndarray], seconds: float = 0.0) -> Summary:
    """The :class:`Summary` of one cell's records."""
    q = records["question"]
    nq = split.num_questions
    seen = np.bincount(q, minlength=nq) > 0

    def per_question(values: np.ndarray) -> np.ndarray:
        return question_means(q, values, nq)[seen]

    acc = per_question(records["correct"]) * 100.0
    tok = per_question(records["tokens"])
    seq = per_question(records["sequential_tokens"])
    reasons: dict[str, int] = {}
    for r in records["stop_reason"].tolist():
        reasons[r] = reasons.get(r, 0) + 1
    params = controller.params() if hasattr(controller, "params") else {}
    return Summary(
        split=split.name,
        model=split.info.model,
        benchmark=split.info.benchmark,
        method=getattr(controller, "name", type(controller).__name__),
        params=params,
        beta=getattr(controller, "beta", None),
        episodes=int(len(q)),
        questions=int(seen.sum()),
        seeds=int(len(np.unique(records["seed"]))) if len(q) else 0,
        accuracy=float(records["correct"].mean() * 100.0) if len(q) else math.nan,
        accuracy_ci=bootstrap_ci(acc),
        tokens=float(records["tokens"].mean()) if len(q) else math.nan,
        tokens_ci=bootstrap_ci(tok),
        sequential_tokens=float(records["sequential_tokens"].mean()) if len(q) else math.nan,
        sequential_tokens_ci=bootstrap_ci(seq),
        branches_opened=float(records["branches_opened"].mean()) if len(q) else math.nan,
        seconds=seconds,
        stop_reasons=reasons,
    )


def evaluate(
    controller: Any,
    store: Store | str | os.PathLike | None = None,
    *,
    splits: Sequence[str] | None = None,
    seeds: int | Iterable[int] = 100,
    shuffle: str = "release",
    subsample: int | None = None,
    budget_tokens: float | None = None,
    budget_intervals: float | None = None,
    kappa_probe: float = 0.0,
    workers: int | None = None,
    progress: bool = False,
) -> list[Evaluation]:
    """Evaluate one controller on the splits of a store (all splits by default).

    Args:
        controller: a controller (see :mod:`agents.base`).
        store: a Store, a path (store folder or release JSON), or None for the default.
        splits: split names or patterns (``model/benchmark``, ``*/aime25``).
        seeds: a count n (seeds 0..n-1) or explicit seeds.
        shuffle, subsample, budget_tokens, budget_intervals, kappa_probe: the protocol
            (see :class:`EpisodeOptions`).
        workers: processes (default: all cores).
        progress: show a progress bar.

    Returns:
        One :class:`Evaluation` per split, with per-episode records and a summary.
    """
    store = load_store(store)
    options = make_options(seeds, shuffle, subsample, budget_tokens, budget_intervals, kappa_probe)
    return evaluate_many([(controller, s) for s in store.select(splits)], options, workers=workers, progress=progress)


def make_options(
    seeds: int | Iterable[int] = 100,
    shuffle: str = "release",
    subsample: int | None = None,
    budget_tokens: float | None = None,
    budget_intervals: float | None = None,
    kappa_probe: float = 0.0,
) -> EpisodeOptions:
    """:class:`EpisodeOptions` from user-facing arguments (``seeds`` may be a count)."""
    seed_list = tuple(range(seeds)) if isinstance(seeds, int) else tuple(int(s) for s in seeds)
    if not seed_list:
        raise ValueError(f"seeds must name at least one episode seed, got {seeds!r}")
    budget_tokens = check_budget("budget_tokens", budget_tokens)
    budget_intervals = check_budget("budget_intervals", budget_intervals)
    subsample = None if subsample is None else check_positive_int("subsample", subsample)
    kappa_probe = check_nonnegative("kappa_probe", kappa_probe)
    return EpisodeOptions(seed_list, shuffle, subsample, budget_tokens, budget_intervals, kappa_probe)


def sweep(
    family: type,
    betas: Sequence[float],
    splits: Sequence[Split],
    options: EpisodeOptions | None = None,
    *,
    workers: int | None = None,
    progress: bool = False,
) -> list[Evaluation]:
    """Evaluate ``family.from_beta(beta)`` for every beta on every split (one pool)."""
    cells = []
    for beta in betas:
        controller = family.from_beta(beta)
        cells.extend((controller, s) for s in splits)
    return evaluate_many(cells, options, workers=workers, progress=progress)


def monotonicity_violations(evaluations: Sequence[Evaluation], tolerance: float = 0.0) -> list[str]:
    """Where mean tokens fall as beta grows, per (method, split): one sentence each."""
    curves: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for ev in evaluations:
        beta = ev.summary.beta
        if beta is not None:
            curves.setdefault((ev.summary.method, ev.split.name), []).append((beta, ev.summary.tokens))
    out = []
    for (method, name), points in curves.items():
        points.sort()
        for (b0, t0), (b1, t1) in zip(points, points[1:]):
            if t1 < t0 * (1 - tolerance):
                out.append(f"{method} on {name}: mean tokens fall from {t0:.0f} at beta {b0:g} to {t1:.0f} at beta {b1:g}")
    return out


def write_records_csv(evaluations: Sequence[Evaluation], path: str | os.PathLike) -> Path:
    """All per-episode records of the evaluations in one CSV (one row per episode)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = None
        for ev in evaluations:
            for row in ev.rows():
                row = {"method": ev.summary.method, "beta": ev.summary.beta, **row}
                if writer is None:
                    writer = csv.DictWriter(fh, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)
    os.replace(tmp, path)
    return path


def write_summaries_json(evaluations: Sequence[Evaluation], path: str | os.PathLike) -> Path:
    """The summaries of the evaluations as a JSON list."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps([ev.summary.as_dict() for ev in evaluations], indent=2) + "\n")
    os.replace(tmp, path)
    return path
