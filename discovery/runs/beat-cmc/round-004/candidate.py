"""Round 4: a lock-step race in which branches commit to corroborated answers.

Round 3 showed that probe votes do not cut CMC's cost: its EMA trend and completed-pool
floor gate the stop. This round drops the EMA and builds the stop on commitments:

* Lock-step race: ``width`` branches are decoded one interval per round, so short
  trajectories finish first (shorter reasoning is more often right).
* ERR abstains: the no-answer string never votes.
* Commitment: a live branch whose latest probe has equalled a final answer of the
  completed pool for ``commit_after`` consecutive rounds commits to it: it is pruned
  (nothing more is decoded) and keeps a vote of weight ``commit_weight``.
* Confidence stop: stop when the Beta-majority confidence of finished + committed votes
  reaches ``threshold`` with at least ``min_votes`` votes.
* Widening: every round with fewer than ``width`` live branches (after finishing or
  committing) a new branch is opened, until ``max_branch`` are opened.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from agents.base import Controller, clip01
from autotts_gym.voting import beta_confidence


@dataclass(frozen=True)
class CommitRace(Controller):
    """Lock-step race with commitments to corroborated answers and a confidence stop."""

    name = "commit-race"
    width: int = 6
    max_branch: int = 32
    threshold: float = 0.9
    min_votes: float = 3.0
    commit_after: int = 2
    commit_weight: float = 0.9
    max_rounds: int = 400

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """Width, branch cap, threshold and vote floor grow with beta."""
        b = clip01(beta)
        return {
            "width": round(4 + 8 * b),
            "max_branch": round(8 + 56 * b),
            "threshold": 0.85 + 0.13 * b,
            "min_votes": 2.0 + 3.0 * b,
            "commit_after": 2,
            "commit_weight": 0.9,
        }

    def run(self, episode):
        err = episode.no_answer_id
        cap = min(self.max_branch, episode.num_available)
        votes: Counter = Counter()  # finished and committed votes
        streak: Counter = Counter()  # rounds a live branch has probed a pool answer
        seen = 0  # finished answers already counted
        for _ in range(self.max_rounds):
            while len(episode.active_branches) < self.width and episode.num_opened < cap:
                episode.open_and_probe()
            live = episode.active_branches
            if not live:
                break
            episode.continue_and_probe_many(live)
            finals = episode.finished_answers
            for a in finals[seen:]:
                if a != err:
                    votes[a] += 1
            seen = len(finals)
            for j in episode.active_branches:
                a = episode.latest_answer(j)
                streak[j] = streak[j] + 1 if a in votes and a != err else 0
                if streak[j] >= self.commit_after:
                    episode.prune(j)
                    votes[a] += self.commit_weight
            if votes:
                winner = max(votes, key=votes.get)
                v1 = votes[winner]
                v2 = max((w for a, w in votes.items() if a != winner), default=0.0)
                if v1 + v2 >= self.min_votes and beta_confidence(v1, v2) >= self.threshold:
                    return episode.answer(winner, reason="confident")
        if votes:
            return episode.answer(max(votes, key=votes.get), reason="end")
        return episode.answer(reason="end")
