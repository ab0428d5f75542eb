"""Parallel-Probe: grow many branches in lock-step, prune off-track ones, stop on a
stable majority (facts section 5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.base import Controller, geometric_count
from autotts_gym.engine import Episode, EpisodeResult
from autotts_gym.engine.voting import majority, update_streaks


@dataclass(frozen=True)
class ParallelProbe(Controller):
    """Parallel-Probe.

    Open ``chains`` branches (each decoded one interval and probed). Then, at each step
    (numbered from 0, at most ``max_steps``): advance and probe every unfinished,
    unpruned branch by one interval; take the majority of the latest answers of all
    unpruned branches (ties to the branch opened first). From step ``warm_up`` on, with
    more than one unpruned branch, an unfinished branch whose latest answer differs from
    the majority adds one to its off-track count (else the count resets); branches at
    ``patience`` are pruned and the majority recomputed. The majority's stability count
    grows when it equals the previous step's majority, else resets; stop when it reaches
    ``stability`` or when every branch is finished or pruned.

    Args:
        chains: branches opened at the start (the paper: 64).
        stability: T, steps the majority must stay unchanged (the paper: 40).
        patience: off-track steps before a branch is pruned (the paper: 7).
        warm_up: first step at which branches may be pruned (the paper: 15).
        max_steps: most steps (the paper: 100).
    """

    name = "parallel-probe"
    cost_hint = 3.0  # many engine steps per episode
    chains: int = 64
    stability: int = 40
    patience: int = 7
    warm_up: int = 15
    max_steps: int = 100

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """chains grow geometrically from 2 (beta 0) to 64 (beta 1); the rest as the paper."""
        return {"chains": geometric_count(beta, 2, 64), "stability": 40, "patience": 7, "warm_up": 15, "max_steps": 100}

    def run(self, episode: Episode) -> EpisodeResult:
        n = min(self.chains, episode.num_available)
        episode.open_and_probe_many(n)
        unpruned = list(range(n))
        off_track = [0] * n
        previous, stable, leader = None, 0, -1
        for step in range(self.max_steps):
            # Active branches are exactly the unfinished, unpruned ones.
            episode.continue_and_probe_many(episode.active_branches)
            latest = episode.latest_answers  # a finished branch keeps its final answer
            leader = majority(latest, unpruned)[0]
            if step >= self.warm_up and len(unpruned) > 1:
                off_course = update_streaks(off_track, episode.active_branches, latest, leader, self.patience)
                if off_course:
                    for j in off_course:
                        episode.prune(j)
                    pruned = set(off_course)
                    unpruned = [j for j in unpruned if j not in pruned]
                    leader = majority(latest, unpruned)[0]
            stable = stable + 1 if leader == previous else 0
            previous = leader
            if stable >= self.stability:
                return episode.answer(leader, reason="stable")
            if episode.num_active == 0:
                return episode.answer(leader, reason="all-done")
        return episode.answer(leader, reason="max-steps")
