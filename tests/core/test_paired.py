"""Paired comparisons (autotts_gym/reporting/paired.py) and ``autotts compare --against``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.registry import make_controller
from autotts_gym.cli.main import main
from autotts_gym.data.sources import load_store
from autotts_gym.evaluation.evaluate import evaluate_many, make_options
from autotts_gym.reporting.paired import (
    QuestionTable,
    accuracy_interval,
    compare_against,
    format_paired,
    matched_difference,
)


def table(label, accuracy, tokens):
    """A QuestionTable from per-split lists."""
    return QuestionTable(
        label,
        tuple(f"m{i}/b" for i in range(len(accuracy))),
        tuple(np.asarray(a, float) for a in accuracy),
        tuple(np.asarray(t, float) for t in tokens),
    )


@pytest.fixture(scope="module")
def cells():
    """SC and CMC at two betas each, on both splits of the default store, 4 seeds."""
    store = load_store(None)
    controllers = [make_controller(m, beta=b) for m in ("sc", "cmc") for b in (0.0, 1.0)]
    return evaluate_many([(c, s) for c in controllers for s in store], make_options(4), workers=1)


def test_question_table_matches_the_records(cells):
    evs = [e for e in cells if e.summary.method == "cmc" and e.summary.beta == 1.0]
    t = QuestionTable.from_evaluations(evs)
    assert t.label == "cmc beta=1" and t.splits == tuple(sorted(e.split.name for e in evs))
    for name, acc, tok in zip(t.splits, t.accuracy, t.tokens):
        ev = next(e for e in evs if e.split.name == name)
        q = ev.records["question"]
        for i in (0, 7, len(acc) - 1):
            assert acc[i] == pytest.approx(100 * ev.records["correct"][q == i].mean())
            assert tok[i] == pytest.approx(ev.records["tokens"][q == i].mean())
    # Every question has the same number of seeds, so the model average equals Table 1's.
    assert t.mean_accuracy == pytest.approx(np.mean([e.summary.accuracy for e in evs]))
    assert t.mean_tokens == pytest.approx(np.mean([e.summary.tokens for e in evs]))


def test_a_curve_against_itself_is_exactly_zero(cells):
    tables = [QuestionTable.from_evaluations([e for e in cells if (e.summary.method, e.summary.beta) == ("cmc", b)]) for b in (0.0, 1.0)]
    for t in tables:
        d = matched_difference(t, tables, resamples=300)
        assert (d.estimate, d.low, d.high) == (0.0, 0.0, 0.0) and d.p_at_most_zero == 1.0 and d.undefined == 0.0


def test_a_constant_shift_has_a_zero_width_interval():
    rng = np.random.default_rng(1)
    base = [rng.uniform(0, 100, 30), rng.uniform(0, 100, 25)]
    toks = [rng.uniform(1e4, 1e5, 30), rng.uniform(1e4, 1e5, 25)]
    lo = table("ref lo", base, [t * 0.5 for t in toks])
    hi = table("ref hi", base, [t * 2.0 for t in toks])
    up = table("up", [b + 10 for b in base], toks)
    d = matched_difference(up, [lo, hi], resamples=500)
    assert d.estimate == pytest.approx(10.0) and d.low == pytest.approx(10.0) and d.high == pytest.approx(10.0)
    assert d.p_at_most_zero == 0.0


def test_interpolation_between_curve_points():
    ref = [table("r0", [[0.0, 0.0]], [[100.0, 100.0]]), table("r1", [[50.0, 50.0]], [[300.0, 300.0]])]
    mid = table("mid", [[40.0, 40.0]], [[150.0, 150.0]])  # the curve gives 12.5 at 150 tokens
    assert matched_difference(mid, ref, resamples=50).estimate == pytest.approx(27.5)
    outside = table("out", [[40.0, 40.0]], [[400.0, 400.0]])
    d = matched_difference(outside, ref, resamples=50)
    assert np.isnan(d.estimate) and d.format() == "n/a"


def test_pairing_narrows_the_interval_of_correlated_methods():
    """Question difficulty is shared: the difference is far more precise than either
    accuracy. With independent resamples per method this would fail."""
    rng = np.random.default_rng(2)
    difficulty = rng.uniform(0, 100, 30)
    toks = [np.full(30, 2e5)]
    ref = [table("r0", [difficulty], [toks[0] * 0.5]), table("r1", [difficulty + 1], [toks[0] * 2])]
    a = table("a", [np.clip(difficulty + rng.normal(3, 2, 30), 0, 100)], toks)
    d = matched_difference(a, ref, resamples=2000)
    acc = accuracy_interval(a, resamples=2000)
    assert d.high - d.low < 0.25 * (acc.high - acc.low)
    assert d.low < d.estimate < d.high and d.low > 0


def test_intervals_cover_the_truth_at_about_their_level():
    """Simulated questions with a true +2 point edge: the 90% interval covers +2 in
    about 90% of repeated experiments."""
    rng = np.random.default_rng(3)
    hits = 0
    trials = 150
    for _ in range(trials):
        p = rng.uniform(0.05, 0.95, 30)
        ref_acc = 100 * rng.binomial(40, p) / 40
        a_acc = 100 * rng.binomial(40, np.clip(p + 0.02, 0, 1)) / 40
        ref = [table("r0", [ref_acc], [np.full(30, 1e5)]), table("r1", [ref_acc], [np.full(30, 3e5)])]
        d = matched_difference(table("a", [a_acc], [np.full(30, 2e5)]), ref, resamples=400, level=0.9)
        truth = 100 * (np.clip(p + 0.02, 0, 1) - p).mean()
        hits += d.low <= truth <= d.high
    assert 0.78 <= hits / trials <= 0.98


def test_mismatched_settings_are_refused():
    a = table("a", [[1.0, 2.0]], [[1.0, 1.0]])
    with pytest.raises(ValueError, match="cannot pair 'a'.*'b'"):
        matched_difference(a, [table("b", [[1.0, 2.0], [1.0]], [[1.0, 1.0], [1.0]])])
    with pytest.raises(ValueError, match="m0/b: 'a' has 2 questions, 'c' has 3"):
        matched_difference(a, [table("c", [[1.0, 2.0, 3.0]], [[1.0, 1.0, 1.0]])])
    with pytest.raises(ValueError, match="at least one point"):
        matched_difference(a, [])


def test_compare_against_groups_by_method_beta_and_benchmark(cells):
    rows = compare_against(cells, "cmc", resamples=200)
    assert [(r.benchmark, r.method, r.beta) for r in rows] == [
        ("search", "sc", 0.0),
        ("search", "sc", 1.0),
        ("heldout", "sc", 0.0),
        ("heldout", "sc", 1.0),
    ]
    text = format_paired(rows, "cmc")
    assert "vs CMC [95% CI]" in text and text.count("SC") == 4
    with pytest.raises(ValueError, match="'ppo' was not evaluated on search"):
        compare_against(cells, "ppo")


def test_cli_compare_against(capsys, tmp_path):
    argv = ["compare", "default", "--methods", "sc,cmc", "--betas", "0,0.5,1", "--seeds", "3", "--workers", "1"]
    assert main([*argv, "--against", "cmc", "--resamples", "300", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "paired against cmc" in out and "P(<=0)" in out
    rows = json.loads((tmp_path / "paired.json").read_text())
    assert len(rows) == 6 and {r["method"] for r in rows} == {"sc"}
    inside = [r for r in rows if r["difference"]["estimate"] is not None and not np.isnan(r["difference"]["estimate"])]
    assert inside and all(r["difference"]["low"] <= r["difference"]["estimate"] <= r["difference"]["high"] for r in inside)

    # A reference that is not evaluated is refused before any evaluation.
    assert main([*argv, "--against", "dsr", "--out", str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err
    assert "--against dsr" in err and not (tmp_path / "no").exists()
