"""Round 2: probe votes corroborated by finished answers only with lock-step decoding.

Mechanisms:
* ERR abstains: the no-answer string never votes.
* Lock-step width: ``width`` branches are decoded one interval per round, so the
  completed pool fills in length order (short trajectories first).
* Corroborated probes vote: a live branch whose latest probe equals the final answer of
  some finished branch casts a vote of weight ``probe_weight`` (round 1 also accepted two
  agreeing live probes: early probes share junk intermediate values, so it stopped far too
  early); an uncorroborated probe is treated as noise.
* Completed floor: never stop before ``min_finished`` branches finished.
* Confidence stop: stop when the Beta-majority confidence of the weighted vote reaches
  ``threshold`` with at least ``min_votes`` votes; finished branches are replaced by new
  ones until ``max_branch`` are opened.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from agents.base import Controller, clip01
from autotts_gym.voting import beta_confidence


@dataclass(frozen=True)
class FinalCorroboration(Controller):
    """Lock-step decoding with corroborated probe votes and a confidence stop."""

    name = "final-corroboration"
    width: int = 4
    max_branch: int = 32
    threshold: float = 0.9
    min_votes: float = 3.0
    min_finished: int = 2
    probe_weight: float = 0.8
    max_rounds: int = 400

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """Width, branch cap, threshold and vote floor all grow with beta."""
        b = clip01(beta)
        return {
            "width": round(3 + 5 * b),
            "max_branch": round(8 + 56 * b),
            "threshold": 0.85 + 0.13 * b,
            "min_votes": 2.0 + 3.0 * b,
            "probe_weight": 0.5,
            "min_finished": round(1 + 2 * b),
        }

    def run(self, episode):
        err = episode.no_answer_id
        cap = min(self.max_branch, episode.num_available)
        for _ in range(min(self.width, cap)):
            episode.open_and_probe()
        winner = -1
        for _ in range(self.max_rounds):
            votes = self.tally(episode, err)
            if votes:
                winner, v1, v2 = top_two_weighted(votes)
                if (
                    len(episode.finished_answers) >= self.min_finished
                    and v1 + v2 >= self.min_votes
                    and beta_confidence(v1, v2) >= self.threshold
                ):
                    return episode.answer(winner, reason="confident")
            live = episode.active_branches
            while len(live) < self.width and episode.num_opened < cap:
                live.append(episode.open_and_probe()[0])
                live = episode.active_branches
            if not live:
                break
            episode.continue_and_probe_many(live)
        votes = self.tally(episode, err)
        return episode.answer(top_two_weighted(votes)[0] if votes else None, reason="end")

    def tally(self, episode, err: int) -> Counter:
        """Weighted votes: finished answers 1, live probes equal to a final answer ``probe_weight``."""
        votes: Counter = Counter(a for a in episode.finished_answers if a != err)
        probes = [episode.latest_answer(j) for j in episode.active_branches]
        probes = [a for a in probes if a >= 0 and a != err]
        finals = set(votes)
        for a in probes:
            if a in finals:
                votes[a] += self.probe_weight
        return votes


def top_two_weighted(votes: Counter) -> tuple[int, float, float]:
    """Leader (first seen among ties), its weight and the runner-up's weight."""
    winner = max(votes, key=votes.get)
    v1 = votes[winner]
    v2 = max((w for a, w in votes.items() if a != winner), default=0.0)
    return winner, v1, v2
