"""Probe consensus: stop early when the live branches' probe answers agree, before
any branch has finished.

Mechanisms:
* Probe vote: every unpruned branch votes with its latest probe answer; ERR abstains.
* Stability: the vote's leader must stay the same for ``patience`` consecutive rounds and
  reach Beta-majority confidence ``threshold`` before the controller stops.
* Finished answers count double: a completed trajectory is more reliable than a probe.
* Widening: while the vote is not confident, one more branch is opened per round, up to
  ``max_branch``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from agents.base import Controller, clip01, round_half_even
from autotts_gym.engine.voting import beta_confidence, top_two


@dataclass(frozen=True)
class ProbeConsensus(Controller):
    """Stop on a stable, confident vote of probe and final answers."""

    name = "probe-consensus"
    n_init: int = 4
    max_branch: int = 24
    threshold: float = 0.9
    patience: int = 3
    max_rounds: int = 400

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """More initial branches, a larger cap, a stricter threshold and more patience as beta grows."""
        b = clip01(beta)
        return {
            "n_init": round_half_even(3 + 5 * b),
            "max_branch": round_half_even(6 + 42 * b),
            "threshold": 0.85 + 0.13 * b,
            "patience": round_half_even(2 + 4 * b),
        }

    def run(self, episode):
        err = episode.no_answer_id
        cap = min(self.max_branch, episode.num_available)
        for _ in range(min(self.n_init, cap)):
            episode.open_and_probe()
        leader, stable = -1, 0
        for _ in range(self.max_rounds):
            votes: Counter = Counter()
            for j, a in enumerate(episode.latest_answers):
                if a >= 0 and a != err and not episode.is_pruned(j):
                    votes[a] += 2 if episode.is_finished(j) else 1
            winner, v1, v2 = top_two(votes)
            stable = stable + 1 if winner == leader and winner >= 0 else 0
            leader = winner
            confident = beta_confidence(v1, v2) >= self.threshold
            if confident and stable >= self.patience:
                return episode.answer(leader, reason="stable-consensus")
            if not confident and episode.num_opened < cap:
                episode.open_and_probe()
            live = episode.active_branches
            if not live:
                break
            episode.continue_and_probe_many(live)
        return episode.answer(leader if leader >= 0 else None, reason="end")
