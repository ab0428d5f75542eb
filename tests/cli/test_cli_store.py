"""``autotts import`` and ``autotts info`` through the CLI entry point."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from autotts_gym.cli.main import main
from autotts_gym.data.store import Store


def write_release(path: Path, questions: int = 2, gold: object = "2") -> Path:
    """A small release file; ``gold`` lets a test make it invalid."""
    branches = [[["1", "2"], 1200, "2"], [["ERR"], 700, "3"]]
    item = {
        "question": "What is 1+1?",
        "gold_answer": gold,
        "probe_freq": 500,
        "final_answers_trace": ["2", "3"],
        "each_branch": branches,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([item] * questions))
    return path


@pytest.fixture
def source(tmp_path, request) -> Path:
    """The real release if present, else a folder of two small files."""
    try:
        return request.getfixturevalue("release")
    except pytest.skip.Exception:
        pass
    folder = tmp_path / "release"
    write_release(folder / "Tiny" / "b1.json")
    write_release(folder / "Tiny" / "b2.json", questions=3)
    return folder


def test_import_then_info(tmp_path, source, capsys):
    out = tmp_path / "store"
    assert main(["import", str(source), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    store = Store.load(out)
    assert len(printed) == len(store) + 1  # one line per split, then where it went
    for line, split in zip(printed, store):
        assert line.startswith(f"{split.name}: {split.num_questions} questions, ")
    assert printed[-1] == f"wrote {len(store)} split(s) to {out}"

    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"store: {out} ({len(store)} split(s))" in text
    assert f"models: {', '.join(store.models)}" in text
    for split in store:
        assert split.name in text and split.info.source in text

    assert main(["info", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["models"] == store.models and report["benchmarks"] == store.benchmarks
    assert report["splits"] == [json.loads(json.dumps(s.summary())) for s in store]


def test_info_on_the_real_release_json(capsys, release):
    assert main(["info", str(release / "Qwen3-8B" / "aime25.json"), "--json"]) == 0
    (split,) = json.loads(capsys.readouterr().out)["splits"]
    assert (split["model"], split["benchmark"], split["questions"], split["branches"]) == (
        "Qwen3-8B",
        "aime25",
        30,
        3840,
    )
    assert split["branches_per_question"] == [128, 128] and split["interval_tokens"] == 500
    assert split["has_probe_confidence"] is False
    # Facts section 3: about 6% of the probes of Qwen3-8B/AIME25 are ERR.
    assert 0.05 < split["no_answer_probe_rate"] < 0.07


def test_info_table_has_one_row_per_split(tmp_path, capsys):
    src = write_release(tmp_path / "M" / "b.json")
    assert main(["info", str(src)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("split "))
    assert lines[header].split()[:4] == ["split", "questions", "branches/q", "Delta"]
    row = lines[header + 1].split()
    # questions, branches, Delta, then mean/median/p90/max tokens of (1200, 700) x 2.
    assert row[:8] == ["M/b", "2", "2", "500", "950", "950", "1200", "1200"]
    assert row[-3:] == ["50.0%", "33.3%", "no"]  # one branch of two is right; 1 probe of 3 is ERR


def test_single_file_with_names(tmp_path, capsys):
    src = write_release(tmp_path / "whatever.json")
    out = tmp_path / "store"
    assert main(["import", str(src), "--out", str(out), "--model", "My-Model", "--benchmark", "quiz"]) == 0
    assert capsys.readouterr().out.startswith("My-Model/quiz: 2 questions, 2 branches each, Delta 500, ")
    assert [s.name for s in Store.load(out)] == ["My-Model/quiz"]


def test_names_need_a_single_file(tmp_path, capsys):
    one, two = write_release(tmp_path / "a.json"), write_release(tmp_path / "b.json")
    assert main(["import", str(one), str(two), "--out", str(tmp_path / "s"), "--model", "M"]) == 2
    assert "--model and --benchmark name a single SRC file" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_failed_import_writes_nothing(tmp_path, capsys):
    good = write_release(tmp_path / "src" / "M" / "b1.json")
    bad = write_release(tmp_path / "src" / "M" / "b2.json", gold=2)
    out = tmp_path / "out" / "store"
    assert main(["import", str(good), str(bad), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == (
        f"autotts import: error: {bad}: question 0, field 'gold_answer': must be a string, got int 2 "
        "(allowed: a non-empty string of at most 4096 characters, valid Unicode)"
    )
    # Neither the store nor a temporary folder exists.
    assert not out.parent.exists() or os.listdir(out.parent) == []


def test_failed_import_keeps_the_existing_store(tmp_path, capsys):
    out = tmp_path / "store"
    assert main(["import", str(write_release(tmp_path / "M" / "old.json")), "--out", str(out)]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    bad = write_release(tmp_path / "M" / "new.json", gold=None)
    assert main(["import", str(bad), "--out", str(out), "--overwrite"]) == 2
    assert f"{bad}: question 0, field 'gold_answer'" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(os.listdir(tmp_path)) == ["M", "store"]


def test_existing_store_needs_overwrite(tmp_path, capsys):
    src = write_release(tmp_path / "M" / "b.json")
    out = tmp_path / "store"
    assert main(["import", str(src), "--out", str(out)]) == 0
    assert main(["import", str(src), "--out", str(out)]) == 2
    assert f"{out} exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert main(["import", str(src), "--out", str(out), "--overwrite"]) == 0


def test_info_error_is_exit_code_2_with_message(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["info", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == f"autotts info: error: {missing}: no such store, release JSON file or folder"
