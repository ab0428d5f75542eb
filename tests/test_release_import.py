"""The release importer: every malformed input is a StoreError naming file, question and field."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autotts_gym.release import find_release_files, import_release, read_release_file
from autotts_gym.store import StoreError


def release_question(text: str = "What is 1+1?") -> dict[str, Any]:
    """A valid release question with three branches (one with no probe at all)."""
    branches = [[["1", "2"], 1200, "2"], [["ERR"], 700, "3"], [[], 300, "2"]]
    return {
        "question": text,
        "gold_answer": "2",
        "probe_freq": 500,
        "final_answers_trace": [b[2] for b in branches],
        "each_branch": branches,
    }


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def two_questions(mutate: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """Two valid questions, the second (index 1) changed by ``mutate``."""
    second = release_question("What is 2+0?")
    mutate(second)
    return [release_question(), second]


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda q: q.__setitem__(field, value)


def _set_branch(b: int, i: int, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda q: q["each_branch"][b].__setitem__(i, value)


def _empty_pool(q: dict[str, Any]) -> None:
    q["each_branch"], q["final_answers_trace"] = [], []


def _bad_final(q: dict[str, Any]) -> None:
    q["each_branch"][0][2] = 2
    q["final_answers_trace"][0] = 2


# (case id, change to question 1, substrings the message must contain besides file and question)
QUESTION_CASES = [
    ("missing field", lambda q: q.pop("each_branch"), ["missing", "'each_branch'"]),
    ("missing two fields", lambda q: [q.pop("gold_answer"), q.pop("probe_freq")], ["'gold_answer'", "'probe_freq'"]),
    ("unknown field", _set("difficulty", 3), ["unknown", "'difficulty'"]),
    ("question not str", _set("question", 7), ["'question'", "string", "int"]),
    ("gold not str", _set("gold_answer", 2), ["'gold_answer'", "string", "int"]),
    ("gold null", _set("gold_answer", None), ["'gold_answer'", "NoneType"]),
    ("probe_freq zero", _set("probe_freq", 0), ["'probe_freq'", "positive integer"]),
    ("probe_freq negative", _set("probe_freq", -500), ["'probe_freq'", "positive integer"]),
    ("probe_freq float", _set("probe_freq", 500.0), ["'probe_freq'", "positive integer"]),
    ("probe_freq bool", _set("probe_freq", True), ["'probe_freq'", "positive integer"]),
    ("probe_freq str", _set("probe_freq", "500"), ["'probe_freq'", "positive integer"]),
    ("inconsistent probe_freq", _set("probe_freq", 400), ["'probe_freq'", "400", "question 0 has 500"]),
    ("each_branch not a list", _set("each_branch", {"0": []}), ["'each_branch'", "must be a list", "dict"]),
    ("empty each_branch", _empty_pool, ["'each_branch'", "empty"]),
    ("trace not a list", _set("final_answers_trace", "2,3,2"), ["'final_answers_trace'", "must be a list"]),
    (
        "trace too short",
        lambda q: q["final_answers_trace"].pop(),
        ["'final_answers_trace'", "2 answers for 3 branches"],
    ),
    (
        "trace value mismatch",
        lambda q: q["final_answers_trace"].__setitem__(2, "7"),
        ["'final_answers_trace'[2]", "'7'"],
    ),
    (
        "branch too short",
        lambda q: q["each_branch"].__setitem__(1, [["1"], 500]),
        ["'each_branch'[1]", "[probe_answers"],
    ),
    ("branch too long", lambda q: q["each_branch"][1].append("x"), ["'each_branch'[1]", "[probe_answers"]),
    ("branch an object", lambda q: q["each_branch"].__setitem__(1, {"a": 1}), ["'each_branch'[1]", "[probe_answers"]),
    ("probe_answers not a list", _set_branch(0, 0, "1 2"), ["'each_branch'[0][0]", "probe_answers", "list"]),
    ("probe answer not str", _set_branch(0, 0, ["1", 2]), ["'each_branch'[0][0][1]", "probe answer", "string"]),
    ("probe answer null", _set_branch(0, 0, [None]), ["'each_branch'[0][0][0]", "probe answer", "null"]),
    ("total_tokens negative", _set_branch(2, 1, -5), ["'each_branch'[2][1]", "total_tokens", "negative", "-5"]),
    ("total_tokens float", _set_branch(2, 1, 300.5), ["'each_branch'[2][1]", "total_tokens", "integer", "300.5"]),
    ("total_tokens bool", _set_branch(2, 1, True), ["'each_branch'[2][1]", "total_tokens", "integer", "true"]),
    ("total_tokens str", _set_branch(2, 1, "300"), ["'each_branch'[2][1]", "total_tokens", "integer", "'300'"]),
    ("final_answer not str", _bad_final, ["'each_branch'[0][2]", "final_answer", "string"]),
]


@pytest.mark.parametrize("mutate, expected", [c[1:] for c in QUESTION_CASES], ids=[c[0] for c in QUESTION_CASES])
def test_question_errors_name_file_question_and_field(tmp_path, mutate, expected):
    path = write_json(tmp_path / "M" / "bench.json", two_questions(mutate))
    with pytest.raises(StoreError) as err:
        read_release_file(path, "M", "bench")
    message = str(err.value)
    assert message.startswith(f"{path}: question 1")
    for part in expected:
        assert part in message


def test_question_not_an_object(tmp_path):
    path = write_json(tmp_path / "b.json", [release_question(), ["not", "an", "object"]])
    with pytest.raises(StoreError, match=r"question 1: expected an object, got list") as err:
        read_release_file(path, "M", "b")
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "content, expected",
    [
        (b'[{"question": "x",', "malformed JSON at line 1"),
        (b"", "malformed JSON"),
        (b'{"question": "x"}', "expected a JSON list of questions, got dict"),
        (b'"just a string"', "expected a JSON list of questions, got str"),
        (b"[]", "the list of questions is empty"),
        (b'[{"question": "caf\xe9"}]', "not UTF-8 text"),
    ],
    ids=["truncated", "empty file", "top-level object", "top-level string", "empty list", "latin-1"],
)
def test_file_level_errors_name_the_file(tmp_path, content, expected):
    path = tmp_path / "M" / "bench.json"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(StoreError) as err:
        read_release_file(path, "M", "bench")
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)


def test_valid_file_builds_its_split(tmp_path):
    path = write_json(tmp_path / "Qwen-X" / "quiz.json", [release_question(), release_question("Q2")])
    split = read_release_file(path, "Qwen-X", "quiz")
    assert split.name == "Qwen-X/quiz"
    assert split.info.interval_tokens == 500
    assert split.info.source == str(path)
    assert split.questions == ("What is 1+1?", "Q2")
    assert split.branch_answers(1, 0) == (["1", "2"], 1200, "2")
    assert split.branch_answers(1, 2) == ([], 300, "2")


def test_folder_names_splits_by_model_and_benchmark(tmp_path):
    for model in ("A", "B"):
        for bench in ("b1", "b2"):
            write_json(tmp_path / "release" / model / f"{bench}.json", [release_question()])
    store = import_release([tmp_path / "release"])
    assert [s.name for s in store] == ["A/b1", "A/b2", "B/b1", "B/b2"]


def test_one_bad_file_among_many_fails_the_whole_import(tmp_path):
    good = write_json(tmp_path / "A" / "b1.json", [release_question()])
    bad = write_json(tmp_path / "A" / "b2.json", two_questions(_set("gold_answer", 3)))
    with pytest.raises(StoreError, match=rf"^{bad}: question 1: field 'gold_answer'"):
        import_release([good, bad])


def test_two_sources_for_one_split_are_rejected(tmp_path):
    one = write_json(tmp_path / "x" / "M" / "b.json", [release_question()])
    two = write_json(tmp_path / "y" / "M" / "b.json", [release_question()])
    with pytest.raises(StoreError, match="two source files map to the same split.*M/b"):
        import_release([one, two])


def test_missing_sources_are_named(tmp_path):
    with pytest.raises(StoreError, match="no such file or folder"):
        find_release_files([tmp_path / "absent.json"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match=r"empty: no release files"):
        find_release_files([tmp_path / "empty"])


# --------------------------------------------------------------------------- real data
def test_real_release_counts(release):
    store = import_release([release])
    assert len(store) == 8
    assert store.models == ["Qwen3-0.6B", "Qwen3-1.7B", "Qwen3-4B", "Qwen3-8B"]
    assert store.benchmarks == ["aime24", "aime25"]
    for split in store:
        assert split.num_questions == 30
        assert all(split.num_branches(q) == 128 for q in range(30))
        assert split.info.interval_tokens == 500


@pytest.mark.parametrize("model, bench", [("Qwen3-8B", "aime25"), ("Qwen3-0.6B", "aime24")])
def test_real_release_branches_equal_the_json(release, model, bench):
    path = release / model / f"{bench}.json"
    data = json.loads(path.read_text())
    split = read_release_file(path, model, bench)
    rng = random.Random(0)
    for q in [0, 29, *rng.sample(range(1, 29), 4)]:
        assert split.questions[q] == data[q]["question"]
        assert split.gold_answers[q] == data[q]["gold_answer"]
        for b in [0, 127, *rng.sample(range(1, 127), 6)]:
            probes, total, final = data[q]["each_branch"][b]
            assert split.branch_answers(q, b) == (probes, total, final)
            assert final == data[q]["final_answers_trace"][b]
