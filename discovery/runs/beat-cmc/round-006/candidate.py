"""Round 6: a depth-synchronised race with a unanimity exit and contest widening.

Round 5 saved little: CMC widens before anything finishes, and that width is what
gives it its short-trajectory bias. Here width is decided after the first finish
without losing that bias:

* Depth-synchronised race: every live branch is decoded to a common frontier depth;
  a branch opened late first catches up, so finished branches are always the shortest
  of all opened, however late they were opened.
* ERR abstains.
* Unanimity exit: one final answer, no live branch probing another final answer, at
  least ``holders`` supporters (finished + live probing it, ``live_frac`` of the live).
* Contest widening: on the first finish without unanimity, widen to ``w1`` more
  branches (caught up to the frontier); optionally ``widen_step`` more every
  ``widen_every`` rounds.
* Stop on a Beta-majority confidence of ``threshold`` with a lead of ``min_lead``.
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
class DepthSyncRaceV1(Controller):
    """Depth-synchronised race, unanimity exit, widening on the first contest."""

    name = "depth-sync-race"
    w0: int = 5
    w1: int = 16  # branches added when contested (total cap max_branch)
    max_branch: int = 48
    holders: int = 4
    live_frac: float = 0.6
    threshold: float = 0.9
    min_lead: int = 2
    widen_every: int = 0  # >0: while contested, add widen_step more every this many rounds
    widen_step: int = 4
    max_rounds: int = 200

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """Contest width, branch cap and threshold grow with beta."""
        b = clip01(beta)
        return {"w1": round(8 + 32 * b), "max_branch": round(16 + 48 * b), "threshold": 0.85 + 0.13 * b}

    def run(self, episode):
        err = episode.no_answer_id
        cap = min(self.max_branch, episode.num_available)
        for _ in range(min(self.w0, cap)):
            episode.open_and_probe()
        frontier = 1
        contested_at = -1
        for rnd in range(self.max_rounds):
            frontier += 1
            for j in episode.active_branches:
                while episode.is_active(j) and episode.depth(j) < frontier:
                    episode.continue_and_probe(j)
            pool = Counter(a for a in episode.finished_answers if a != err)
            live = episode.active_branches
            lead, v1, v2 = top2(pool)
            if lead >= 0:
                probing = Counter(episode.latest_answer(j) for j in live)
                on = probing[lead]
                if v2 == 0 and v1 + on >= self.holders and on >= self.live_frac * len(live):
                    return episode.answer(lead, reason="unanimous")
                if v1 - v2 >= self.min_lead and beta_confidence(v1, v2) >= self.threshold:
                    return episode.answer(lead, reason="confident")
                if contested_at < 0:
                    contested_at = rnd
                    self.widen(episode, self.w1, cap, frontier)
                elif self.widen_every and (rnd - contested_at) % self.widen_every == 0:
                    self.widen(episode, self.widen_step, cap, frontier)
            if not episode.active_branches:
                if episode.num_opened >= cap:
                    break
                self.widen(episode, max(1, self.widen_step), cap, frontier)
        pool = Counter(a for a in episode.finished_answers if a != err)
        return episode.answer(top2(pool)[0] if pool else None, reason="end")

    @staticmethod
    def widen(episode, n, cap, frontier):
        """Open up to n branches, each caught up to the frontier."""
        for _ in range(min(n, cap - episode.num_opened)):
            j = episode.open_and_probe()[0]
            while episode.is_active(j) and episode.depth(j) < frontier:
                episode.continue_and_probe(j)
