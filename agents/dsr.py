"""Depth-Synchronised Race (DSR): the controller family our discovery run found on AIME24.

Shorter reasoning trajectories are more often right, so a vote over the *shortest*
branches of a pool beats a vote over the first ones read; and a model that reaches the
right answer rarely leaves it, while it often abandons a wrong one. DSR races branches so
that the finished ones are always the shortest opened, discounts answers that branches
abandoned, stops cheaply when the race is one-sided, widens only when it is contested,
and gives up on flat, hopeless races. Its mechanisms (each can be switched off for the
ablation):

* **Depth-synchronised race** (``sync``): every live branch is decoded to a common
  frontier depth, one interval (and one probe) per round; a branch opened late first
  catches up to the frontier. A finished branch is then shorter than every live one, so
  the completed pool fills in length order however late branches were opened. Off: late
  branches start from depth one and the race is ordered by time.
* **Unanimity exit** (``unanimity``): while the race is not contested, stop as soon as
  the pool holds a single answer, no live branch probes another final answer, and the
  leader has at least ``holders`` supporters, counting live branches whose latest probe
  shows it (at least ``live_frac`` of the live ones). A probe counts only when a
  finished branch corroborates it: early probes share junk intermediate values.
* **Contest widening** (``widen``): the race starts with ``w0`` branches; once the pool
  holds two different answers, or ``patience`` rounds after the first finish without
  unanimity, it widens to ``w1`` live branches, then by ``widen_step`` per round, up to
  ``max_branch`` opened. Off: it never widens (a new branch opens only when none is
  left alive).
* **Defections** (``defections``): a branch *holds* an answer that it shows in two
  consecutive probes; each answer's votes lose ``defect_weight`` per branch (finished or
  live) that held it and now shows another answer. The leader and the Beta stop use
  these scores.
* **Futility stop** (``futility``): once ``futile_n`` answers are in and the leader holds
  less than ``futile_share`` of them, more samples rarely change the outcome: answer
  the leader.
* **ERR abstains** (``abstain``): the no-answer string never votes.

The stop kept in every ablation is the Beta-majority test: the leader's score exceeds
the runner-up's by at least ``min_lead`` with confidence at least ``threshold``.

Every hyper-parameter comes from :meth:`DepthSyncRace.schedule`; a larger beta means a
wider race, more supporters and a stricter stop, so more tokens. The controller reads
only the episode's public views (finished branches, depths, latest probes, the no-answer
id) and acts only through ``open_and_probe``, ``continue_and_probe`` and ``answer``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agents.base import Controller, clip01, geometric_count
from autotts_gym.engine import Episode, EpisodeResult
from autotts_gym.engine.voting import beta_confidence


@dataclass(frozen=True)
class DepthSyncRace(Controller):
    """DSR; every field comes from :meth:`schedule` (the defaults are beta 0.5)."""

    name = "dsr"
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
        """Widths grow geometrically with beta (4 to 10 starting branches, 4 to 44 in a
        contest, 8 to 64 in all); supporters, lead, threshold and the futility floor grow
        linearly. Round = half to even."""
        b = clip01(beta)
        return {
            "w0": round(4 + 6 * b),
            "patience": 12,
            "w1": geometric_count(b, 4, 44),
            "widen_step": round(1 + b),
            "max_branch": geometric_count(b, 8, 64),
            "holders": round(3 + 4 * b),
            "live_frac": 0.5,
            "threshold": 0.75 + 0.15 * b,
            "min_lead": round(1 + 4 * b),
            "futile_n": round(4 + 8 * b),
            "futile_share": 0.5 - 0.25 * b,
            "defect_weight": 0.5,
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
