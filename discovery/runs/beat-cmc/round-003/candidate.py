"""Round 3: CMC's loop with ERR abstention and probe votes corroborated by finished answers.

Rounds 1-2 (lock-step width with probe votes) matched CMC only at small budgets: CMC's
trend stop, alignment bursts and widening are kept here, and two mechanisms are added:

* ERR abstains: the no-answer string never votes in the completed pool.
* Corroborated probe votes: a live branch whose latest probe equals a final answer of
  the completed pool adds ``probe_weight`` to that answer's vote, so the confidence rises
  before those branches finish (early probes alone are junk: only finished answers
  corroborate).
* CMC's four mechanisms: EMA trend stop, widening on a weak trend, alignment bursts,
  conservative abandonment (schedules as in CMC).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from agents.base import Controller, clip01
from autotts_gym.voting import beta_confidence


@dataclass(frozen=True)
class MomentumProbeVotes(Controller):
    """CMC with ERR abstention and corroborated probe votes in the confidence."""

    name = "momentum-probe-votes"
    n_init: int = 5
    max_branch: int = 34
    warm_up: int = 6
    abandon_patience: int = 8
    t_ema: int = 5
    alpha: float = 0.5
    conf_thresh: float = 0.91
    delta_slack: float = 0.025
    burst_aligned: int = 2
    widen_burst: int = 2
    trend_thresh: float = 0.025
    min_complete: int = 4
    probe_weight: float = 0.5
    max_steps: int = 500

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """CMC's schedule plus a constant probe weight."""
        b = clip01(beta)
        return {
            "n_init": max(2, round(2 + 6 * b)),
            "max_branch": min(64, round(4 + 60 * b)),
            "warm_up": max(2, round(2 + 8 * b)),
            "abandon_patience": max(3, round(3 + 9 * b)),
            "t_ema": max(2, round(2 + 6 * b)),
            "alpha": 0.70 - 0.40 * b,
            "conf_thresh": 0.85 + 0.12 * b,
            "delta_slack": 0.04 - 0.03 * b,
            "burst_aligned": max(1, round(1 + 2 * b)),
            "widen_burst": max(1, round(1 + 3 * b)),
            "trend_thresh": 0.04 - 0.03 * b,
            "min_complete": max(2, round(2 + 3 * b)),
            "probe_weight": 0.5,
        }

    def run(self, episode):
        err = episode.no_answer_id
        max_branch = min(self.max_branch, episode.num_available)
        for _ in range(min(self.n_init, max_branch)):
            episode.open_and_probe()
        disagree: Counter = Counter()
        ema = 0.0
        history: deque = deque(maxlen=self.t_ema)
        alpha = self.alpha
        for step in range(self.max_steps):
            winner, conf = self.pool(episode, err)
            warm = step >= self.warm_up
            ema = (1 - alpha) * ema + alpha * conf
            history.append(ema)
            if warm and winner >= 0:
                live = episode.active_branches
                for j in live:
                    disagree[j] = disagree[j] + 1 if episode.latest_answer(j) != winner else 0
                doomed = sorted((j for j in live if disagree[j] >= self.abandon_patience), key=lambda j: -disagree[j])
                n_live = len(live)
                for j in doomed:
                    if n_live <= 2:
                        break
                    episode.prune(j)
                    n_live -= 1
            for j in sorted(episode.active_branches, key=episode.depth, reverse=True):
                burst = self.burst_aligned if warm and episode.latest_answer(j) == winner else 1
                for _ in range(burst):
                    episode.continue_and_probe(j)
                    if not episode.is_active(j):
                        break
            winner, conf = self.pool(episode, err)
            ema = (1 - alpha) * ema + alpha * conf
            history[-1] = ema
            delta = history[-1] - history[0] if len(history) >= 2 else 0.0
            if warm and len(episode.finished_answers) >= self.min_complete:
                if ema >= self.conf_thresh and delta >= -self.delta_slack:
                    return episode.answer(winner, reason="confident")
            if not episode.active_branches:
                break
            widen = delta <= self.trend_thresh and step >= max(1, self.warm_up // 2) and ema < self.conf_thresh
            if episode.num_opened < max_branch and widen:
                for _ in range(min(self.widen_burst, max_branch - episode.num_opened)):
                    episode.open_and_probe()
        winner = self.pool(episode, err)[0]
        return episode.answer(winner if winner >= 0 else None, reason="end")

    def pool(self, episode, err: int) -> tuple[int, float]:
        """Winner and Beta confidence of finished answers plus corroborated probe votes."""
        votes: Counter = Counter(a for a in episode.finished_answers if a != err)
        if not votes:
            return -1, 0.0
        finals = set(votes)
        for j in episode.active_branches:
            a = episode.latest_answer(j)
            if a in finals:
                votes[a] += self.probe_weight
        winner = max(votes, key=votes.get)
        v2 = max((w for a, w in votes.items() if a != winner), default=0.0)
        return winner, beta_confidence(votes[winner], v2)
