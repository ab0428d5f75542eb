"""Round 11: round 10 plus explicit length preferences.

Shorter trajectories are more often right (in AIME24 the within-question accuracy of a
trajectory falls with its length relative to the question's median). The race already
decides on the shortest branches; this round adds two explicit preferences:

* Inverse-length votes: a finished answer weighs (1 / length)^``length_power``
  (rescaled so the weights sum to the number of votes).
* Length deadline: once contested, answer the leader when the frontier reaches
  ``deadline`` times the shortest finished length.

Otherwise as round 10."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from agents.base import Controller, clip01
from autotts_gym.voting import beta_confidence


@dataclass(frozen=True)
class RaceLengthWeights(Controller):
    """Depth-synchronised race with unanimity exit, contest widening and futility stop."""

    name = "race-length-weights"
    w0: int = 5
    patience: int = 0
    w1: int = 16
    widen_step: int = 2
    max_branch: int = 40
    holders: int = 4
    live_frac: float = 0.6
    threshold: float = 0.9
    min_lead: int = 2
    futile_n: int = 6
    futile_share: float = 0.3
    length_power: float = 1.0
    deadline: float = 2.0
    max_rounds: int = 400

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """Round 10's schedule; the deadline loosens with beta."""
        b = clip01(beta)
        return {
            "w0": round(3 + 7 * b),
            "patience": 12,
            "w1": round(4 + 40 * b),
            "widen_step": round(1 + b),
            "max_branch": round(8 + 56 * b),
            "holders": round(3 + 4 * b),
            "live_frac": 0.5,
            "threshold": 0.76 + 0.14 * b,
            "min_lead": round(1 + 4 * b),
            "futile_n": round(4 + 8 * b),
            "futile_share": 0.5 - 0.25 * b,
            "length_power": 1.0,
            "deadline": 2.0 + 1.0 * b,
        }

    def run(self, episode):
        err = episode.no_answer_id
        cap = min(self.max_branch, episode.num_available)
        frontier = 1
        self.open(episode, self.w0, cap, frontier)
        contested = False
        first_finish = -1
        for rnd in range(self.max_rounds):
            frontier += 1
            for j in episode.active_branches:
                self.catch_up(episode, j, frontier)
            counts = self.pool(episode, err)
            if counts:
                scores = self.scores(episode, counts)
                lead, v1, v2 = leader(scores)
                if first_finish < 0:
                    first_finish = rnd
                if not contested and self.unanimous(episode, counts, lead):
                    return episode.answer(lead, reason="unanimous")
                if v1 - v2 >= self.min_lead and beta_confidence(v1, v2) >= self.threshold:
                    return episode.answer(lead, reason="confident")
                n = sum(counts.values())
                if n >= self.futile_n and counts[lead] < self.futile_share * n:
                    return episode.answer(lead, reason="futile")
                if contested and frontier >= self.deadline * min(episode.depth(j) for j in episode.finished_branches):
                    return episode.answer(lead, reason="deadline")
                if contested:
                    self.open(episode, self.widen_step, cap, frontier)
                elif len(counts) > 1 or rnd - first_finish >= self.patience:
                    contested = True
                    self.open(episode, self.w1 - len(episode.active_branches), cap, frontier)
            if not episode.active_branches:
                if episode.num_opened >= cap:
                    break
                self.open(episode, max(1, self.widen_step), cap, frontier)
        counts = self.pool(episode, err)
        if not counts:
            return episode.answer(reason="end")
        return episode.answer(leader(self.scores(episode, counts))[0], reason="end")

    def pool(self, episode, err: int) -> Counter:
        """Votes of the finished branches (ERR abstains), shortest first."""
        finished = sorted(episode.finished_branches, key=episode.depth)
        return Counter(a for a in (episode.latest_answer(j) for j in finished) if a != err)

    def scores(self, episode, counts: Counter) -> Counter:
        """Votes weighted by (1 / length)^length_power, rescaled to the same total."""
        finished = [j for j in episode.finished_branches if episode.latest_answer(j) in counts]
        weights = [episode.depth(j) ** -self.length_power for j in finished]
        scale = len(finished) / sum(weights)
        votes: Counter = Counter()
        for j, w in zip(finished, weights):
            votes[episode.latest_answer(j)] += w * scale
        return votes

    def unanimous(self, episode, counts: Counter, lead: int) -> bool:
        """One final answer, no live branch probing another, enough supporters."""
        if len(counts) > 1:
            return False
        live = episode.active_branches
        probing = Counter(episode.latest_answer(j) for j in live)
        if any(a in counts and a != lead for a in probing):
            return False
        on = probing[lead]
        return counts[lead] + on >= self.holders and on >= self.live_frac * len(live)

    def open(self, episode, n: int, cap: int, frontier: int) -> None:
        """Open up to n branches (within cap), each caught up to the frontier."""
        for _ in range(max(0, min(n, cap - episode.num_opened))):
            j = episode.open_and_probe()[0]
            self.catch_up(episode, j, frontier)

    @staticmethod
    def catch_up(episode, j: int, frontier: int) -> None:
        """Decode branch j up to depth ``frontier`` (continue + probe per interval)."""
        while episode.is_active(j) and episode.depth(j) < frontier:
            episode.continue_and_probe(j)


def leader(votes: Counter) -> tuple[int, float, float]:
    """Leader (first among ties), its votes and the runner-up's."""
    lead = max(votes, key=votes.get)
    return lead, votes[lead], max((v for a, v in votes.items() if a != lead), default=0)
