"""Lock-step pool vote: decode a fixed set of branches in lock-step and stop on a
confident completed pool.

Mechanisms:
* Lock-step width: ``width`` branches are opened and decoded one interval per round,
  so short (usually confident) trajectories finish first.
* Replacement: a finished branch is replaced by a new one until ``max_branch`` were opened.
* Confidence stop: stop as soon as the Beta-majority confidence of the finished answers
  reaches ``threshold`` with at least ``min_finished`` of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.base import Controller, clip01, round_half_even
from autotts_gym.engine.voting import majority, vote_confidence


@dataclass(frozen=True)
class LockstepPoolVote(Controller):
    """Lock-step decoding with a confidence stop on the completed pool."""

    name = "lockstep-pool-vote"
    width: int = 4
    max_branch: int = 32
    threshold: float = 0.9
    min_finished: int = 3
    max_rounds: int = 400

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """Width 2..8, up to 6..64 branches, threshold 0.80..0.97, 2..5 finished answers."""
        b = clip01(beta)
        return {
            "width": round_half_even(2 + 6 * b),
            "max_branch": round_half_even(6 + 58 * b),
            "threshold": 0.80 + 0.17 * b,
            "min_finished": round_half_even(2 + 3 * b),
        }

    def run(self, episode):
        cap = min(self.max_branch, episode.num_available)
        for _ in range(min(self.width, cap)):
            episode.open_and_probe()
        for _ in range(self.max_rounds):
            finals = episode.finished_answers
            if len(finals) >= self.min_finished:
                winner, _, _, conf = vote_confidence(finals)
                if conf >= self.threshold:
                    return episode.answer(winner, reason="confident")
            while len(episode.active_branches) < self.width and episode.num_opened < cap:
                episode.open_and_probe()
            live = episode.active_branches
            if not live:
                break
            episode.continue_and_probe_many(live)
        finals = episode.finished_answers
        return episode.answer(majority(finals)[0] if finals else None, reason="end")
