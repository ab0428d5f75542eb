"""The compiled build of the engine against its plain-Python build: one source
(autotts_gym/engine/episode.py, views.py, voting.py), two builds, identical results.

The compiled modules shadow the sources in a process, so the two builds run in two
processes: a child with ``AUTOTTS_PURE_PYTHON=1`` (the ``.py`` files) and one without
(the compiled modules, when built) play the same scripted episodes and whole
controllers, and print everything the episodes exposed; the outputs must be equal. The
engine contract tests also run under the plain-Python build. In this process, the voting
helpers are checked against references written from their definitions.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autotts_gym.data.synthetic import default_store
from autotts_gym.engine import Episode, InvalidAction, episode, views, voting
from autotts_gym.utils.build import is_compiled, pure_python_requested

ROOT = Path(__file__).resolve().parents[2]
ALPHABET = ("1", "2", "3", "ERR")


def test_the_engine_is_compiled():
    # Compiling is optional at install time, so a failed build would only show as
    # slowness: CI installs with a compiler and must get it.
    if pure_python_requested():
        pytest.skip("AUTOTTS_PURE_PYTHON is set")
    assert all(map(is_compiled, (episode, views, voting))), "the engine was not compiled (is a C compiler installed?)"


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
    assert voting.majority(iter(answers)) == expected  # the counting path for other iterables
    assert voting.top_two(Counter(answers)) == expected


def test_first_seen_majority_reference():
    assert first_seen_majority([]) == (-1, 0, 0)
    assert first_seen_majority([2, 1, 1, 2]) == (2, 2, 2)
    assert first_seen_majority([1, 2, 2, 1, 3]) == (1, 2, 2)
    assert first_seen_majority([3, 1, 1]) == (1, 2, 1)


@given(st.lists(st.integers(0, 200), max_size=300, unique=False))
def test_majority_many_distinct_values(answers):
    # More distinct values than the tally of int ids keeps (64): the counting path.
    assert voting.majority(answers) == first_seen_majority(answers)


@given(answers_lists, st.data())
def test_majority_among(answers, data):
    among = data.draw(st.lists(st.integers(0, max(0, len(answers) - 1)), max_size=40)) if answers else []
    expected = first_seen_majority([answers[j] for j in among])
    assert voting.majority(answers, among) == voting.majority(answers, iter(among)) == expected


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
    reached = []
    for j in branches:  # the definition
        reference[j] = reference[j] + 1 if answers[j] != leader else 0
        if reference[j] >= threshold:
            reached.append(j)
    assert voting.update_streaks(ours, branches, answers, leader, threshold) == reached
    assert ours == reference


@given(st.lists(st.integers(-1, 3), min_size=1, max_size=30), st.data())
def test_by_agreement_matches_reference(answers, data):
    branches = data.draw(st.lists(st.integers(0, len(answers) - 1), max_size=40))
    leader = data.draw(st.integers(-1, 3))
    expected = [3 if answers[j] == leader else 1 for j in branches]
    assert voting.by_agreement(branches, answers, leader, 3, 1) == expected
    assert voting.by_agreement(tuple(branches), answers, leader, 3, 1) == expected


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


# ------------------------------------------------- the two builds, side by side
def run_build(pure: bool, *args: str) -> str:
    """What ``python tests/core/build_player.py ARGS`` prints under one build."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("AUTOTTS_PURE_PYTHON", None)
    if pure:
        env["AUTOTTS_PURE_PYTHON"] = "1"
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "core" / "build_player.py"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    build, _, out = done.stdout.partition("\n")
    assert build == ("pure" if pure else "compiled" if not pure_python_requested() else build), build
    return out


@pytest.mark.parametrize("budget", [None, 12])
def test_scripted_episodes_identical_in_both_builds(budget):
    args = ["scripts", "--examples", "300", "--budget", str(budget)]
    assert run_build(False, *args) == run_build(True, *args)


def test_controllers_identical_in_both_builds_on_the_default_store():
    assert run_build(False, "controllers", "--seeds", "3") == run_build(True, "controllers", "--seeds", "3")


def test_controllers_identical_in_both_builds_on_a_release_split(release):
    args = ["controllers", "--seeds", "2", "--store", str(release / "Qwen3-1.7B" / "aime24.json")]
    assert run_build(False, *args) == run_build(True, *args)


def test_the_engine_contract_holds_in_the_plain_python_build():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), AUTOTTS_PURE_PYTHON="1")
    tests = ["tests/core/test_engine_contract.py", "tests/core/test_voting_orders.py", "tests/core/test_budget.py"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
