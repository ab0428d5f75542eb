"""The Depth-Synchronised Race family (agents/dsr.py): schedule, contract, behaviour.

The release-data test runs on AIME24 only (the search split) with few seeds: DSR must
beat CMC at matched cost there, and its mean cost must grow with beta.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from agents.base import Controller
from agents.cmc import ConfidenceMomentum
from agents.discovery.checks import check_candidate
from agents.dsr import DepthSyncRace, Memory, leader
from agents.registry import load_module_from_file, make_controller
from autotts_gym.data.sources import load_store
from autotts_gym.data.synthetic import default_store
from autotts_gym.evaluation.evaluate import evaluate_many, make_options, monotonicity_violations, sweep

ROOT = Path(__file__).resolve().parents[2]
BETAS = [i / 20 for i in range(21)]
# Direction in which each scheduled value moves as beta grows (+1 up, -1 down, 0 fixed):
# every move makes the race wider, the stop stricter or the futility stop rarer.
DIRECTIONS = {
    "w0": 1,
    "patience": 0,
    "w1": 1,
    "widen_step": 1,
    "max_branch": 1,
    "holders": 1,
    "live_frac": 0,
    "threshold": 1,
    "min_lead": 1,
    "futile_n": 1,
    "futile_share": -1,
    "defect_weight": 0,
}
SWITCHES = ("sync", "unanimity", "widen", "futility", "defections", "abstain")


def test_schedule_is_pure_and_monotone():
    first = [DepthSyncRace.schedule(b) for b in BETAS]
    again = [DepthSyncRace.schedule(b) for b in reversed(BETAS)][::-1]
    assert first == again
    assert set(first[0]) == set(DIRECTIONS)
    for key, sign in DIRECTIONS.items():
        values = [params[key] for params in first]
        steps = np.diff(values)
        if sign == 0:
            assert not steps.any(), key
        else:
            assert (sign * steps >= 0).all(), f"{key} moves against beta: {values}"
            assert values[-1] != values[0], f"{key} is scheduled but never moves"
    assert DepthSyncRace.schedule(-1.0) == first[0] and DepthSyncRace.schedule(2.0) == first[-1]


def test_defaults_are_beta_one_half_and_registry_builds_it():
    assert DepthSyncRace() == DepthSyncRace.from_beta(0.5)
    built = make_controller("dsr", beta=0.25)
    assert isinstance(built, DepthSyncRace) and built.beta == 0.25
    assert built.w0 == DepthSyncRace.schedule(0.25)["w0"]


def test_family_passes_the_candidate_contract():
    source = (ROOT / "agents" / "dsr.py").read_text()
    info = check_candidate(source, "agents/dsr.py")
    assert info.class_name == "DepthSyncRace" and info.family == "schedule"


RUN = ROOT / "discovery" / "runs" / "beat-cmc"


def test_dsr_is_its_discovery_round_and_every_round_passes_the_contract():
    """The family in agents/ is round 13 of the committed run (later rounds searched on from
    it): the same schedule at every beta and the same episodes, played, never bytes compared."""
    rounds = sorted(RUN.glob("round-*/candidate.py"))
    assert len(rounds) == 18, "the committed discovery run is missing"
    for path in rounds:
        check_candidate(path.read_text(), f"{path.parent.name}/candidate.py")
    found = load_module_from_file(str(RUN / "round-013" / "candidate.py")).DepthSyncRace
    split = next(iter(default_store()))
    for beta in BETAS:
        assert found.schedule(beta) == DepthSyncRace.schedule(beta)
    for beta in (0.0, 0.5, 1.0):
        assert _run_all(DepthSyncRace.from_beta(beta), split, 3) == _run_all(found.from_beta(beta), split, 3)


class ScriptedEpisode:
    """Just enough of an episode for :class:`Memory`: branch j shows ``script[j]``."""

    def __init__(self, script):
        self.script = script
        self.shown = [0] * len(script)
        self.opened = 0

    def open_and_probe(self):
        j = self.opened
        self.opened += 1
        return j, self.script[j][0]

    def continue_and_probe(self, j):
        self.shown[j] += 1
        return self.script[j][self.shown[j]]

    def latest_answer(self, j):
        return self.script[j][self.shown[j]]


def test_leader_and_defections():
    assert leader(Counter({3: 2, 1: 2, 5: 1})) == (3, 2, 2)  # ties: first in the counter
    assert leader(Counter({4: 1.5, 9: 0.0})) == (4, 1.5, 0.0)
    # Branch 0 holds 7 (two probes in a row) then moves to 5; branch 1 shows 7 once.
    episode = ScriptedEpisode([[7, 7, 5, 5], [1, 7, 5, 5]])
    memory = Memory()
    for j in (memory.open(episode), memory.open(episode)):
        for _ in range(3):
            memory.step(episode, j)
    assert memory.held == [{7, 5}, {5}]
    assert memory.defections(episode, Counter({7: 1, 5: 2})) == Counter({7: 1})


@pytest.fixture(scope="module")
def synthetic_split():
    return default_store().select(None)[0]


def _run_all(controller: Controller, split, seeds):
    options = make_options(seeds)
    out = []
    for q in range(min(10, split.num_questions)):
        for seed in options.seeds:
            episode = options.episode(split, q, seed)
            r = controller(episode)
            out.append((r.answer, r.tokens, r.branches_opened, r.stop_reason))
    return out


def test_deterministic(synthetic_split):
    controller = DepthSyncRace.from_beta(0.6)
    assert _run_all(controller, synthetic_split, 4) == _run_all(DepthSyncRace.from_beta(0.6), synthetic_split, 4)


@pytest.mark.parametrize("switch", SWITCHES)
def test_each_mechanism_can_be_switched_off(synthetic_split, switch):
    full = DepthSyncRace.from_beta(0.5)
    ablated = DepthSyncRace.from_beta(0.5, **{switch: False})
    results = _run_all(ablated, synthetic_split, 3)
    assert all(answer >= -1 and tokens > 0 for answer, tokens, _, _ in results)
    if switch == "sync":  # the clearest switch changes behaviour on any store
        assert results != _run_all(full, synthetic_split, 3)


def test_beats_cmc_at_matched_cost_on_aime24(release):
    """On the search split (AIME24, 4 models, 10 seeds): DSR at beta 0.25 and 0.5 is
    more accurate than CMC's curve at the same mean tokens, and its cost grows with beta."""
    splits = load_store(release).select(["*/aime24"])
    options = make_options(10)
    cmc_betas = (0.1, 0.25, 0.5)
    cells = [(ConfidenceMomentum.from_beta(b), s) for b in cmc_betas for s in splits]
    cells += [(DepthSyncRace.from_beta(b), s) for b in (0.25, 0.5) for s in splits]
    evs = evaluate_many(cells, options, workers=2)

    def point(group):
        return np.mean([e.summary.tokens for e in group]), np.mean([e.summary.accuracy for e in group])

    n = len(splits)
    cmc = [point(evs[i * n : (i + 1) * n]) for i in range(len(cmc_betas))]
    dsr = [point(evs[(len(cmc_betas) + i) * n : (len(cmc_betas) + i + 1) * n]) for i in range(2)]
    tokens, accuracy = zip(*cmc)
    for dsr_tokens, dsr_accuracy in dsr:
        assert tokens[0] <= dsr_tokens <= tokens[-1], (dsr, cmc)
        matched = float(np.interp(dsr_tokens, tokens, accuracy))
        assert dsr_accuracy >= matched + 0.5, f"DSR {dsr_accuracy:.2f}% at {dsr_tokens:.0f} vs CMC {matched:.2f}%"

    evaluations = sweep(DepthSyncRace, [0.0, 0.25, 0.5, 0.75, 1.0], splits, make_options(3), workers=2)
    assert monotonicity_violations(evaluations) == []
