"""Shared voting and confidence helpers: every controller votes through these.

Ties in a majority vote go to the tied answer seen first: ``collections.Counter`` keeps
first-insertion order and ``max`` returns the first maximum, so the order of the list
given is the tie-break order (finishing order, opening order, reading order).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from functools import cache

NO_ANSWER_ID = -1


def vote_counts(answers: Iterable[int]) -> Counter:
    """Counts of each answer, in first-seen order."""
    return Counter(answers)


def top_two(counts: Counter) -> tuple[int, int, int]:
    """``(winner, v1, v2)`` of a vote: leader (first seen among ties), its count and the
    runner-up's count. ``(-1, 0, 0)`` for an empty vote."""
    if not counts:
        return NO_ANSWER_ID, 0, 0
    winner = max(counts, key=counts.__getitem__)
    v1 = counts[winner]
    v2 = 0
    for answer, c in counts.items():
        if c > v2 and answer != winner:
            v2 = c
    return winner, v1, v2


def majority(answers: Iterable[int]) -> tuple[int, int, int]:
    """``(winner, v1, v2)`` of the answers, ties to the first seen."""
    return top_two(Counter(answers))


@cache
def beta_confidence(v1: int, v2: int) -> float:
    """Beta-majority confidence ``1 - BetaCDF(0.5; v1 + 1, v2 + 1)``; 0 with no votes.

    The probability, under a uniform prior, that the leader's true share exceeds 1/2.
    """
    if v1 <= 0 and v2 <= 0:
        return 0.0
    from scipy.special import betainc

    return float(1.0 - betainc(v1 + 1, v2 + 1, 0.5))


def vote_confidence(answers: Iterable[int]) -> tuple[int, int, int, float]:
    """``(winner, v1, v2, conf)`` of the answers with their Beta-majority confidence."""
    winner, v1, v2 = majority(answers)
    return winner, v1, v2, beta_confidence(v1, v2)
