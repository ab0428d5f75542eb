"""Paired comparisons of methods on the same questions, with bootstrap intervals.

Two methods evaluated on the same splits answer the same questions, so their difference
is measured far more precisely than either accuracy alone: a hard question is hard for
both. This module resamples *questions* (within each split, the same resample for every
method) and recomputes everything from the resample:

* :func:`accuracy_interval`: the model-average accuracy of one setting and its interval;
* :func:`matched_difference`: one setting's accuracy minus another method's curve,
  interpolated at the setting's mean tokens (both recomputed in every resample).

A "setting" is a :class:`QuestionTable`: per split, per question, the accuracy and the
mean tokens over seeds. The model average is the mean over splits of each split's mean
over questions, as in Table 1. Seeds are averaged per question first, so the interval
reflects which questions were asked, the dominant source of noise with 30 questions per
split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from autotts_gym.evaluation.evaluate import Evaluation, question_means
from autotts_gym.reporting.tables import DISPLAY_NAMES, fmt_tokens, render_table


@dataclass(frozen=True)
class QuestionTable:
    """Per-question figures of one method setting on a list of splits (seeds averaged).

    Attributes:
        label: what the setting is (e.g. ``"CMC beta=0.5"``).
        splits: split names, in a fixed order.
        accuracy: per split, accuracy in percent per question.
        tokens: per split, mean total tokens per question.
    """

    label: str
    splits: tuple[str, ...]
    accuracy: tuple[np.ndarray, ...]
    tokens: tuple[np.ndarray, ...]

    @classmethod
    def from_evaluations(cls, evaluations: Sequence[Evaluation], label: str | None = None) -> QuestionTable:
        """Collect one setting's cells (one Evaluation per split), ordered by split name."""
        if not evaluations:
            raise ValueError("QuestionTable needs at least one evaluation")
        cells = sorted(evaluations, key=lambda e: e.split.name)
        names = [e.split.name for e in cells]
        if len(set(names)) != len(names):
            raise ValueError(f"QuestionTable: split listed twice in {names}")
        acc, tok = [], []
        for ev in cells:
            q, nq = ev.records["question"], ev.split.num_questions
            missing = np.flatnonzero(np.bincount(q, minlength=nq) == 0).tolist()
            if missing:
                raise ValueError(
                    f"{ev.split.name}: questions {missing} have no episodes; a paired comparison needs every question"
                )
            acc.append(question_means(q, ev.records["correct"], nq) * 100.0)
            tok.append(question_means(q, ev.records["tokens"], nq))
        if label is None:
            s = cells[0].summary
            label = s.method if s.beta is None else f"{s.method} beta={s.beta:g}"
        return cls(label, tuple(names), tuple(acc), tuple(tok))

    @property
    def mean_accuracy(self) -> float:
        """Model-average accuracy (%): mean over splits of the mean over questions."""
        return float(np.mean([a.mean() for a in self.accuracy]))

    @property
    def mean_tokens(self) -> float:
        """Model-average mean tokens per question."""
        return float(np.mean([t.mean() for t in self.tokens]))

    def resampled(self, indices: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Model-average accuracy and tokens under each resample (``indices[s]`` has
        shape ``(resamples, questions of split s)``)."""
        acc = np.mean([a[i].mean(axis=1) for a, i in zip(self.accuracy, indices)], axis=0)
        tok = np.mean([t[i].mean(axis=1) for t, i in zip(self.tokens, indices)], axis=0)
        return acc, tok

    def check_paired_with(self, other: QuestionTable) -> None:
        """Raise ValueError unless ``other`` covers the same splits and questions."""
        if other.splits != self.splits:
            raise ValueError(
                f"cannot pair {self.label!r} (splits {list(self.splits)}) with {other.label!r} (splits {list(other.splits)})"
            )
        for name, a, b in zip(self.splits, self.accuracy, other.accuracy):
            if len(a) != len(b):
                raise ValueError(f"{name}: {self.label!r} has {len(a)} questions, {other.label!r} has {len(b)}")


@dataclass(frozen=True)
class Interval:
    """An estimate with its bootstrap interval.

    Attributes:
        estimate: the figure on the full data.
        low, high: the interval's bounds (percentile bootstrap).
        p_at_most_zero: fraction of resamples where the figure is <= 0 (for a
            difference: how often the first method does not come out ahead).
        tokens: the mean tokens the figure is taken at.
        undefined: fraction of resamples where it could not be computed (the setting's
            tokens fell outside the other curve's range); they are left out.
    """

    estimate: float
    low: float
    high: float
    p_at_most_zero: float
    tokens: float
    undefined: float = 0.0

    def format(self, digits: int = 2) -> str:
        """``+1.23 [-0.40, +2.90]``."""
        if np.isnan(self.estimate):
            return "n/a"
        return f"{self.estimate:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def resample_indices(table: QuestionTable, resamples: int = 2000, seed: int = 0) -> list[np.ndarray]:
    """Per split, ``resamples`` draws of its questions with replacement."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, len(a), size=(resamples, len(a))) for a in table.accuracy]


def _interval(estimate: float, draws: np.ndarray, tokens: float, level: float, undefined: float = 0.0) -> Interval:
    if np.isnan(estimate) or len(draws) == 0:
        return Interval(float("nan"), float("nan"), float("nan"), float("nan"), tokens, undefined)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(draws, [tail, 100.0 - tail])
    return Interval(float(estimate), float(low), float(high), float(np.mean(draws <= 0.0)), tokens, undefined)


def accuracy_interval(point: QuestionTable, resamples: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """Model-average accuracy of ``point`` with a bootstrap interval over questions
    (resampled within each split)."""
    acc, _ = point.resampled(resample_indices(point, resamples, seed))
    return _interval(point.mean_accuracy, acc, point.mean_tokens, level)


def _at_tokens(tokens: float, curve_tokens: np.ndarray, curve_accuracy: np.ndarray) -> float:
    """Linear interpolation of a curve at ``tokens``; NaN outside its token range."""
    order = np.argsort(curve_tokens, kind="stable")
    xs, ys = curve_tokens[order], curve_accuracy[order]
    if tokens < xs[0] or tokens > xs[-1]:
        return float("nan")
    return float(np.interp(tokens, xs, ys))


def matched_difference(
    point: QuestionTable,
    curve: Sequence[QuestionTable],
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Accuracy of ``point`` minus that of ``curve`` at the point's mean tokens.

    The curve is linear between its settings' (tokens, accuracy) points. In every
    resample of the questions, the point's accuracy and tokens and every curve point are
    recomputed from the same questions, so the difference is paired. The estimate is NaN
    when the point's tokens lie outside the curve's range.

    Args:
        point: the setting under test.
        curve: the other method's settings (e.g. its beta sweep), on the same splits.
        resamples: bootstrap resamples.
        seed: seed of the resampling.
        level: coverage of the interval.
    """
    if not curve:
        raise ValueError("matched_difference needs a curve with at least one point")
    for other in curve:
        point.check_paired_with(other)
    indices = resample_indices(point, resamples, seed)
    estimate = point.mean_accuracy - _at_tokens(
        point.mean_tokens,
        np.array([c.mean_tokens for c in curve]),
        np.array([c.mean_accuracy for c in curve]),
    )
    acc, tok = point.resampled(indices)
    drawn = [c.resampled(indices) for c in curve]
    curve_acc = np.stack([a for a, _ in drawn], axis=1)
    curve_tok = np.stack([t for _, t in drawn], axis=1)
    diffs = np.array([acc[r] - _at_tokens(tok[r], curve_tok[r], curve_acc[r]) for r in range(resamples)])
    defined = ~np.isnan(diffs)
    return _interval(estimate, diffs[defined], point.mean_tokens, level, undefined=float(1.0 - defined.mean()))


@dataclass(frozen=True)
class PairedRow:
    """One setting of a comparison against a reference method, on one benchmark.

    Attributes:
        benchmark: the benchmark whose splits are averaged.
        method: the setting's method name; beta its beta (None without a schedule).
        accuracy: its model-average accuracy with interval.
        difference: its accuracy minus the reference curve's at its tokens.
    """

    benchmark: str
    method: str
    beta: float | None
    accuracy: Interval
    difference: Interval

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict."""
        return {
            "benchmark": self.benchmark,
            "method": self.method,
            "beta": self.beta,
            "accuracy": self.accuracy.__dict__,
            "difference": self.difference.__dict__,
        }


def settings(evaluations: Sequence[Evaluation]) -> dict[tuple[str, float | None, str], QuestionTable]:
    """Group cells into settings: one QuestionTable per (method, beta, benchmark), over
    that benchmark's splits, in the order the settings first appear."""
    groups: dict[tuple[str, float | None, str], list[Evaluation]] = {}
    for ev in evaluations:
        s = ev.summary
        groups.setdefault((s.method, s.beta, s.benchmark), []).append(ev)
    return {key: QuestionTable.from_evaluations(evs) for key, evs in groups.items()}


def compare_against(
    evaluations: Sequence[Evaluation], reference: str, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> list[PairedRow]:
    """Every evaluated setting against ``reference``'s curve (its settings on the same
    benchmark, e.g. a beta sweep), paired over questions at matched tokens.

    Raises:
        ValueError: when ``reference`` was not evaluated on some benchmark, or the
            settings of a benchmark do not cover the same splits and questions.
    """
    tables = settings(evaluations)
    methods = sorted({m for m, _, _ in tables})
    rows = []
    for bench in dict.fromkeys(b for _, _, b in tables):
        curve = [t for (m, _, b), t in tables.items() if m == reference and b == bench]
        if not curve:
            raise ValueError(
                f"reference method {reference!r} was not evaluated on {bench}; evaluated methods: {methods}"
            )
        for (method, beta, b), table in tables.items():
            if b != bench or method == reference:
                continue
            rows.append(
                PairedRow(
                    bench,
                    method,
                    beta,
                    accuracy_interval(table, resamples, seed, level),
                    matched_difference(table, curve, resamples, seed, level),
                )
            )
    return rows


def format_paired(rows: Sequence[PairedRow], reference: str) -> str:
    """A plain-text table of :func:`compare_against` rows."""
    ref = DISPLAY_NAMES.get(reference, reference)
    header = ["benchmark", "method", "beta", "tokens", "acc % [95% CI]", f"vs {ref} [95% CI]", "P(<=0)"]
    body: list[list[str] | None] = []
    for i, r in enumerate(rows):
        if i and r.benchmark != rows[i - 1].benchmark:
            body.append(None)
        a, d = r.accuracy, r.difference
        body.append(
            [
                r.benchmark,
                DISPLAY_NAMES.get(r.method, r.method),
                "" if r.beta is None else f"{r.beta:g}",
                fmt_tokens(a.tokens),
                f"{a.estimate:.2f} [{a.low:.1f}, {a.high:.1f}]",
                d.format() + ("" if np.isnan(d.estimate) or d.undefined < 0.005 else f" ({d.undefined:.0%} n/a)"),
                "" if np.isnan(d.estimate) else f"{d.p_at_most_zero:.3f}",
            ]
        )
    return render_table(header, body, text_columns=2)
