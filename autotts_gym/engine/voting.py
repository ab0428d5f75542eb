"""Shared voting and confidence helpers: every controller votes through these.

Ties in a majority vote go to the tied answer seen first: the counts keep first-insertion
order and only a strictly larger count takes the lead, so the order of the list given is
the tie-break order (finishing order, opening order, reading order).

Compiled with the engine when a C compiler is present (``voting.pxd`` declares the
counts' C types), plain Python otherwise: the same file, identical results.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

NO_ANSWER_ID = -1


def vote_counts(answers: Iterable[int]) -> Counter:
    """Counts of each answer, in first-seen order."""
    return Counter(answers)


def top_two(counts: Mapping[Any, int]) -> tuple[int, int, int]:
    """``(winner, v1, v2)`` of a vote: leader (first seen among ties), its count and the
    runner-up's count. ``(-1, 0, 0)`` for an empty vote."""
    winner, v1, v2 = NO_ANSWER_ID, 0, 0
    for answer, c in counts.items():
        if c > v1:  # a new leader; the old one is the runner-up
            winner, v1, v2 = answer, c, v1
        elif c > v2:
            v2 = c
    return winner, v1, v2


def majority(answers: Iterable[int], among: Iterable[int] | None = None) -> tuple[int, int, int]:
    """``(winner, v1, v2)`` of the answers, ties to the first seen.

    With ``among``, the vote of ``answers[j] for j in among`` (in that order): e.g. the
    latest answers of the unpruned branches.
    """
    if isinstance(answers, (list, tuple)):
        try:
            vote = _vote_of_ids(answers, among)
        except (TypeError, OverflowError):  # not int ids (the compiled build counts C longs)
            vote = None
        if vote is not None:
            return vote
    votes = answers if among is None else [answers[j] for j in among]
    counts: dict[Any, int] = {}
    for a in votes:
        counts[a] = counts.get(a, 0) + 1
    return top_two(counts)


def _vote_of_ids(answers: Sequence[int], among: Iterable[int] | None) -> tuple[int, int, int] | None:
    # majority() of int answer ids with at most 64 distinct values (None beyond): a tally
    # in first-seen order, on the stack when compiled (voting.pxd).
    values = [0] * 64
    counts = [0] * 64
    m = 0
    for i in range(len(answers) if among is None else len(among)):
        j = i if among is None else among[i]
        a = answers[j]
        k = 0
        while k < m and values[k] != a:
            k += 1
        if k == m:
            if m == 64:
                return None
            values[m] = a
            counts[m] = 0
            m += 1
        counts[k] += 1
    if m == 0:
        return NO_ANSWER_ID, 0, 0
    best = 0
    for k in range(1, m):
        if counts[k] > counts[best]:
            best = k
    v2 = 0
    for k in range(m):
        if k != best and counts[k] > v2:
            v2 = counts[k]
    return values[best], counts[best], v2


def update_streaks(
    streaks: list[int], branches: Iterable[int], answers: Sequence[int], leader: int, threshold: int
) -> list[int]:
    """Off-track streaks: for each ``j`` in ``branches``, ``streaks[j]`` grows by one if
    ``answers[j] != leader`` and resets to 0 otherwise. Returns the branches whose streak
    reached ``threshold``, in the order given (Parallel-Probe's and CMC's pruning rule)."""
    reached = []
    for j in branches:
        s = streaks[j]
        s = s + 1 if answers[j] != leader else 0
        streaks[j] = s
        if s >= threshold:
            reached.append(j)
    return reached


@cache
def beta_confidence(v1: int, v2: int) -> float:
    """Beta-majority confidence ``1 - BetaCDF(0.5; v1 + 1, v2 + 1)``; 0 with no votes.

    The probability, under a uniform prior, that the leader's true share exceeds 1/2.
    """
    if v1 <= 0 and v2 <= 0:
        return 0.0
    known = _KNOWN_CONFIDENCE.get((v1, v2))
    if known is not None:
        return known
    from scipy.special import betainc

    return float(1.0 - betainc(v1 + 1, v2 + 1, 0.5))


# Values of beta_confidence given by preload_confidence (an isolated controller's process
# gets them from the engine's side, so it need not load scipy: bit-for-bit the same).
_KNOWN_CONFIDENCE: dict[tuple[int, int], float] = {}


def confidence_table(max_votes: int) -> list[list[float]]:
    """``table[v1][v2] = beta_confidence(v1, v2)`` for ``0 <= v1, v2 <= max_votes``."""
    import numpy as np
    from scipy.special import betainc

    v = np.arange(max_votes + 1)
    table = 1.0 - betainc(v[:, None] + 1, v[None, :] + 1, 0.5)
    table[0, 0] = 0.0
    return table.tolist()


def preload_confidence(table: list[list[float]]) -> None:
    """Make :func:`beta_confidence` answer from ``table`` (:func:`confidence_table`)."""
    for v1, row in enumerate(table):
        for v2, value in enumerate(row):
            _KNOWN_CONFIDENCE[v1, v2] = float(value)


def vote_confidence(answers: Iterable[int]) -> tuple[int, int, int, float]:
    """``(winner, v1, v2, conf)`` of the answers with their Beta-majority confidence."""
    winner, v1, v2 = majority(answers)
    return winner, v1, v2, beta_confidence(v1, v2)


def by_agreement(branches: Iterable[int], answers: Sequence[int], leader: int, agree: Any, disagree: Any) -> list:
    """``agree`` for each ``j`` in ``branches`` whose ``answers[j] == leader``, else
    ``disagree``: e.g. CMC's per-branch bursts (longer for branches aligned with the
    pool winner)."""
    return [agree if answers[j] == leader else disagree for j in branches]
