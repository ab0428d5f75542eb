"""Round 17: round 16 with DSR's contest widths, so the cheap opening no longer thins the race at small beta.

Round 15's cheap opening shrank the geometric width ranges (3 to 44 in a contest, 6 to
64 in all), which also narrowed every race below beta 0.5: at beta 0.25 rounds 15 and 16
lie 0.3 points under DSR's curve. This round keeps the cheap opening's 3 starting
branches, 2 supporters and a lead of at least 2, but widens contests as DSR does (4 to 44
live branches, 8 to 64 opened) and needs DSR's supporters above beta 0. Otherwise as
round 16 (same controller).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agents.base import Controller, clip01, geometric_count
from autotts_gym.engine import Episode, EpisodeResult
from autotts_gym.voting import beta_confidence


@dataclass(frozen=True)
class RankedLockWide(Controller):
    """Round 16 with round 17's schedule; every field comes from :meth:`schedule` (the
    defaults are beta 0.5)."""

    name = "ranked-lock-wide"
    w0: int = 7
    patience: int = 12
    w1: int = 13
    widen_step: int = 2
    max_branch: int = 23
    holders: int = 5
    live_frac: float = 0.5
    threshold: float = 0.825
    min_lead: int = 3
    futile_n: int = 8
    futile_share: float = 0.375
    defect_weight: float = 0.5
    lock_n: int = 3
    lock_bonus: float = 4.0
    rank_half: float = 8.0
    max_rounds: int = 400
    # Mechanism switches (all on in the family; the ablation turns one off at a time).
    sync: bool = True
    unanimity: bool = True
    widen: bool = True
    futility: bool = True
    defections: bool = True
    abstain: bool = True
    lock: bool = True
    ranked: bool = True

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """Widths grow geometrically with beta (3 to 10 starting branches, 4 to 44 in a
        contest, 8 to 64 in all); supporters (2 at beta 0, else DSR's), live share, lead
        (at least 2), threshold,
        the futility floor and the lock's bonus grow linearly; patience shrinks from 12
        to 6 rounds. Round = half to even."""
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

    def run(self, episode: Episode) -> EpisodeResult:
        # With ERR voting (ablation), abstain on an id no answer has (ids are >= -1).
        abstain = episode.no_answer_id if self.abstain else -2
        cap = min(self.max_branch, episode.num_available)
        memory = Memory()
        frontier = 1
        self.open(episode, memory, self.w0, cap, frontier)
        contested = False
        first_finish = -1
        for rnd in range(self.max_rounds):
            # One round: every live branch gains one interval (late ones catch up first).
            frontier += 1
            for j in episode.active_branches:
                if self.sync:
                    self.catch_up(episode, memory, j, frontier)
                else:
                    memory.step(episode, j)
            counts = self.pool(episode, abstain)
            if counts:
                scores = self.scores(episode, memory, counts)
                lead, v1, v2 = leader(scores)
                if first_finish < 0:
                    first_finish = rnd
                if self.unanimity and not contested and self.unanimous(episode, counts, lead):
                    return episode.answer(lead, reason="unanimous")
                if v1 - v2 >= self.min_lead and beta_confidence(v1, v2) >= self.threshold:
                    return episode.answer(lead, reason="confident")
                n = sum(counts.values())
                if self.futility and n >= self.futile_n and counts[lead] < self.futile_share * n:
                    return episode.answer(lead, reason="futile")
                # Widening costs a catch-up per branch, so it waits for evidence of a contest.
                if self.widen and contested:
                    self.open(episode, memory, self.widen_step, cap, frontier)
                elif self.widen and (len(counts) > 1 or rnd - first_finish >= self.patience):
                    contested = True
                    self.open(episode, memory, self.w1 - len(episode.active_branches), cap, frontier)
            if not episode.active_branches:  # everything finished undecided: sample more
                if episode.num_opened >= cap:
                    break
                self.open(episode, memory, max(1, self.widen_step), cap, frontier)
        counts = self.pool(episode, abstain)
        if not counts:
            return episode.answer(reason="end")
        return episode.answer(leader(self.scores(episode, memory, counts))[0], reason="end")

    def pool(self, episode: Episode, abstain: int) -> Counter:
        """Votes of the finished branches, shortest first (so ties go to the shorter),
        weighted by finishing order, plus the lock's bonus when the ``lock_n`` shortest
        agree."""
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

    def scores(self, episode: Episode, memory: Memory, counts: Counter) -> Counter:
        """Votes minus ``defect_weight`` per branch that held the answer and left it (at least 0)."""
        if not self.defections:
            return counts
        left = memory.defections(episode, counts)
        return Counter({a: max(0.0, v - self.defect_weight * left[a]) for a, v in counts.items()})

    def unanimous(self, episode: Episode, counts: Counter, lead: int) -> bool:
        """No dissent, and enough supporters among finished and corroborated live branches."""
        if len(counts) > 1:
            return False
        live = episode.active_branches
        probing = Counter(episode.latest_answer(j) for j in live)
        if any(a in counts and a != lead for a in probing):
            return False
        on = probing[lead]
        return counts[lead] + on >= self.holders and on >= self.live_frac * len(live)

    def open(self, episode: Episode, memory: Memory, n: int, cap: int, frontier: int) -> None:
        """Open up to ``n`` branches (within ``cap``), each caught up to the frontier."""
        for _ in range(max(0, min(n, cap - episode.num_opened))):
            j = memory.open(episode)
            if self.sync:
                self.catch_up(episode, memory, j, frontier)

    @staticmethod
    def catch_up(episode: Episode, memory: Memory, j: int, frontier: int) -> None:
        """Decode branch j (one interval and a probe at a time) up to depth ``frontier``."""
        while episode.is_active(j) and episode.depth(j) < frontier:
            memory.step(episode, j)


@dataclass
class Memory:
    """What the controller remembers of each branch's probes: the answers it *held*
    (showed in ``HOLD_RUN`` consecutive probes). Lives for one episode.

    Attributes:
        run: per branch, how many consecutive probes showed its latest answer.
        held: per branch, the answers it held.
    """

    HOLD_RUN: ClassVar[int] = 2
    run: list[int] = field(default_factory=list)
    held: list[set[int]] = field(default_factory=list)

    def open(self, episode: Episode) -> int:
        """Open and probe a new branch; returns its number."""
        j = episode.open_and_probe()[0]
        self.run.append(0)
        self.held.append(set())
        self.note(episode, j, -1)
        return j

    def step(self, episode: Episode, j: int) -> None:
        """Decode one interval of branch j and probe it."""
        before = episode.latest_answer(j)
        episode.continue_and_probe(j)
        self.note(episode, j, before)

    def note(self, episode: Episode, j: int, before: int) -> None:
        """Record branch j's newly revealed answer (``before``: the one it showed last)."""
        answer = episode.latest_answer(j)
        self.run[j] = self.run[j] + 1 if answer == before else 1
        if self.run[j] >= self.HOLD_RUN:
            self.held[j].add(answer)

    def defections(self, episode: Episode, answers: Counter) -> Counter:
        """Per answer of ``answers``: branches that held it and now show another one."""
        left: Counter = Counter()
        for j, held in enumerate(self.held):
            now = episode.latest_answer(j)
            for a in held:
                if a != now and a in answers:
                    left[a] += 1
        return left


def leader(votes: Counter) -> tuple[int, float, float]:
    """``(leader, v1, v2)``: the answer with most votes (first in the counter's order among
    ties), its votes and the runner-up's."""
    lead = max(votes, key=votes.get)
    return lead, votes[lead], max((v for a, v in votes.items() if a != lead), default=0)
