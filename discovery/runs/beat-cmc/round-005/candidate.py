"""Round 5: CMC with a cheap unanimity exit, probe-gated widening and ERR abstention.

Rounds 1-4 showed probes are junk until a finished answer corroborates them, and that
CMC's cost on easy questions comes from widening blindly before anything finishes.

* ERR abstains in the completed pool.
* Unanimity exit: stop once the pool has one answer, no live branch probes another
  final answer, and at least ``unanimity`` supporters (finished plus live branches
  probing the leader, at least ``unan_frac`` of the live ones).
* Probe-gated widening: before the first finish, widen only while the live branches'
  latest probes disagree (top share below ``probe_gate``).
* CMC's four mechanisms otherwise unchanged (same schedule).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from agents.base import Controller, clip01
from autotts_gym.voting import beta_confidence, majority


def top2(votes):
    """Leader, its votes and the runner-up's."""
    if not votes:
        return -1, 0, 0
    w = max(votes, key=votes.get)
    return w, votes[w], max((x for a, x in votes.items() if a != w), default=0)


@dataclass(frozen=True)
class MomentumUnanimityGate(Controller):
    """CMC plus unanimity exit, probe-gated widening and ERR abstention."""

    name = "cmc-unanimity-gate"
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
    max_steps: int = 500
    # extras
    err_abstain: bool = True
    unanimity: int = 4
    unan_frac: float = 0.5
    probe_gate: float = 0.75

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """CMC's schedule; the added mechanisms use fixed settings."""
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
        }

    def stats(self, episode, err):
        """Winner, v1, v2 of the completed pool."""
        ans = episode.finished_answers
        if self.err_abstain:
            ans = [a for a in ans if a != err]
        return top2(Counter(ans))

    def run(self, episode):
        err = episode.no_answer_id
        max_branch = min(self.max_branch, episode.num_available)
        latest = []
        for _ in range(min(self.n_init, max_branch)):
            latest.append(episode.open_and_probe()[1])
        disagree = [0] * len(latest)
        ema = 0.0
        history = deque(maxlen=self.t_ema)
        alpha = self.alpha
        for step in range(self.max_steps):
            winner, v1, v2 = self.stats(episode, err)
            warm = step >= self.warm_up
            ema = (1 - alpha) * ema + alpha * beta_confidence(v1, v2)
            history.append(ema)
            if warm and winner >= 0:
                live = episode.active_branches
                for j in live:
                    disagree[j] = disagree[j] + 1 if latest[j] != winner else 0
                doomed = sorted((j for j in live if disagree[j] >= self.abandon_patience), key=lambda j: -disagree[j])
                n_live = len(live)
                for j in doomed:
                    if n_live <= 2:
                        break
                    episode.prune(j)
                    n_live -= 1
            for j in sorted(episode.active_branches, key=episode.depth, reverse=True):
                burst = self.burst_aligned if warm and latest[j] == winner else 1
                for _ in range(burst):
                    latest[j] = episode.continue_and_probe(j)
                    if not episode.is_active(j):
                        break
            winner, v1, v2 = self.stats(episode, err)
            ema = (1 - alpha) * ema + alpha * beta_confidence(v1, v2)
            history[-1] = ema
            delta = history[-1] - history[0] if len(history) >= 2 else 0.0
            if self.unanimity and winner >= 0 and v2 == 0:
                live = episode.active_branches
                probing = Counter(latest[j] for j in live)
                finals = set(a for a in episode.finished_answers)
                dissent = sum(n for a, n in probing.items() if a in finals and a != winner)
                if (
                    dissent == 0
                    and v1 + probing[winner] >= self.unanimity
                    and probing[winner] >= self.unan_frac * len(live)
                ):
                    return episode.answer(winner, reason="unanimous")
            if warm and len(episode.finished_answers) >= self.min_complete:
                if ema >= self.conf_thresh and delta >= -self.delta_slack:
                    return episode.answer(winner, reason="confident")
            if not episode.active_branches:
                break
            widen = delta <= self.trend_thresh and step >= max(1, self.warm_up // 2) and ema < self.conf_thresh
            if self.probe_gate and winner < 0 and widen:
                live = episode.active_branches
                c = Counter(latest[j] for j in live)
                share = max(c.values()) / len(live) if live else 0
                if share >= self.probe_gate:
                    widen = False
            if episode.num_opened < max_branch and widen:
                for _ in range(min(self.widen_burst, max_branch - episode.num_opened)):
                    latest.append(episode.open_and_probe()[1])
                    disagree.append(0)
        winner = self.stats(episode, err)[0]
        if winner < 0:
            winner = majority([a for j, a in enumerate(latest) if not episode.is_pruned(j)])[0]
        return episode.answer(winner, reason="end")
