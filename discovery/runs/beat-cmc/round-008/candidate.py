"""Round 8: round 7 with patience before widening.

Round 7 widened at the first finish whenever the live probes had not yet settled, which
made easy questions pay for a wide race. Here a pool with a single answer gets
``patience`` rounds to become unanimous before the race widens (a second final answer
still widens at once). Otherwise as round 7: depth-synchronised race, ERR abstains,
unanimity exit, Beta-majority stop, futility stop."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from agents.base import Controller, clip01
from autotts_gym.voting import beta_confidence


@dataclass(frozen=True)
class SyncPatience(Controller):
    """Depth-synchronised race with unanimity exit, contest widening and futility stop."""

    name = "sync-patience"
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
    max_rounds: int = 400

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """Contest width, branch cap and threshold grow with beta; patience 6 rounds."""
        b = clip01(beta)
        return {
            "w0": 5,
            "patience": 6,
            "w1": round(8 + 24 * b),
            "widen_step": 2,
            "max_branch": round(16 + 48 * b),
            "holders": 4,
            "live_frac": 0.6,
            "threshold": 0.85 + 0.13 * b,
            "min_lead": 2,
            "futile_n": 6,
            "futile_share": 0.3,
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
        """The votes themselves."""
        return counts

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
