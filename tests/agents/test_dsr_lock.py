"""DSR-L (agents/dsr_lock.py): DSR plus the early-consensus lock and finishing-order weights.

It must be the discovery run's round 17, episode for episode, keep DSR's contract, and
have a pure schedule whose cost grows with beta.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from agents.discovery.checks import check_candidate
from agents.dsr_lock import LockedDepthSyncRace
from agents.registry import load_module_from_file, make_controller
from autotts_gym.data.sources import load_store
from autotts_gym.data.synthetic import default_store
from autotts_gym.evaluation.evaluate import make_options, monotonicity_violations, sweep

ROOT = Path(__file__).resolve().parents[2]
ROUND_17 = ROOT / "discovery" / "runs" / "beat-cmc" / "round-017" / "candidate.py"


def run_all(controller, split, seeds: int) -> list[tuple]:
    options = make_options(seeds)
    out = []
    for q in range(split.num_questions):
        for seed in options.seeds:
            r = controller(options.episode(split, q, seed))
            out.append((r.answer, r.tokens, r.branches_opened, r.stop_reason))
    return out


def test_schedule_is_round_17s_and_registry_builds_it():
    candidate = load_module_from_file(str(ROUND_17)).RankedLockWide
    for beta in [i / 20 for i in range(21)]:
        assert LockedDepthSyncRace.schedule(beta) == candidate.schedule(beta)
        assert LockedDepthSyncRace.schedule(beta) == LockedDepthSyncRace.schedule(beta)
    assert make_controller("dsr-lock") == LockedDepthSyncRace()
    assert LockedDepthSyncRace() == LockedDepthSyncRace.from_beta(0.5)
    check_candidate(ROUND_17.read_text(), ROUND_17.name)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_same_episodes_as_discovery_round_17(beta):
    split = next(iter(default_store()))
    candidate = load_module_from_file(str(ROUND_17)).RankedLockWide.from_beta(beta)
    family = LockedDepthSyncRace.from_beta(beta)
    assert run_all(family, split, 3) == run_all(candidate, split, 3)


@pytest.mark.parametrize("switch", ["lock", "ranked"])
def test_each_new_mechanism_can_be_switched_off(switch):
    split = next(iter(default_store()))
    candidate = load_module_from_file(str(ROUND_17)).RankedLockWide.from_beta(1.0, **{switch: False})
    assert run_all(LockedDepthSyncRace.from_beta(1.0, **{switch: False}), split, 3) == run_all(candidate, split, 3)


def test_cost_grows_with_beta_on_aime24(release):
    splits = load_store(release).select(["*/aime24"])
    evaluations = sweep(LockedDepthSyncRace, [0.0, 0.25, 0.5, 0.75, 1.0], splits, make_options(3), workers=2)
    assert monotonicity_violations(evaluations) == []


@pytest.mark.parametrize("family, label, extra", [("dsr", "DSR", set()), ("dsr-lock", "DSR-L", {"no lock", "no finishing-order weights"})])
def test_beat_cmc_example_runs_end_to_end_for_each_family(tmp_path, family, label, extra):
    # The example on the embedded store (its search and held-out splits), tiny settings.
    import json
    import subprocess
    import sys

    command = [
        sys.executable, str(ROOT / "examples" / "beat_cmc.py"), "--store", "default", "--search", "search",
        "--heldout", "heldout", "--family", family, "--seeds", "1", "--betas", "0,1", "--cmc-betas", "0,1",
        "--handmade-betas", "1", "--ablation-betas", "1", "--workers", "1", "--out", str(tmp_path),
    ]  # fmt: skip
    # This checkout's packages first, whatever an editable install elsewhere points at.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    assert f"{label} cost monotone in beta on every split" in done.stdout
    ablation = json.loads((tmp_path / "ablation.json").read_text())
    variants = {row["variant"] for row in ablation}
    assert f"full {label}" in variants and extra <= variants
    assert ("no lock" in variants) == (family == "dsr-lock")
    for name in ("summary.json", "curves.json", "beat_cmc.png", "beat_cmc_splits.png"):
        assert (tmp_path / name).stat().st_size > 0
    paired = json.loads((tmp_path / "paired.json").read_text())
    assert sorted(paired) == ["heldout", "search"] and [r["beta"] for r in paired["heldout"]] == [0.0, 1.0]
    assert f"{label} with 95% bootstrap intervals over questions" in done.stdout


def test_top_end_check_runs_and_compares_against_dsr_l(tmp_path):
    # discovery/top_end.py on the embedded store's search split, 2 seeds.
    import json
    import subprocess
    import sys

    script = ROOT / "discovery" / "top_end.py"
    command = [sys.executable, str(script), "--store", "default", "--benchmark", "search", "--seeds", "2", "--workers", "1", "--out", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    assert "vs DSR-L curve [95% CI]" in done.stdout and "synthetic/search" in done.stdout
    rows = json.loads((tmp_path / "top_end.json").read_text())
    curve = [r for r in rows if not r["changes"]]
    assert [r["beta"] for r in curve] == [i / 8 for i in range(9)] and all(r["vs_dsr_l"] is None for r in curve)
    variants = [r for r in rows if r["changes"]]
    assert len(variants) == 18 and all(r["vs_dsr_l"] is not None for r in variants)


ROUND_18 = ROOT / "discovery" / "runs" / "beat-cmc" / "round-018" / "candidate.py"


def test_round_18_is_round_17_with_another_final_pick():
    """Round 18 (not promoted) keeps round 17's race, stops and costs; with the pick off
    it plays round 17's episodes exactly, and it passes the candidate contract."""
    check_candidate(ROUND_18.read_text(), ROUND_18.name)
    race = load_module_from_file(str(ROUND_18)).LearnedPickRace
    split = next(iter(default_store()))
    for beta in (0.0, 1.0):
        dsr_l = run_all(LockedDepthSyncRace.from_beta(beta), split, 3)
        assert run_all(race.from_beta(beta, pick=False), split, 3) == dsr_l
        picked = run_all(race.from_beta(beta), split, 3)
        assert [r[1:] for r in picked] == [r[1:] for r in dsr_l]  # same tokens, branches, stops


def test_round_18_answer_features_by_hand():
    features = load_module_from_file(str(ROUND_18)).answer_features
    # Three finished branches (final, tokens, probes); ERR (id 9) abstains.
    pool = [(1, 1000, [5, 5, 1]), (2, 2000, [1, 1, 2, 2]), (1, 3000, [7, 1, 1, 1]), (9, 500, [9, 9])]
    got = features(pool, 9)
    assert list(got) == [1, 2]
    n = 4  # ERR counts in the pool's size and ranks, but gets no row
    ranks = {1000: 1 / n, 2000: 2 / n, 3000: 3 / n, 500: 0.0}
    one = got[1]
    assert one[0] == pytest.approx(2 / n) and one[1] == pytest.approx(math.log(2))
    assert one[2] == pytest.approx((ranks[1000] + ranks[3000]) / 2) and one[3] == pytest.approx(ranks[1000])
    assert one[4] == pytest.approx(1 / n)  # branch 2 held 1 (two probes in a row) and ended on 2
    assert one[5] == pytest.approx(3 / n)  # the probes of branches 1-3 showed 1
    assert one[6] == pytest.approx((1 / 3 + 3 / 4) / 2)  # final runs: 1 of 3 probes, 3 of 4
    assert one[7] == pytest.approx((1 / (1 + 1) + 1 / (1 + 3)) / math.log(n + 1))
    two = got[2]
    assert two[4] == 0.0 and two[5] == pytest.approx(1 / n) and two[6] == pytest.approx(2 / 4)
