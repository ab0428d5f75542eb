"""DSR-L: the Depth-Synchronised Race with an early-consensus lock (discovery round 17).

DSR (:mod:`agents.dsr`) votes over the shortest finished branches. In its AIME24 traces,
late and longer finishers sometimes outvote an early consensus of the shortest ones, and
at small beta a single finished answer can stop the race. DSR-L keeps every mechanism of
DSR and adds two, each with a switch for the ablation:

* **Early-consensus lock** (``lock``): when the ``lock_n`` shortest finished branches
  (the first to finish in the depth-synchronised race) agree, their answer gets
  ``lock_bonus`` extra votes, so later, longer finishers overturn it only with a clear
  majority.
* **Finishing-order weights** (``ranked``): the k-th finished answer (k = 0, 1, ...)
  weighs ``rank_half / (rank_half + k)``, rescaled so the weights sum to the number of
  votes.

Its schedule also starts cheaper: 3 branches at beta 0, a lead of at least 2 at every
beta (one finished answer never stops the race by itself), 2 supporters and a smaller
share of live branches for the unanimity exit at beta 0, and patience that shrinks from
12 to 6 rounds as beta grows. Like DSR it reads only the episode's public views.

The discovery run's round 17 (``discovery/runs/beat-cmc/round-017/candidate.py``,
a self-contained candidate) is this family; tests/agents/test_dsr_lock.py checks that both give
the same episodes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from agents.base import clip01, geometric_count
from agents.dsr import DepthSyncRace
from autotts_gym.engine import Episode


@dataclass(frozen=True)
class LockedDepthSyncRace(DepthSyncRace):
    """DSR-L; every field comes from :meth:`schedule` (the defaults are beta 0.5).

    Args (besides DSR's):
        lock_n: how many of the shortest finished branches must agree for the lock.
        lock_bonus: the extra votes of their answer.
        rank_half: the finishing rank at which a vote weighs one half.
        lock, ranked: the new mechanisms' switches.
    """

    name = "dsr-lock"
    w0: int = 6
    patience: int = 9
    live_frac: float = 0.4
    min_lead: int = 3
    lock_n: int = 3
    lock_bonus: float = 4.0
    rank_half: float = 8.0
    lock: bool = True
    ranked: bool = True

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """DSR's widths (3 to 10 starting branches, 4 to 44 in a contest, 8 to 64 in all);
        supporters as DSR's but 2 at beta 0; live share 0.3 to 0.5; lead at least 2; the
        lock's bonus 2 to 6; patience 12 to 6 rounds. Round = half to even."""
        b = clip01(beta)
        return {
            "w0": round(3 + 7 * b),
            "patience": round(12 - 6 * b),
            "w1": geometric_count(b, 4, 44),
            "widen_step": round(1 + b),
            "max_branch": geometric_count(b, 8, 64),
            "holders": round(3 + 4 * b) if b > 0 else 2,
            "live_frac": 0.3 + 0.2 * b,
            "threshold": 0.75 + 0.15 * b,
            "min_lead": max(2, round(1 + 4 * b)),
            "futile_n": round(4 + 8 * b),
            "futile_share": 0.5 - 0.25 * b,
            "defect_weight": 0.5,
            "lock_n": 3,
            "lock_bonus": 2.0 + 4.0 * b,
            "rank_half": 8.0,
        }

    def pool(self, episode: Episode, abstain: int) -> Counter:
        """DSR's pool (finished branches' answers, shortest first, ERR abstaining), with
        finishing-order weights and the lock's bonus."""
        finished = sorted(episode.finished_branches, key=episode.depth)
        answers = [a for a in (episode.latest_answer(j) for j in finished) if a != abstain]
        counts: Counter = Counter()
        if self.ranked and answers:
            weights = [self.rank_half / (self.rank_half + k) for k in range(len(answers))]
            scale = len(answers) / sum(weights)
            for a, w in zip(answers, weights):
                counts[a] += w * scale
        else:
            counts.update(answers)
        if self.lock and len(answers) >= self.lock_n and len(set(answers[: self.lock_n])) == 1:
            counts[answers[0]] += self.lock_bonus
        return counts
