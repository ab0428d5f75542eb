"""Confidence Momentum Controller (CMC): the controller AutoTTS discovered (facts section 6).

Four mechanisms: trend-based stopping (an EMA of the completed pool's confidence; stop
only when it is high and not falling), coupled width-depth control (a weak confidence
trend triggers widening), alignment-aware depth (branches agreeing with the pool winner
get more intervals per round) and conservative abandonment (only after persistent
deviation, always keeping two live branches).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from agents.base import Controller, clip01
from autotts_gym.engine import Episode, EpisodeResult
from autotts_gym.engine.voting import beta_confidence, by_agreement, majority, update_streaks


@dataclass(frozen=True)
class ConfidenceMomentum(Controller):
    """CMC; every field comes from :meth:`schedule` (beta 0.5 gives the defaults)."""

    name = "cmc"
    cost_hint = 2.0  # many engine steps per episode
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

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """The paper's beta parameterisation (round = half to even)."""
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

    def run(self, episode: Episode) -> EpisodeResult:
        max_branch = min(self.max_branch, episode.num_available)
        episode.open_and_probe_many(min(self.n_init, max_branch))
        disagree: list[int] = [0] * episode.num_opened
        ema = 0.0
        history: deque[float] = deque(maxlen=self.t_ema)
        alpha = self.alpha
        widen_from = max(1, self.warm_up // 2)  # first step at which a weak trend widens

        for step in range(self.max_steps):
            # 1-2. Pool statistics and the confidence trend.
            winner, v1, v2 = episode.finished_vote()
            warm = step >= self.warm_up
            ema = (1 - alpha) * ema + alpha * beta_confidence(v1, v2)
            history.append(ema)

            # 3. Conservative abandonment of persistently deviating branches.
            if warm:
                latest = episode.latest_answers  # a finished branch keeps its final answer
                if winner >= 0:
                    live = episode.active_branches
                    deviating = update_streaks(disagree, live, latest, winner, self.abandon_patience)
                    n_live = len(live)
                    for j in sorted(deviating, key=lambda j: -disagree[j]):  # most persistent first
                        if n_live <= 2:
                            break
                        episode.prune(j)
                        n_live -= 1

            # 4. Alignment-aware depth: deepest branches first.
            #    Aligned branches get a burst of intervals (cut short if they finish).
            live = episode.active_by_depth(deepest_first=True)
            if warm:
                episode.continue_and_probe_many(live, by_agreement(live, latest, winner, self.burst_aligned, 1))
            else:
                episode.continue_and_probe_many(live)

            # 5. Refresh the statistics after the depth pass.
            winner, v1, v2 = episode.finished_vote()
            ema = (1 - alpha) * ema + alpha * beta_confidence(v1, v2)
            history[-1] = ema
            delta = history[-1] - history[0] if len(history) >= 2 else 0.0

            # 6. Trend-based stopping.
            if warm and episode.num_finished >= self.min_complete:
                if ema >= self.conf_thresh and delta >= -self.delta_slack:
                    return episode.answer(winner, reason="confident")
            # 7. Nothing left to grow.
            if episode.num_active == 0:
                break
            # 8. Coupled width-depth control: widen on a weak trend.
            widen = delta <= self.trend_thresh and step >= widen_from and ema < self.conf_thresh
            if episode.num_opened < max_branch and widen:
                new = min(self.widen_burst, max_branch - episode.num_opened)
                episode.open_and_probe_many(new)
                disagree.extend([0] * new)

        winner = episode.finished_vote()[0]
        if winner < 0:
            unpruned = [j for j in range(episode.num_opened) if not episode.is_pruned(j)]
            winner = majority(episode.latest_answers, unpruned)[0]
        return episode.answer(winner, reason="end")
