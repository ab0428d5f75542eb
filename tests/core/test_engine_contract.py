"""The engine's cost and budget contract (facts sections 2 and 4) on a hand-made pool,
every composite with ``kappa_probe > 0`` under a budget, on the C and Python paths.

The pool (Delta = 100 tokens; answer ids: "1" = 0, "2" = 1, "3" = 2):

====== ================= ====== ====== ================================================
branch probe answers     total  final  stepwise charge / whole-read charge
====== ================= ====== ====== ================================================
b0     1, 2, 3           350    3      100+100+100+50 = 350 in 4 steps / 350
b1     2, 2              150    2      100+100+0 = 200 in 3 steps (max(0, 150 - 200)) / 150
b2     (none)            80     1      80 in 1 step (finishes on BRANCH) / 80
b3     1                 1000   1      100+900 = 1000 in 2 steps / 1000
====== ================= ====== ====== ================================================

Every budget test gives the exact budget an action needs (it must be admitted: cost
may reach the budget) and a budget 0.25 short (it must raise BudgetExceeded and leave
``cost <= budget``), for kappa 0.5 and 2 (a probe cheaper and dearer than an interval).
"""

from __future__ import annotations

import pytest

from autotts_gym.data.store import QuestionData, Split, SplitInfo
from autotts_gym.engine import BudgetExceeded, Episode

DELTA = 100
POOL = [
    (["1", "2", "3"], 350, "3"),
    (["2", "2"], 150, "2"),
    ([], 80, "1"),
    (["1"], 1000, "1"),
]
ONE, TWO, THREE = 0, 1, 2  # interned ids of "1", "2", "3"
STEPWISE_TOKENS = [350, 200, 80, 1000]  # max(total, P * Delta)
STEPS = [4, 3, 1, 2]  # P + 1
KAPPAS = (0.5, 2.0)
SHORT = 0.25


@pytest.fixture(scope="module")
def question() -> QuestionData:
    info = SplitInfo(model="contract", benchmark="b", interval_tokens=DELTA)
    q = Split.from_lists(info, ["q"], ["3"], [POOL]).question(0)
    assert q.vocab[:3] == ("1", "2", "3")
    return q


def episode(question: QuestionData, order=(0, 1, 2, 3), **kwargs) -> Episode:
    return Episode(question, tuple(order), **kwargs)


def check_cost(e: Episode, kappa: float, expected: float) -> None:
    """The MDP cost by its definition, from the views, equals ``expected`` and fits."""
    assert sum(e.depths) + kappa * len(e.revealed_probes) == pytest.approx(expected)
    assert e.cost == pytest.approx(expected)
    if e.budget is not None:
        assert e.cost <= e.budget + 1e-9


def check_result(e: Episode, kappa: float, expected_cost: float) -> None:
    """ANSWER's result carries the same cost (intervals include kappa x probes)."""
    tokens = e.tokens
    result = e.answer()
    assert result.probes == len(e.revealed_probes)
    assert result.intervals == pytest.approx(expected_cost)
    assert result.intervals == pytest.approx(sum(e.depths) + kappa * result.probes)
    assert result.tokens == tokens


# ----------------------------------------------------------------- budget units
@pytest.mark.parametrize("tokens, intervals", [(0, 0), (99, 0), (299, 2), (300, 3), (350.0, 3), (1999.9, 19)])
def test_budget_tokens_convert_with_floor(question, tokens, intervals):
    assert episode(question, budget_tokens=tokens).budget == intervals


def test_a_budget_in_tokens_binds_like_its_floor(question):
    e = episode(question, budget_tokens=299)  # 2 intervals
    e.open_and_probe_many(2)
    with pytest.raises(BudgetExceeded):
        e.branch()
    assert e.num_opened == 2 and e.cost == 2


# ------------------------------------------------- every composite with kappa > 0
@pytest.mark.parametrize("kappa", KAPPAS)
def test_probe(question, kappa):
    e = episode(question, budget_intervals=1 + kappa, kappa_probe=kappa)
    e.branch()
    assert e.probe(0) == ONE
    check_cost(e, kappa, 1 + kappa)
    check_result(e, kappa, 1 + kappa)

    e = episode(question, budget_intervals=1 + kappa - SHORT, kappa_probe=kappa)
    e.branch()
    with pytest.raises(BudgetExceeded):
        e.probe(0)
    assert e.revealed_probes == [] and not e.is_probed(0)
    check_cost(e, kappa, 1)


