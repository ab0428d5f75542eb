"""The C loops (autotts_gym._speedups) against the engine's and the voting helpers'
reference Python: same results, same state, same errors.

Every test runs a scenario twice, once with the C loops and once with them switched off
(``engine._C`` and ``voting._C`` set to None, the state ``AUTOTTS_PURE_PYTHON=1`` gives),
and compares everything an episode exposes.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autotts_gym.cli.methods import TABLE1_ROWS, parse_method_spec
from autotts_gym.data.store import Split, SplitInfo
from autotts_gym.data.synthetic import default_store
from autotts_gym.engine import Episode, InvalidAction, speedups, voting
from autotts_gym.engine import episode as engine
from autotts_gym.evaluation.evaluate import make_options

ALPHABET = ("1", "2", "3", "ERR")


@pytest.fixture
def pure_python(monkeypatch):
    """Switch the C loops off for the duration of a test."""

    def switch_off() -> None:
        for name, reference in engine.REFERENCE_METHODS.items():
            monkeypatch.setattr(Episode, name, reference)
        monkeypatch.setattr(voting, "_C", None)

    return switch_off


def test_extension_is_built():
    # The extension is optional at install time, so a failed build would only show as
    # slowness: CI installs with a compiler and must get it.
    if os.environ.get("AUTOTTS_PURE_PYTHON", "") not in ("", "0"):
        pytest.skip("AUTOTTS_PURE_PYTHON is set")
    assert speedups.enabled(), "autotts_gym._speedups was not built (is a C compiler installed?)"


# ---------------------------------------------------------------- voting helpers
answers_lists = st.lists(st.integers(-1, 6), max_size=80)


def first_seen_majority(answers: list[int]) -> tuple[int, int, int]:
    """``(winner, v1, v2)`` from the definition, sharing no code with voting.py: count,
    then the first answer in list order whose count is the largest; v2 the largest
    count among the other answers."""
    counts: dict[int, int] = {}
    for a in answers:
        counts[a] = counts.get(a, 0) + 1
    v1 = max(counts.values(), default=0)
    winner = next((a for a in answers if counts[a] == v1), -1)
    v2 = max((c for a, c in counts.items() if a != winner), default=0)
    return winner, v1, v2


@given(answers_lists)
def test_majority_matches_counter(answers):
    expected = first_seen_majority(answers)
    assert voting.majority(answers) == expected
    assert voting.majority(tuple(answers)) == expected
    assert voting._majority_py(answers) == expected
    assert voting.top_two(Counter(answers)) == expected


def test_first_seen_majority_reference():
    assert first_seen_majority([]) == (-1, 0, 0)
    assert first_seen_majority([2, 1, 1, 2]) == (2, 2, 2)
    assert first_seen_majority([1, 2, 2, 1, 3]) == (1, 2, 2)
    assert first_seen_majority([3, 1, 1]) == (1, 2, 1)


@given(st.lists(st.integers(0, 200), max_size=300, unique=False))
def test_majority_many_distinct_values(answers):
    # More distinct values than the C tally keeps on the stack.
    assert voting.majority(answers) == first_seen_majority(answers)


@given(answers_lists, st.data())
def test_majority_among(answers, data):
    among = data.draw(st.lists(st.integers(0, max(0, len(answers) - 1)), max_size=40)) if answers else []
    expected = first_seen_majority([answers[j] for j in among])
    assert voting.majority(answers, among) == voting._majority_py(answers, among) == expected


def test_majority_falls_back_for_other_inputs():
    assert voting.majority(iter([2, 1, 1])) == (1, 2, 1)
    assert voting.majority(["b", "a", "b"]) == ("b", 2, 1)
    big = 10**30
    assert voting.majority([big, 1, big]) == (big, 2, 1)
    with pytest.raises(IndexError):
        voting.majority([1, 2], [5])


@given(st.lists(st.integers(0, 3), min_size=1, max_size=30), st.data())
def test_update_streaks_matches_reference(answers, data):
    n = len(answers)
    streaks = data.draw(st.lists(st.integers(0, 9), min_size=n, max_size=n))
    branches = data.draw(st.lists(st.integers(0, n - 1), max_size=n, unique=True))
    leader, threshold = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 10))
    ours, reference = list(streaks), list(streaks)
    assert voting.update_streaks(ours, branches, answers, leader, threshold) == voting._update_streaks_py(
        reference, branches, answers, leader, threshold
    )
    assert ours == reference


@given(st.lists(st.integers(-1, 3), min_size=1, max_size=30), st.data())
def test_by_agreement_matches_reference(answers, data):
    branches = data.draw(st.lists(st.integers(0, len(answers) - 1), max_size=40))
    leader = data.draw(st.integers(-1, 3))
    expected = voting._by_agreement_py(branches, answers, leader, 3, 1)
    assert voting.by_agreement(branches, answers, leader, 3, 1) == expected
    assert voting.by_agreement(tuple(branches), answers, leader, 3, 1) == expected


# -------------------------------------------------------------------- the engine
def episode_state(e: Episode) -> dict:
    """Everything an episode exposes, for comparison."""
    return {
        "opened": e.num_opened,
        "depths": e.depths,
        "status": [e.status(j) for j in range(e.num_opened)],
        "probed": [e.is_probed(j) for j in range(e.num_opened)],
        "latest": e.latest_answers,
        "active": e.active_branches,
        "finals": e.finished_answers,
        "finished": e.finished_branches,
        "vote": e.finished_vote(),
        "by_depth": (e.active_by_depth(), e.active_by_depth(deepest_first=False), e.active_by_depth(False)),
        "counts": (e.num_opened, e.num_active, e.num_finished),
        "probes": e.revealed_probes,
        "tokens": e.tokens,
        "sequential": e.sequential_tokens,
        "branch_tokens": [e.branch_tokens(j) for j in range(e.num_opened)],
        "cost": e.cost,
        "actions": e.num_actions,
    }


@st.composite
def small_splits(draw) -> Split:
    """Pools whose branches may have no probes at all (they finish on BRANCH)."""
    delta = draw(st.sampled_from([1, 7, 100]))
    pool = []
    for _ in range(draw(st.integers(1, 8))):
        probes = draw(st.lists(st.sampled_from(ALPHABET), max_size=6))
        pool.append((probes, draw(st.integers(0, 8 * delta)), draw(st.sampled_from(ALPHABET))))
    info = SplitInfo(model="hypothesis", benchmark="b", interval_tokens=delta)
    return Split.from_lists(info, ["q"], ["1"], [pool])


# One call of a composite or primitive: (name, argument drawer).
CALLS = ("open_and_probe_many", "continue_and_probe_many", "bursts", "read_whole_many", "prune", "open_and_probe")


def play(episode: Episode, script: list[tuple[str, int, list[int]]]) -> list:
    """Run a script of calls; the returned values and error types, in order."""
    out = []
    for name, n, picks in script:
        try:
            if name == "open_and_probe_many":
                out.append(episode.open_and_probe_many(n))
            elif name == "read_whole_many":
                out.append(episode.read_whole_many(n))
            elif name == "open_and_probe":
                out.append(episode.open_and_probe())
            elif name == "prune":
                active = episode.active_branches
                if active:
                    episode.prune(active[picks[0] % len(active)] if picks else active[0])
                out.append(None)
            else:
                # Branches named by picks: active ones, and now and then a finished,
                # pruned or unopened one, so the error path is exercised too.
                branches = [p % (episode.num_opened + 1) for p in picks]
                bursts = [1 + p % 5 for p in picks] if name == "bursts" else None
                out.append(episode.continue_and_probe_many(branches, bursts))
        except (InvalidAction, ValueError) as err:
            out.append(type(err).__name__)
        out.append(episode_state(episode))
    return out


scripts = st.lists(
    st.tuples(st.sampled_from(CALLS), st.integers(0, 4), st.lists(st.integers(0, 9), max_size=6)), max_size=20
)


@settings(max_examples=300, deadline=None)
@given(small_splits(), scripts, st.sampled_from([{}, {"budget_intervals": 12}]), st.booleans())
def test_engine_composites_match_reference(split, script, budget, reverse):
    q = split.question(0)
    order = tuple(range(q.num_branches))[:: -1 if reverse else 1]
    fast = play(Episode(q, order, **budget), script)
    installed = {name: Episode.__dict__[name] for name in engine.REFERENCE_METHODS}
    voting_c = voting._C
    try:
        for name, reference in engine.REFERENCE_METHODS.items():
            setattr(Episode, name, reference)
        voting._C = None
        reference = play(Episode(q, order, **budget), script)
    finally:
        for name, method in installed.items():
            setattr(Episode, name, method)
        voting._C = voting_c
    assert fast == reference


def test_bad_bursts_and_branches_raise_the_engine_errors():
    store = default_store()
    q = next(iter(store)).question(0)
    e = Episode(q, tuple(range(q.num_branches)))
    e.open_and_probe_many(3)
    with pytest.raises(ValueError, match="bursts must be >= 1"):
        e.continue_and_probe_many([0, 1], [1, 0])
    with pytest.raises(InvalidAction, match="not opened"):
        e.continue_and_probe_many([0, 7])
    e.prune(2)
    with pytest.raises(InvalidAction, match="pruned"):
        e.continue_and_probe_many([2])
    with pytest.raises(ValueError):
        e.open_and_probe_many(-1)


# ------------------------------------------------------------- whole controllers
def run_rows(split: Split, seeds: int) -> list:
    options = make_options(seeds)
    results = []
    for row in (*TABLE1_ROWS, "cmc@0", "dsr@0.5", "parallel-probe@0.5"):
        controller = parse_method_spec(row).build()
        for q in range(min(split.num_questions, 12)):
            for seed in options.seeds:
                e = options.episode(split, q, seed)
                results.append((row, q, seed, controller(e), episode_state(e)))
    return results


def test_controllers_identical_on_the_default_store(pure_python):
    split = next(iter(default_store()))
    fast = run_rows(split, seeds=3)
    pure_python()
    assert run_rows(split, seeds=3) == fast


def test_controllers_identical_on_a_release_split(release, pure_python):
    from autotts_gym.data.sources import load_store

    split = next(iter(load_store(release / "Qwen3-1.7B" / "aime24.json")))
    fast = run_rows(split, seeds=2)
    pure_python()
    assert run_rows(split, seeds=2) == fast
