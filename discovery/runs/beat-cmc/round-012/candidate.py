"""Round 12: round 10 plus defections.

Round 11's explicit length preferences gained nothing (the race already decides on the
shortest branches). A different signal does: in AIME24, a branch whose probe shows the
gold answer almost never leaves it (92-99% end there), while a branch showing a wrong
candidate leaves it about half the time. So an answer that branches *held* (showed in
two consecutive probes) and then abandoned is probably wrong:

* Defections: each answer's votes lose ``defect_weight`` per branch (finished or live)
  that held it and now shows another answer (scores are floored at 0); the leader and
  the Beta-majority stop use these scores, the futility stop the plain counts.

Otherwise as round 10 (same schedule): depth-synchronised race, ERR abstains, unanimity
exit, patience before contest widening, Beta-majority stop, futility stop.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agents.base import Controller, clip01
from autotts_gym.engine import Episode, EpisodeResult
from autotts_gym.voting import beta_confidence


@dataclass(frozen=True)
class RaceDefections(Controller):
    """Round 10's race with defection-adjusted votes."""

    name = "race-defections"
    w0: int = 8
    patience: int = 15
    w1: int = 24
    widen_step: int = 2
    max_branch: int = 44
    holders: int = 6
    live_frac: float = 0.5
    threshold: float = 0.85
    min_lead: int = 4
    futile_n: int = 8
    futile_share: float = 0.3
    defect_weight: float = 0.5
    max_rounds: int = 400
    # Mechanism switches (all on in the family; the ablation turns one off at a time).
    sync: bool = True
    unanimity: bool = True
    widen: bool = True
    futility: bool = True
    defections: bool = True
    abstain: bool = True

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """Width, patience and stop strictness grow with beta (round = half to even)."""
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
            "defect_weight": 0.5,
        }

    def run(self, episode: Episode) -> EpisodeResult:
        abstain = episode.no_answer_id if self.abstain else -2
        cap = min(self.max_branch, episode.num_available)
        memory = Memory()
        frontier = 1
        self.open(episode, memory, self.w0, cap, frontier)
        contested = False
        first_finish = -1
        for rnd in range(self.max_rounds):
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
                if self.widen and contested:
                    self.open(episode, memory, self.widen_step, cap, frontier)
                elif self.widen and (len(counts) > 1 or rnd - first_finish >= self.patience):
                    contested = True
                    self.open(episode, memory, self.w1 - len(episode.active_branches), cap, frontier)
            if not episode.active_branches:
                if episode.num_opened >= cap:
                    break
                self.open(episode, memory, max(1, self.widen_step), cap, frontier)
        counts = self.pool(episode, abstain)
        if not counts:
            return episode.answer(reason="end")
        return episode.answer(leader(self.scores(episode, memory, counts))[0], reason="end")

    def pool(self, episode: Episode, abstain: int) -> Counter:
        """Votes of the finished branches, shortest first (so ties go to the shorter)."""
        finished = sorted(episode.finished_branches, key=episode.depth)
        return Counter(a for a in (episode.latest_answer(j) for j in finished) if a != abstain)

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


def leader(votes: Counter) -> tuple[int, int, int]:
    """``(leader, v1, v2)``: the answer with most votes (first in the counter's order among
    ties), its votes and the runner-up's."""
    lead = max(votes, key=votes.get)
    return lead, votes[lead], max((v for a, v in votes.items() if a != lead), default=0)