@pytest.mark.parametrize("kappa", KAPPAS)
def test_open_and_probe(question, kappa):
    e = episode(question, budget_intervals=1 + kappa, kappa_probe=kappa)
    assert e.open_and_probe() == (0, ONE)
    check_cost(e, kappa, 1 + kappa)
    with pytest.raises(BudgetExceeded):  # BRANCH alone no longer fits
        e.open_and_probe()
    assert e.num_opened == 1
    check_result(e, kappa, 1 + kappa)

    # The BRANCH fits, its PROBE does not: the branch stays open, unprobed.
    e = episode(question, budget_intervals=1 + kappa - SHORT, kappa_probe=kappa)
    with pytest.raises(BudgetExceeded):
        e.open_and_probe()
    assert e.num_opened == 1 and e.revealed_probes == []
    check_cost(e, kappa, 1)

    # A branch that finishes on BRANCH needs no PROBE.
    e = episode(question, order=(2, 0), budget_intervals=1, kappa_probe=kappa)
    assert e.open_and_probe() == (0, ONE)
    assert e.is_finished(0)
    check_cost(e, kappa, 1)


@pytest.mark.parametrize("kappa", KAPPAS)
def test_open_and_probe_many(question, kappa):
    e = episode(question, budget_intervals=2 + 2 * kappa, kappa_probe=kappa)
    assert e.open_and_probe_many(2) == [ONE, TWO]
    check_cost(e, kappa, 2 + 2 * kappa)
    with pytest.raises(BudgetExceeded):
        e.open_and_probe_many(1)
    check_result(e, kappa, 2 + 2 * kappa)

    e = episode(question, budget_intervals=2 + 2 * kappa - SHORT, kappa_probe=kappa)
    with pytest.raises(BudgetExceeded):
        e.open_and_probe_many(2)
    assert e.num_opened == 2 and len(e.revealed_probes) == 1
    check_cost(e, kappa, 2 + kappa)


@pytest.mark.parametrize("kappa", KAPPAS)
def test_continue_and_probe(question, kappa):
    e = episode(question, budget_intervals=2 + 2 * kappa, kappa_probe=kappa)
    e.open_and_probe()
    assert e.continue_and_probe(0) == TWO
    check_cost(e, kappa, 2 + 2 * kappa)
    with pytest.raises(BudgetExceeded):
        e.continue_and_probe(0)
    check_result(e, kappa, 2 + 2 * kappa)

    e = episode(question, budget_intervals=2 + 2 * kappa - SHORT, kappa_probe=kappa)
    e.open_and_probe()
    with pytest.raises(BudgetExceeded):
        e.continue_and_probe(0)
    assert e.depths == [1]
    check_cost(e, kappa, 1 + kappa)


@pytest.mark.parametrize("kappa", KAPPAS)
def test_continue_and_probe_many(question, kappa):
    full = 4 + 4 * kappa  # two branches opened and probed, then each stepped and probed
    e = episode(question, budget_intervals=full, kappa_probe=kappa)
    e.open_and_probe_many(2)
    assert e.continue_and_probe_many([0, 1]) == [TWO, TWO]
    check_cost(e, kappa, full)
    check_result(e, kappa, full)

    e = episode(question, budget_intervals=full - SHORT, kappa_probe=kappa)
    e.open_and_probe_many(2)
    with pytest.raises(BudgetExceeded):
        e.continue_and_probe_many([0, 1])
    assert e.depths == [2, 1]
    check_cost(e, kappa, 3 + 3 * kappa)


@pytest.mark.parametrize("kappa", KAPPAS)
def test_continue_and_probe_many_bursts(question, kappa):
    e = episode(question, budget_intervals=3 + 3 * kappa, kappa_probe=kappa)
    e.open_and_probe()
    assert e.continue_and_probe_many([0], [2]) == [THREE]
    check_cost(e, kappa, 3 + 3 * kappa)
    check_result(e, kappa, 3 + 3 * kappa)

    e = episode(question, budget_intervals=3 + 3 * kappa - SHORT, kappa_probe=kappa)
    e.open_and_probe()
    with pytest.raises(BudgetExceeded):
        e.continue_and_probe_many([0], [2])
    assert e.depths == [2]
    check_cost(e, kappa, 2 + 2 * kappa)


@pytest.mark.parametrize("kappa", KAPPAS)
def test_read_whole(question, kappa):
    # One probed branch, then b1 read whole: 3 intervals, charged its total of 150.
    e = episode(question, budget_intervals=4 + kappa, kappa_probe=kappa)
    e.open_and_probe()
    assert e.read_whole() == (1, TWO)
    check_cost(e, kappa, 4 + kappa)
    assert e.tokens == 100 + 150
    check_result(e, kappa, 4 + kappa)

    e = episode(question, budget_intervals=4 + kappa - SHORT, kappa_probe=kappa)
    e.open_and_probe()
    with pytest.raises(BudgetExceeded):
        e.read_whole()
    assert e.num_opened == 1
    check_cost(e, kappa, 1 + kappa)


