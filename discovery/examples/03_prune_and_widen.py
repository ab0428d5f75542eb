"""Prune and widen: lock-step decoding that abandons persistent dissenters and widens
when the completed pool is undecided.

Mechanisms:
* Lock-step depth over the live branches, one interval per round.
* Conservative pruning: a live branch whose latest probe differs from the leader of the
  probe vote for ``patience`` consecutive rounds is pruned, always keeping two live.
* Widening on doubt: while the completed pool's confidence is below ``threshold``, open
  ``widen`` new branches every ``widen_every`` rounds, up to ``max_branch``.
* Stop when the completed pool is confident with at least ``min_finished`` answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.base import Controller, clip01, round_half_even
from autotts_gym.engine.voting import majority, vote_confidence


@dataclass(frozen=True)
class PruneAndWiden(Controller):
    """Lock-step decoding with dissent pruning and widening on doubt."""

    name = "prune-and-widen"
    n_init: int = 4
    max_branch: int = 32
    threshold: float = 0.9
    min_finished: int = 3
    patience: int = 6
    widen: int = 2
    widen_every: int = 4
    max_rounds: int = 400

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """Everything that buys accuracy with tokens grows with beta."""
        b = clip01(beta)
        return {
            "n_init": round_half_even(3 + 5 * b),
            "max_branch": round_half_even(6 + 58 * b),
            "threshold": 0.82 + 0.15 * b,
            "min_finished": round_half_even(2 + 3 * b),
            "patience": round_half_even(4 + 8 * b),
            "widen": round_half_even(1 + 2 * b),
        }

    def run(self, episode):
        cap = min(self.max_branch, episode.num_available)
        for _ in range(min(self.n_init, cap)):
            episode.open_and_probe()
        dissent: dict[int, int] = {}
        for step in range(self.max_rounds):
            finals = episode.finished_answers
            winner, _, _, conf = vote_confidence(finals)
            if len(finals) >= self.min_finished and conf >= self.threshold:
                return episode.answer(winner, reason="confident")
            live = episode.active_branches
            leader = majority(episode.latest_answer(j) for j in live if episode.latest_answer(j) >= 0)[0]
            for j in live:
                dissent[j] = dissent.get(j, 0) + 1 if episode.latest_answer(j) != leader else 0
            for j in sorted(live, key=lambda j: -dissent.get(j, 0)):
                if len(episode.active_branches) <= 2 or dissent.get(j, 0) < self.patience:
                    break
                episode.prune(j)
            if conf < self.threshold and step % self.widen_every == self.widen_every - 1:
                for _ in range(min(self.widen, cap - episode.num_opened)):
                    episode.open_and_probe()
            live = episode.active_branches
            if not live:
                break
            episode.continue_and_probe_many(live)
        finals = episode.finished_answers
        return episode.answer(majority(finals)[0] if finals else None, reason="end")
