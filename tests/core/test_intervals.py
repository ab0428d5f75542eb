"""The 95% intervals of a summary (autotts_gym.evaluation.evaluate): percentile bootstrap over
questions, checked against the exact bootstrap distribution and for coverage on
simulated questions whose accuracy and cost differ from question to question."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from autotts_gym.evaluation.evaluate import bootstrap_ci, summarize


def test_bootstrap_ci_is_the_exact_95_percent_percentile_interval():
    # Five questions: all 5**5 equally likely resamples can be enumerated, which gives
    # the exact bootstrap distribution of the mean (its values lie on a grid of 2).
    values = np.array([0.0, 10.0, 20.0, 60.0, 100.0])
    every_resample = np.array(list(itertools.product(range(5), repeat=5)))
    means = values[every_resample].mean(axis=1)
    exact = np.percentile(means, [2.5, 97.5])
    assert tuple(exact) == (8.0, 74.0)
    assert tuple(np.percentile(means, [5, 95])) == (12.0, 66.0)  # what a 90% interval gives
    lo, hi = bootstrap_ci(values, resamples=200_000)
    assert lo == pytest.approx(exact[0], abs=1.0) and hi == pytest.approx(exact[1], abs=1.0)


def test_bootstrap_ci_edge_cases():
    lo, hi = bootstrap_ci(np.array([]))
    assert np.isnan(lo) and np.isnan(hi)
    assert bootstrap_ci(np.array([42.0, 42.0, 42.0])) == (42.0, 42.0)
    assert bootstrap_ci(np.array([3.0, 5.0]), seed=7) == bootstrap_ci(np.array([3.0, 5.0]), seed=7)


# ----------------------------------------------------------- simulated questions
QUESTIONS, SEEDS, REPLICATIONS = 30, 20, 200
TRUE_ACCURACY = 50.0  # percent: per-question accuracies are uniform on [0, 1]
TRUE_TOKENS = 5000.0  # per-question mean tokens are uniform on [1000, 9000]


def simulated_records(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One evaluation's records: QUESTIONS questions drawn from a population, SEEDS
    episodes each. Most of the spread is between questions, as in the release."""
    p = rng.uniform(0.0, 1.0, QUESTIONS)
    mu = rng.uniform(1000.0, 9000.0, QUESTIONS)
    question = np.repeat(np.arange(QUESTIONS, dtype=np.int32), SEEDS)
    tokens = np.rint(mu[question] * rng.uniform(0.8, 1.2, question.size)).astype(np.int64)
    return {
        "question": question,
        "seed": np.tile(np.arange(SEEDS, dtype=np.int64), QUESTIONS),
        "correct": rng.random(question.size) < p[question],
        "tokens": tokens,
        "sequential_tokens": tokens,
        "branches_opened": np.ones(question.size, np.int32),
        "stop_reason": np.full(question.size, "answer", object),
    }


def covers(interval: tuple[float, float], truth: float) -> bool:
    return interval[0] <= truth <= interval[1]


@pytest.fixture(scope="module")
def coverage() -> dict[str, float]:
    """Over REPLICATIONS simulated evaluations: how often each interval holds the
    population mean, for the summary's intervals and for intervals that resample
    episodes as if they were independent."""
    rng = np.random.default_rng(20260517)
    split = SimpleNamespace(name="sim/b", num_questions=QUESTIONS, info=SimpleNamespace(model="sim", benchmark="b"))
    controller = SimpleNamespace(name="sim")
    hits = dict.fromkeys(("accuracy", "tokens", "accuracy_by_episode", "tokens_by_episode"), 0)
    for _ in range(REPLICATIONS):
        records = simulated_records(rng)
        summary = summarize(controller, split, records)
        hits["accuracy"] += covers(summary.accuracy_ci, TRUE_ACCURACY)
        hits["tokens"] += covers(summary.tokens_ci, TRUE_TOKENS)
        hits["accuracy_by_episode"] += covers(bootstrap_ci(records["correct"] * 100.0, resamples=500), TRUE_ACCURACY)
        hits["tokens_by_episode"] += covers(bootstrap_ci(records["tokens"].astype(float), resamples=500), TRUE_TOKENS)
    return {k: v / REPLICATIONS for k, v in hits.items()}


def test_summary_intervals_cover_the_population_mean(coverage):
    # A 95% interval over questions: a percentile bootstrap of 30 questions covers a
    # little under 95%; 200 replications put the estimate within about +-3 points.
    assert coverage["accuracy"] >= 0.88, coverage
    assert coverage["tokens"] >= 0.88, coverage


def test_intervals_over_episodes_are_too_narrow(coverage):
    # Resampling the 600 episodes ignores that they come from only 30 questions: the
    # between-question variance is lost and the interval covers far less than 95%.
    assert coverage["accuracy_by_episode"] <= 0.75, coverage
    assert coverage["tokens_by_episode"] <= 0.75, coverage
