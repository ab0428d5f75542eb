"""Voting, the Beta-majority confidence and the release's branch order, each against an
independent reference (exact arithmetic, explicit orders), on the C and Python paths."""

from __future__ import annotations

import random
from fractions import Fraction
from math import comb

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autotts_gym.data.synthetic import default_store
from autotts_gym.engine import voting
from autotts_gym.evaluation.evaluate import EpisodeOptions
from autotts_gym.evaluation.orders import branch_order, release_order


# ------------------------------------------------------------------------ majority
def first_seen_majority(answers: list[int]) -> tuple[int, int, int]:
    """``(winner, v1, v2)`` written from the definition: count with a dict, then scan in
    the given order keeping the first answer with the largest count."""
    counts: dict[int, int] = {}
    for a in answers:
        counts[a] = counts.get(a, 0) + 1
    winner, v1 = -1, 0
    for a in answers:
        if counts[a] > v1:
            winner, v1 = a, counts[a]
    v2 = max((c for a, c in counts.items() if a != winner), default=0)
    return winner, v1, v2


@pytest.mark.parametrize(
    "answers, expected",
    [
        ([], (-1, 0, 0)),
        ([5], (5, 1, 0)),
        ([2, 1], (2, 1, 1)),
        ([1, 2], (1, 1, 1)),
        ([3, 1, 1, 3], (3, 2, 2)),
        ([1, 3, 3, 1, 2], (1, 2, 2)),
        ([0, 4, 4, 0, 0, 4, -1], (0, 3, 3)),
        ([2, 2, 1, 9, 9, 9], (9, 3, 2)),
    ],
)
def test_majority_ties_go_to_the_first_seen(answers, expected):
    assert first_seen_majority(answers) == expected
    assert voting.majority(answers) == expected
    assert voting.majority(tuple(answers)) == expected
    winner, v1, v2, conf = voting.vote_confidence(answers)
    assert (winner, v1, v2) == expected


@given(st.lists(st.integers(-1, 4), max_size=40))
def test_majority_matches_the_definition_on_both_paths(answers):
    expected = first_seen_majority(answers)
    assert voting.majority(answers) == expected  # the tally of int ids
    assert voting.majority(iter(answers)) == expected  # the counting path (any iterable)


# -------------------------------------------------------------- Beta confidence
def exact_beta_confidence(v1: int, v2: int) -> Fraction:
    """``1 - I_{1/2}(v1 + 1, v2 + 1)`` exactly: for integer shape parameters
    ``I_x(a, b) = P(Binomial(a + b - 1, x) >= a)``, so the confidence is
    ``P(Binomial(v1 + v2 + 1, 1/2) <= v1)``."""
    n = v1 + v2 + 1
    return Fraction(sum(comb(n, i) for i in range(v1 + 1)), 2**n)


def test_beta_confidence_small_counts_by_hand():
    assert voting.beta_confidence(0, 0) == 0.0  # no votes
    assert voting.beta_confidence(1, 0) == pytest.approx(3 / 4, abs=1e-12)  # 1 - 0.5**2
    assert voting.beta_confidence(2, 0) == pytest.approx(7 / 8, abs=1e-12)
    assert voting.beta_confidence(1, 1) == pytest.approx(1 / 2, abs=1e-12)
    assert voting.beta_confidence(2, 1) == pytest.approx(11 / 16, abs=1e-12)
    assert voting.beta_confidence(0, 1) == pytest.approx(1 / 4, abs=1e-12)


@pytest.mark.parametrize("v1", range(0, 16))
def test_beta_confidence_equals_the_binomial_closed_form(v1):
    for v2 in range(0, 16):
        if v1 == v2 == 0:
            continue
        assert voting.beta_confidence(v1, v2) == pytest.approx(float(exact_beta_confidence(v1, v2)), abs=1e-12)


def test_vote_confidence_uses_the_top_two_counts():
    # 4 votes for 7, 2 for 3, 1 for 5: conf = P(Binomial(7, 1/2) <= 4) = 99/128.
    assert voting.vote_confidence([7, 3, 7, 5, 7, 3, 7]) == pytest.approx((7, 4, 2, 99 / 128))
    assert voting.vote_confidence([]) == (-1, 0, 0, 0.0)


# --------------------------------------------------------------- release order
# random.Random(seed).shuffle(list(range(n))), written out: the orders the release's
# evaluation used, so a different shuffle (another generator, sample(), numpy) fails.
EXPLICIT_ORDERS = {
    (10, 0): [7, 8, 1, 5, 3, 4, 2, 0, 9, 6],
    (10, 1): [6, 8, 9, 7, 5, 3, 0, 4, 1, 2],
    (10, 99): [7, 2, 0, 8, 5, 1, 4, 3, 9, 6],
    (128, 0): [48, 43, 108, 72, 29, 14, 54, 23, 124, 94, 10, 44],
    (128, 42): [9, 92, 102, 76, 49, 16, 62, 103, 104, 82, 47, 21],
}


def fisher_yates(pool_size: int, seed: int) -> list[int]:
    """CPython's ``Random.shuffle`` spelled out: from the last position down, swap with
    a uniform index below it, drawn by rejection from ``getrandbits``."""
    rng = random.Random(seed)
    order = list(range(pool_size))
    for i in reversed(range(1, pool_size)):
        k = (i + 1).bit_length()
        r = rng.getrandbits(k)
        while r >= i + 1:
            r = rng.getrandbits(k)
        order[i], order[r] = order[r], order[i]
    return order


@pytest.mark.parametrize("size_seed", sorted(EXPLICIT_ORDERS))
def test_release_order_explicit(size_seed):
    size, seed = size_seed
    expected = EXPLICIT_ORDERS[size_seed]
    assert list(release_order(size, seed)[: len(expected)]) == expected
    assert list(branch_order(size, seed, question=3)[: len(expected)]) == expected  # "release" is the default
    assert fisher_yates(size, seed)[: len(expected)] == expected


def test_release_order_matches_fisher_yates_for_the_protocol_seeds():
    for seed in range(100):
        assert list(release_order(128, seed)) == fisher_yates(128, seed), seed


def test_evaluation_episodes_open_branches_in_release_order():
    # The protocol's episode of (question, seed) takes the release order, whatever the
    # question; subsample keeps its head.
    split = next(iter(default_store()))
    options = EpisodeOptions(seeds=(0, 1))
    n = split.question(0).num_branches
    for question in (0, 5):
        for seed in (0, 1, 42):
            assert list(options.episode(split, question, seed).order) == fisher_yates(n, seed)
    head = EpisodeOptions(subsample=4).episode(split, 2, 99).order
    assert list(head) == fisher_yates(n, 99)[:4]
