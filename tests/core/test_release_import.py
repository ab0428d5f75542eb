"""The release importer: every malformed input is a StoreError naming file, question and field."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autotts_gym.data.release import find_release_files, import_release, read_release_file
from autotts_gym.data.store import StoreError


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
    ("gold null", _set("gold_answer", None), ["'gold_answer'", "null"]),
    ("probe_freq zero", _set("probe_freq", 0), ["'probe_freq'", "integers 1..10000000"]),
    ("probe_freq negative", _set("probe_freq", -500), ["'probe_freq'", "integers 1..10000000"]),
    ("probe_freq float", _set("probe_freq", 500.0), ["'probe_freq'", "integers 1..10000000"]),
    ("probe_freq bool", _set("probe_freq", True), ["'probe_freq'", "integers 1..10000000"]),
    ("probe_freq str", _set("probe_freq", "500"), ["'probe_freq'", "integers 1..10000000"]),
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
        ["final_answers_trace[2]", "'7'"],
    ),
    (
        "branch too short",
        lambda q: q["each_branch"].__setitem__(1, [["1"], 500]),
        ["each_branch[1]", "[probe_answers"],
    ),
    ("branch too long", lambda q: q["each_branch"][1].append("x"), ["each_branch[1]", "[probe_answers"]),
    ("branch an object", lambda q: q["each_branch"].__setitem__(1, {"a": 1}), ["each_branch[1]", "[probe_answers"]),
    ("probe_answers not a list", _set_branch(0, 0, "1 2"), ["each_branch[0][0]", "probe_answers", "list"]),
    ("probe answer not str", _set_branch(0, 0, ["1", 2]), ["each_branch[0][0][1]", "'probe_answers'", "string"]),
    ("probe answer null", _set_branch(0, 0, [None]), ["each_branch[0][0][0]", "'probe_answers'", "null"]),
    ("total_tokens negative", _set_branch(2, 1, -5), ["each_branch[2][1]", "total_tokens", "negative", "-5"]),
    ("total_tokens float", _set_branch(2, 1, 300.5), ["each_branch[2][1]", "total_tokens", "integer", "300.5"]),
    ("total_tokens bool", _set_branch(2, 1, True), ["each_branch[2][1]", "total_tokens", "integer", "true"]),
    ("total_tokens str", _set_branch(2, 1, "300"), ["each_branch[2][1]", "total_tokens", "integer", "'300'"]),
    ("final_answer not str", _bad_final, ["each_branch[0][2]", "final_answer", "string"]),
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
    with pytest.raises(StoreError, match=rf"^{bad}: question 1, field 'gold_answer'"):
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


# --------------------------------------------------------------------------- bounds (issue 13)
def _probes_and_tokens(b: int, probes: list[str], total: int) -> Callable[[dict[str, Any]], None]:
    def mutate(q: dict[str, Any]) -> None:
        q["each_branch"][b] = [probes, total, q["each_branch"][b][2]]

    return mutate


# (case id, change to question 1, substrings the message must contain besides file and question)
BOUND_CASES = [
    (
        "total_tokens 10**25",
        _set_branch(2, 1, 10**25),
        ["branch 2", "'total_tokens'", "out of range", "10000000000000000000000000", "allowed: integers 0..10000000"],
    ),
    ("total_tokens 10**17", _set_branch(2, 1, 10**17), ["branch 2", "'total_tokens'", "out of range", "0..10000000"]),
    (
        "total_tokens 0 with 30 probes",
        _probes_and_tokens(1, ["3"] * 30, 0),
        ["branch 1", "'probe_answers'", "30 probe answers for total_tokens 0", "len(probe_answers) <="],
    ),
    (
        "2,000,000 probes for 15k tokens",
        _probes_and_tokens(0, ["7"] * 2_000_000, 15_000),
        ["branch 0", "'probe_answers'", "2000000 probe answers for total_tokens 15000", "allowed:"],
    ),
    (
        "far too few probes",
        _probes_and_tokens(0, ["7"], 40_000),
        ["branch 0", "'probe_answers'", "1 probe answers for total_tokens 40000", "allowed:"],
    ),
    ("probe_freq 10**30", _set("probe_freq", 10**30), ["field 'probe_freq'", "out of range", "1..10000000"]),
    ("gold empty", _set("gold_answer", ""), ["field 'gold_answer'", "is empty", "non-empty string"]),
    ("question empty", _set("question", ""), ["field 'question'", "is empty"]),
    ("gold too long", _set("gold_answer", "9" * 5000), ["field 'gold_answer'", "5000 characters", "at most 4096"]),
    ("probe answer empty", _set_branch(0, 0, ["1", ""]), ["branch 0", "'probe_answers'[1]", "is empty"]),
    ("final answer too long", lambda q: [q["each_branch"][2].__setitem__(2, "x" * 4097),
                                         q["final_answers_trace"].__setitem__(2, "x" * 4097)],
     ["branch 2", "'final_answer'", "4097 characters"]),
    ("total_tokens float 1200.0", _set_branch(0, 1, 1200.0), ["branch 0", "'total_tokens'", "got float 1200.0"]),
    ("total_tokens bool false", _set_branch(2, 1, False), ["branch 2", "'total_tokens'", "got bool false"]),
]


@pytest.mark.parametrize("mutate, expected", [c[1:] for c in BOUND_CASES], ids=[c[0] for c in BOUND_CASES])
def test_out_of_bounds_values_name_file_question_branch_and_field(tmp_path, mutate, expected):
    path = write_json(tmp_path / "M" / "bench.json", two_questions(mutate))
    with pytest.raises(StoreError) as err:
        read_release_file(path, "M", "bench")
    message = str(err.value)
    assert message.startswith(f"{path}: question 1, ")
    for part in expected:
        assert part in message, message
    assert "\n" not in message and len(message) < 400


def _raw_file(tmp_path: Path, edit: Callable[[str], str]) -> Path:
    """A release file whose JSON text is edited (for what json.dumps cannot write)."""
    path = tmp_path / "M" / "bench.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(edit(json.dumps([release_question(), release_question("What is 2+0?")])))
    return path


def _nested(text: str) -> str:
    # Question 1, branch 2's probe_answers [] become an array nested 100,000 deep.
    head, sep, tail = text.rpartition("[[], 300")
    return head + "[" + "[" * 100_000 + "]" * 100_000 + ", 300" + tail


def _duplicate_gold(text: str) -> str:
    head, sep, tail = text.rpartition('"gold_answer": "2"')
    return head + '"gold_answer": "2", "gold_answer": "3"' + tail


def _surrogate_gold(text: str) -> str:
    head, sep, tail = text.rpartition('"gold_answer": "2"')
    return head + '"gold_answer": "\\ud800"' + tail


def _huge_digits(text: str) -> str:
    head, sep, tail = text.rpartition("1200")
    return head + "9" * 5000 + tail


def _bad_utf8(text: str) -> str:
    return text  # replaced at the byte level in the test


RAW_CASES = [
    ("nested 100,000 deep", _nested, ["question 1, branch 2", "each_branch[2][0]", "deeper than 64 levels"]),
    ("duplicate gold_answer key", _duplicate_gold, ["question 1, field 'gold_answer'", "appears twice"]),
    ("lone surrogate in gold_answer", _surrogate_gold, ["question 1, field 'gold_answer'", "lone surrogate"]),
    ("5000-digit integer", _huge_digits, ["question 1, branch 0", "'total_tokens'", "5000 digits"]),
]


@pytest.mark.parametrize("edit, expected", [c[1:] for c in RAW_CASES], ids=[c[0] for c in RAW_CASES])
def test_malformed_json_names_file_question_and_field(tmp_path, edit, expected):
    path = _raw_file(tmp_path, edit)
    with pytest.raises(StoreError) as err:
        read_release_file(path, "M", "bench")
    message = str(err.value)
    assert message.startswith(f"{path}: question 1")
    for part in expected:
        assert part in message, message


def test_invalid_utf8_names_question_and_field(tmp_path):
    path = _raw_file(tmp_path, lambda t: t)
    raw = path.read_bytes()
    at = raw.rindex(b'"question": "What is 2+0?"') + len(b'"question": "What')
    path.write_bytes(raw[:at] + b"\xff" + raw[at:])
    with pytest.raises(StoreError, match=r"question 1, field 'question': not UTF-8 text: byte 0xff") as err:
        read_release_file(path, "M", "bench")
    assert str(err.value).startswith(f"{path}: ")


def test_probe_freq_out_of_range_is_refused_before_evaluation(tmp_path):
    from autotts_gym.data.sources import load_store

    path = write_json(tmp_path / "M" / "bench.json", two_questions(_set("probe_freq", 10**30)))
    with pytest.raises(StoreError, match=r"question 1, field 'probe_freq': is out of range"):
        load_store(path)


CLI_CASES = {
    "total_tokens 10**25": lambda p: write_json(p, two_questions(_set_branch(2, 1, 10**25))),
    "nested 100,000 deep": lambda p: _raw_file(p.parents[2], _nested),
    "lone surrogate": lambda p: _raw_file(p.parents[2], _surrogate_gold),
    "probe_freq 10**30": lambda p: write_json(p, two_questions(_set("probe_freq", 10**30))),
    "duplicate key": lambda p: _raw_file(p.parents[2], _duplicate_gold),
}


@pytest.mark.parametrize("make", list(CLI_CASES.values()), ids=list(CLI_CASES))
def test_cli_import_prints_one_line_and_no_traceback(tmp_path, make):
    import os
    import subprocess
    import sys

    path = make(tmp_path / "M" / "bench.json")
    out = tmp_path / "store"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    run = subprocess.run(
        [sys.executable, "-m", "autotts_gym.cli", "import", str(path), "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"autotts import: error: {path}: question 1")
    assert "field" in lines[0]
    assert not out.exists()


def test_every_real_release_file_is_within_the_bounds(release):
    """Each real file imports; its figures (docs/store-format.md) sit inside the bounds, an interval of margin or more."""
    from autotts_gym.data import validation as v

    files = sorted(release.glob("*/*.json"))
    assert len(files) == 8
    for path in files:
        split = read_release_file(path, path.parent.name, path.stem)
        totals = split.total_tokens
        counts = np.diff(split.probe_offsets)
        excess = counts - totals / split.info.interval_tokens
        assert totals.max() <= v.MAX_TOTAL_TOKENS // 100
        assert excess.max() <= v.PROBES_ABOVE - 1 and excess.min() >= -v.PROBES_BELOW + 1
        longest = max(len(a) for vocab in split.vocabs for a in vocab)
        assert longest <= v.MAX_ANSWER_CHARS // 16
        assert max(map(len, split.questions)) <= v.MAX_QUESTION_CHARS // 100
