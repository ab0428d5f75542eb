"""Round 9: a narrow refilled race that widens only on a real contest.

Round 8 still spends most tokens on hopeless questions: the contest width is opened
before futility can be judged. This round keeps ``w0`` branches alive (refilling as
they finish) until the pool is either unanimous, flat (futility stop) or a real
contest (the runner-up has ``contest_votes`` votes), and only then widens to ``w1``.
Otherwise as round 8: depth-synchronised race, ERR abstains, unanimity exit,
Beta-majority stop with a minimum lead, futility stop.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from agents.base import Controller, clip01
from autotts_gym.voting import beta_confidence


def top2(votes):
    """Leader, its votes and the runner-up's."""
    if not votes:
        return -1, 0, 0
    w = max(votes, key=votes.get)
    return w, votes[w], max((x for a, x in votes.items() if a != w), default=0)


@dataclass(frozen=True)
class NarrowRefillRace(Controller):
    """Refilled narrow race; widens on a contest between repeated answers."""

    name = "narrow-refill-race"
    w0: int = 5
    refill: bool = True  # narrow phase keeps w0 live branches
    w1: int = 16  # live width once a real contest appears
    widen_step: int = 2
    max_branch: int = 48
    holders: int = 4
    live_frac: float = 0.6
    threshold: float = 0.9
    min_lead: int = 2
    futile_n: int = 6
    futile_share: float = 0.3
    contest_votes: int = 2  # a contest: runner-up has at least this many votes
    max_rounds: int = 250

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """Contest width, branch cap and threshold grow with beta."""
        b = clip01(beta)
        return {"w1": round(8 + 24 * b), "max_branch": round(16 + 48 * b), "threshold": 0.85 + 0.13 * b}

    def run(self, episode):
        err = episode.no_answer_id
        cap = min(self.max_branch, episode.num_available)
        self.widen(episode, self.w0, cap, 1)
        frontier = 1
        contested = False
        for _ in range(self.max_rounds):
            frontier += 1
            for j in episode.active_branches:
                while episode.is_active(j) and episode.depth(j) < frontier:
                    episode.continue_and_probe(j)
            pool = [a for a in episode.finished_answers if a != err]
            votes = Counter(pool)
            live = episode.active_branches
            if votes:
                lead, v1, v2 = top2(votes)
                probing = Counter(episode.latest_answer(j) for j in live)
                on = probing[lead]
                dissent = v2 + sum(n for a, n in probing.items() if a in votes and a != lead)
                if dissent == 0 and v1 + on >= self.holders and on >= self.live_frac * len(live):
                    return episode.answer(lead, reason="unanimous")
                if v1 - v2 >= self.min_lead and beta_confidence(v1, v2) >= self.threshold:
                    return episode.answer(lead, reason="confident")
                if len(pool) >= self.futile_n and v1 < self.futile_share * len(pool):
                    return episode.answer(lead, reason="futile")
                if not contested and v2 >= self.contest_votes:
                    contested = True
                    self.widen(episode, self.w1 - len(episode.active_branches), cap, frontier)
                elif contested:
                    self.widen(episode, self.widen_step, cap, frontier)
            if not contested and self.refill:
                self.widen(episode, self.w0 - len(episode.active_branches), cap, frontier)
            if not episode.active_branches:
                if episode.num_opened >= cap:
                    break
                self.widen(episode, max(1, self.widen_step), cap, frontier)
        pool = Counter(a for a in episode.finished_answers if a != err)
        return episode.answer(top2(pool)[0] if pool else None, reason="end")

    @staticmethod
    def widen(episode, n, cap, frontier):
        """Open up to n branches, each caught up to the frontier."""
        for _ in range(max(0, min(n, cap - episode.num_opened))):
            j = episode.open_and_probe()[0]
            while episode.is_active(j) and episode.depth(j) < frontier:
                episode.continue_and_probe(j)