@pytest.mark.parametrize("kappa", KAPPAS)
def test_read_whole_many(question, kappa):
    e = episode(question, budget_intervals=5 + kappa, kappa_probe=kappa)
    e.open_and_probe()
    assert e.read_whole_many(2) == [TWO, ONE]  # b1 (3 intervals) and b2 (1)
    check_cost(e, kappa, 5 + kappa)
    assert e.tokens == 100 + 150 + 80
    check_result(e, kappa, 5 + kappa)

    e = episode(question, budget_intervals=5 + kappa - SHORT, kappa_probe=kappa)
    e.open_and_probe()
    with pytest.raises(BudgetExceeded):
        e.read_whole_many(2)
    assert e.num_opened == 2  # b1 was read, b2 did not fit
    check_cost(e, kappa, 4 + kappa)


# ------------------------------------------------------------------ token accounting
@pytest.mark.parametrize("budget", [None, 100])  # a budget takes the checked Python path
@pytest.mark.parametrize("b", range(len(POOL)))
def test_stepwise_read_charges_max_of_total_and_probes(question, budget, b):
    e = episode(question, order=(b,), budget_intervals=budget)
    e.open_and_probe()
    while e.is_active(0):
        e.continue_and_probe(0)
    assert e.depth(0) == STEPS[b]
    assert e.branch_tokens(0) == e.tokens == e.sequential_tokens == STEPWISE_TOKENS[b]
    result = e.answer()
    assert result.tokens == STEPWISE_TOKENS[b] and result.answer == question.final_answer[b]

    # The same through the primitives and the many-composite.
    e = episode(question, order=(b,), budget_intervals=budget)
    e.branch()
    while e.is_active(0):
        e.continue_branch(0)
    assert e.tokens == STEPWISE_TOKENS[b] and e.answer().tokens == STEPWISE_TOKENS[b]
    e = episode(question, order=(b,), budget_intervals=budget)
    e.open_and_probe_many(1)
    if e.is_active(0):
        e.continue_and_probe_many([0], [10])
    assert e.tokens == STEPWISE_TOKENS[b] and e.answer().tokens == STEPWISE_TOKENS[b]


@pytest.mark.parametrize("budget", [None, 100])
def test_whole_reads_charge_exactly_the_total(question, budget):
    totals = [total for _, total, _ in POOL]
    e = episode(question, budget_intervals=budget)
    for b in range(len(POOL)):
        assert e.read_whole() == (b, question.final_answer[b])
        assert e.branch_tokens(b) == totals[b]
    assert e.depths == STEPS and e.tokens == sum(totals) and e.sequential_tokens == 1000
    assert e.answer().tokens == sum(totals)

    e = episode(question, budget_intervals=budget)
    assert e.read_whole_many(4) == list(question.final_answer)
    assert e.depths == STEPS and e.tokens == sum(totals)
    assert e.answer().tokens == sum(totals)


def test_mixed_episode_tokens_and_cost(question):
    e = episode(question, order=(0, 1, 2, 3), kappa_probe=0.5)
    e.open_and_probe_many(2)  # b0, b1 at depth 1
    e.continue_and_probe_many([1, 1])  # b1: depth 2 (probe), then finishes (+0)
    e.read_whole_many(2)  # b2 (80), b3 (1000)
    assert e.tokens == 100 + 200 + 80 + 1000
    assert e.depths == [1, 3, 1, 2]
    check_cost(e, 0.5, 7 + 0.5 * 3)
    check_result(e, 0.5, 7 + 0.5 * 3)


# ------------------------------------------------------------------------- prune
def test_prune_keeps_depth_and_revealed_answers(question):
    e = episode(question)
    e.open_and_probe_many(2)
    assert e.continue_and_probe(0) == TWO
    before = (e.depths, e.revealed_probes, e.tokens, e.cost)
    e.prune(0)
    assert e.is_pruned(0) and e.active_branches == [1]
    assert e.latest_answer(0) == TWO
    assert (e.depths, e.revealed_probes, e.tokens, e.cost) == before


# ------------------------------------------------------------- default aggregate
@pytest.mark.parametrize("order, winner", [((0, 2), THREE), ((2, 0), ONE)])
def test_aggregate_ties_go_to_the_first_finished(question, order, winner):
    e = episode(question, order=order)
    e.read_whole_many(2)  # finals "3" and "1": one vote each
    assert e.finished_vote() == (winner, 1, 1)
    assert e.answer().answer == winner


def test_aggregate_follows_finishing_not_opening_order(question):
    e = episode(question, order=(0, 3))
    e.open_and_probe_many(2)  # b0 and b3 at depth 1
    e.continue_and_probe(1)  # b3 finishes first: "1"
    e.continue_and_probe_many([0], [3])  # then b0: "3"
    assert e.finished_answers == [ONE, THREE]
    assert e.answer().answer == ONE


def test_aggregate_without_finals_ignores_pruned_branches(question):
    e = episode(question, order=(0, 1))
    assert e.open_and_probe_many(2) == [ONE, TWO]
    e.prune(0)
    assert e.answer().answer == TWO
