"""Shared voting and confidence helpers: every controller votes through these.

Ties in a majority vote go to the tied answer seen first: ``collections.Counter`` keeps
first-insertion order and ``max`` returns the first maximum, so the order of the list
given is the tie-break order (finishing order, opening order, reading order).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

from autotts_gym.engine.speedups import C as _C

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


def majority(answers: Iterable[int], among: Iterable[int] | None = None) -> tuple[int, int, int]:
    """``(winner, v1, v2)`` of the answers, ties to the first seen.

    With ``among``, the vote of ``answers[j] for j in among`` (in that order): e.g. the
    latest answers of the unpruned branches.
    """
    if _C is not None:  # the same count in C for lists and tuples of ints
        result = _C.majority(answers) if among is None else _C.majority(answers, among)
        if result is not NotImplemented:
            return result
    return _majority_py(answers, among)


def _majority_py(answers: Iterable[int], among: Iterable[int] | None = None) -> tuple[int, int, int]:
    # The reference of the C count (tests/core/test_speedups.py compares them).
    if among is not None:
        answers = [answers[j] for j in among]
    return top_two(Counter(answers))


def update_streaks(
    streaks: list[int], branches: Sequence[int], answers: Sequence[int], leader: int, threshold: int
) -> list[int]:
    """Off-track streaks: for each ``j`` in ``branches``, ``streaks[j]`` grows by one if
    ``answers[j] != leader`` and resets to 0 otherwise. Returns the branches whose streak
    reached ``threshold``, in the order given (Parallel-Probe's and CMC's pruning rule)."""
    if _C is not None and type(streaks) is list and type(branches) is list and type(answers) is list:
        return _C.update_streaks(streaks, branches, answers, leader, threshold)
    return _update_streaks_py(streaks, branches, answers, leader, threshold)


def _update_streaks_py(
    streaks: list[int], branches: Sequence[int], answers: Sequence[int], leader: int, threshold: int
) -> list[int]:
    # The reference of the C loop (tests/core/test_speedups.py compares them).
    reached = []
    for j in branches:
        streaks[j] = streaks[j] + 1 if answers[j] != leader else 0
        if streaks[j] >= threshold:
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


def by_agreement(branches: Sequence[int], answers: Sequence[int], leader: int, agree: Any, disagree: Any) -> list:
    """``agree`` for each ``j`` in ``branches`` whose ``answers[j] == leader``, else
    ``disagree``: e.g. CMC's per-branch bursts (longer for branches aligned with the
    pool winner)."""
    if _C is not None and type(branches) is list and type(answers) is list:
        return _C.by_agreement(branches, answers, leader, agree, disagree)
    return _by_agreement_py(branches, answers, leader, agree, disagree)


def _by_agreement_py(branches: Sequence[int], answers: Sequence[int], leader: int, agree: Any, disagree: Any) -> list:
    # The reference of the C loop (tests/core/test_speedups.py compares them).
    return [agree if answers[j] == leader else disagree for j in branches]
