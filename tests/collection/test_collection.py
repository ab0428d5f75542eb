"""Fast tests of the collection pipeline: answers, question files, the step loop and resume.

A fake backend stands in for vLLM: a character-level "tokenizer" and a generator whose
trajectories are fixed texts, so every count below can be worked out by hand.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from autotts_gym.data.store import NO_ANSWER, Store, StoreError
from collection.answers import AnswerCanonicalizer, extract_boxed, normalize_answer
from collection.collect import add_arguments, collect, config_from_args, parse_engine_args
from collection.config import CollectConfig, ConfigError
from collection.generation import Completion, Request, derive_seed
from collection.questions import QuestionFileError, read_questions
from collection.trajectories import read_probe

SUFFIX = "|\\boxed{"


# ---------------------------------------------------------------- answers
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so the answer is \\boxed{42}.", "42"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("first \\boxed{1} then \\boxed{\\sqrt{\\frac{a}{b}}} end", "\\sqrt{\\frac{a}{b}}"),
        ("\\fbox{7}", "7"),
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
        ("\\boxed{12} and an unclosed \\boxed{3", "12"),
        ("no box here", None),
        ("\\boxed{unclosed {", None),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$042$", "42"),
        ("1,000", "1000"),
        ("\\dfrac{1}{2}", "\\frac{1}{2}"),
        ("\\left( 1, 2 \\right)", "( 1, 2 )"),
        ("\\text{5 cm}.", "5 cm"),
        ("90^\\circ", "90"),
        ("   ", NO_ANSWER),
    ],
)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


def test_canonicalizer_without_math_verify_compares_normalised_strings():
    canon = AnswerCanonicalizer("\\frac{1}{2}", use_math_verify=False)
    assert canon("\\dfrac{1}{2}") == "\\frac{1}{2}"
    assert canon("0.5") == "0.5"
    assert canon(None) == NO_ANSWER
    assert AnswerCanonicalizer("33", use_math_verify=False)("$033$") == "33"


def test_canonicalizer_maps_equivalent_answers_to_the_gold_string():
    pytest.importorskip("math_verify", reason="math-verify is part of the collect extra")
    canon = AnswerCanonicalizer("\\frac{1}{2}")
    assert canon("0.5") == "\\frac{1}{2}"
    assert canon("\\dfrac{1}{2}") == "\\frac{1}{2}"
    assert canon("0.25") == "0.25"
    assert canon(None) == NO_ANSWER
    assert AnswerCanonicalizer("33")("33.0") == "33"


# ---------------------------------------------------------------- questions
def _write_question_files(folder: Path) -> dict[str, Path]:
    rows = [{"problem": "What is 1+1?", "solution": 2}, {"problem": "What is 2+3?", "solution": "5"}]
    paths = {}
    paths["jsonl"] = folder / "q.jsonl"
    paths["jsonl"].write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    paths["json"] = folder / "q.json"
    paths["json"].write_text(json.dumps(rows))
    paths["csv"] = folder / "q.csv"
    with open(paths["csv"], "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["problem", "solution"])
        writer.writeheader()
        writer.writerows(rows)
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths["parquet"] = folder / "q.parquet"
    pq.write_table(pa.table({"problem": [r["problem"] for r in rows], "solution": [2.0, 5.0]}), paths["parquet"])
    return paths


@pytest.mark.parametrize("kind", ["jsonl", "json", "csv", "parquet"])
def test_read_questions_every_format(tmp_path, kind):
    path = _write_question_files(tmp_path)[kind]
    qs = read_questions(path, question_field="problem", answer_field="solution")
    assert [(q.index, q.text, q.gold) for q in qs] == [(0, "What is 1+1?", "2"), (1, "What is 2+3?", "5")]
    assert len(read_questions(path, "problem", "solution", limit=1)) == 1


def test_read_questions_errors_name_file_record_and_field(tmp_path):
    path = _write_question_files(tmp_path)["jsonl"]
    with pytest.raises(QuestionFileError, match=r"q\.jsonl: record 0 has no field 'answer'"):
        read_questions(path, question_field="problem")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x", "answer": "1"}\n{oops\n')
    with pytest.raises(QuestionFileError, match=r"bad\.jsonl: line 2 is not valid JSON"):
        read_questions(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"question": "", "answer": "1"}\n')
    with pytest.raises(QuestionFileError, match=r"record 0, field 'question' is empty"):
        read_questions(empty)
    text_file = tmp_path / "q.txt"
    text_file.write_text("x")
    with pytest.raises(QuestionFileError, match="unknown question file type"):
        read_questions(text_file)


# ---------------------------------------------------------------- the fake backend
class CharPrompts:
    """Character-level tokenizer: token id = code point."""

    def __init__(self, config: CollectConfig) -> None:
        self.probe_suffix = tuple(ord(c) for c in SUFFIX)

    def prompt_ids(self, question) -> tuple[int, ...]:
        return tuple(ord(c) for c in f"Q{question.index}:{question.text}>")

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids)


def trajectory_text(question: int, n: int) -> str:
    """Trajectory n of a question: 7 + 5 n filler characters, then its final box."""
    return "." * (7 + 5 * n) + f"\\boxed{{{question + n % 2}}}"


class FakeGenerator:
    """Serves the fixed trajectories chunk by chunk and answers probes with the depth."""

    def __init__(self, config: CollectConfig, fail_after_steps: int | None = None) -> None:
        self.config = config
        self.fail_after_steps = fail_after_steps
        self.steps = 0
        self.chunk_requests: list[tuple[int, int, int]] = []  # (question, trajectory, start offset)
        self.max_model_len = None

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        if self.fail_after_steps is not None and self.steps >= self.fail_after_steps:
            raise KeyboardInterrupt("simulated kill")
        self.steps += 1
        return [self._one(r) for r in requests]

    def _one(self, r: Request) -> Completion:
        text = "".join(chr(i) for i in r.prompt)
        q, n = divmod(r.route, self.config.trajectories)
        head = f"Q{q}:"
        body = text[text.index(">", len(head)) + 1 :]
        if text.endswith(SUFFIX):  # a probe: answer the current depth, then babble
            done = len(body) - len(SUFFIX)
            answer = f"{done // self.config.interval_tokens}}}zz"[: r.max_tokens]
            logprobs = tuple(-0.5 * (i + 1) for i in range(len(answer)))
            return Completion(tuple(ord(c) for c in answer), False, logprobs, len(r.prompt) // 2)
        assert r.seed == derive_seed(self.config.seed, q, n, len(body) // self.config.interval_tokens)
        self.chunk_requests.append((q, n, len(body)))
        full = trajectory_text(q, n)
        piece = full[len(body) : len(body) + r.max_tokens]
        stopped = len(body) + len(piece) >= len(full)
        return Completion(tuple(ord(c) for c in piece), stopped, (), len(r.prompt) // 2)

    def describe(self) -> dict:
        return {"mode": "fake"}

    def close(self) -> None:
        pass


def _config(tmp_path: Path, **overrides) -> CollectConfig:
    questions = tmp_path / "bench.jsonl"
    if not questions.exists():
        questions.write_text("\n".join(json.dumps({"question": f"q{i}", "answer": str(i)}) for i in range(3)) + "\n")
    settings = dict(
        model="fake/model-x", questions=str(questions), out=str(tmp_path / "store"), trajectories=4,
        interval_tokens=5, probe_tokens=6, max_tokens=30, progress=False, trajectories_per_shard=2,
        batch_trajectories=3, use_math_verify=False,
    )
    settings.update(overrides)
    return CollectConfig(**settings)


def test_read_probe_confidence_stops_at_the_closing_brace():
    decode = CharPrompts.decode.__get__(object())
    tokens = [ord(c) for c in "1{2}}zz"]
    answer, conf = read_probe("\\boxed{", tokens, [-1.0, -2.0, -3.0, -4.0, -5.0, -9.0, -9.0], decode)
    assert answer == "1{2}"
    assert conf == pytest.approx(-3.0)
    answer, conf = read_probe("\\boxed{", [ord("7")], [-2.0], decode)
    assert answer is None and conf == pytest.approx(-2.0)
    assert read_probe("\\boxed{", [], [], decode)[0] is None


def test_collection_with_fake_backend_builds_the_expected_store(tmp_path):
    config = _config(tmp_path)
    gens = []

    def make(cfg):
        gens.append(FakeGenerator(cfg))
        return gens[0]

    store = collect(config, make_generator=make, make_prompts=CharPrompts)
    split = store.splits[0]
    assert split.name == "model-x/bench"
    assert split.info.interval_tokens == 5
    for q in range(3):
        assert split.num_branches(q) == 4
        for n in range(4):
            probes, total, final = split.branch_answers(q, n)
            length = len(trajectory_text(q, n))
            assert total == min(length, 30)
            # A probe at every full interval the trajectory had not finished by; its
            # answer is the depth in intervals (the fake model says so).
            expected_probes = [str(k) for k in range(1, min(length - 1, 30) // 5 + 1)]
            assert probes == expected_probes
            assert final == (str(q + n % 2) if length <= 30 else NO_ANSWER)
    conf = split.question(0).probe_confidence
    assert conf[0][1] == pytest.approx(-0.75)  # mean over "1" and "}" (-0.5, -1.0), up to the brace
    # No trajectory was decoded twice: every (question, trajectory, offset) chunk asked once.
    chunks = gens[0].chunk_requests
    assert len(chunks) == len(set(chunks))
    recorded = split.info.extra["collection"]
    assert recorded["trajectories"] == 4 and recorded["interval_tokens"] == 5
    assert split.info.sampling["temperature"] == 0.7 and split.info.sampling["probe_suffix"]
    run = split.info.extra["runs"][0]
    assert run["prompt_tokens_cached_measured"] > 0
    assert 0 < run["prompt_tokens_reusable_by_structure"] <= run["prompt_tokens"]


def test_killed_run_resumes_without_losing_or_repeating_trajectories(tmp_path):
    config = _config(tmp_path)
    first = FakeGenerator(config, fail_after_steps=6)
    with pytest.raises(KeyboardInterrupt):
        collect(config, make_generator=lambda cfg: first, make_prompts=CharPrompts)
    shard_dir = config.shard_dir / "shards"
    written = {p.name: p.read_bytes() for p in shard_dir.glob("*.json")}
    assert 0 < len(written) < 6, "the simulated kill should land between shards"
    second = FakeGenerator(config)
    store = collect(config, make_generator=lambda cfg: second, make_prompts=CharPrompts)
    # Shards finished before the kill were kept as they were, not collected again.
    assert {p.name: p.read_bytes() for p in shard_dir.glob("*.json") if p.name in written} == written
    done_before = {(int(name[1:7]), int(name[9:14])) for name in written}
    redone = {(q, n - n % 2) for q, n, _ in second.chunk_requests}
    assert not redone & done_before
    # And the result equals an uninterrupted run.
    clean = collect(_config(tmp_path, out=str(tmp_path / "clean")), make_generator=FakeGenerator, make_prompts=CharPrompts)
    a, b = store.splits[0], clean.splits[0]
    for q in range(3):
        assert [a.branch_answers(q, n) for n in range(4)] == [b.branch_answers(q, n) for n in range(4)]


def test_resume_with_other_settings_is_refused(tmp_path):
    collect(_config(tmp_path), make_generator=FakeGenerator, make_prompts=CharPrompts)
    with pytest.raises(ConfigError, match="temperature: 0.7 then, 0.9 now"):
        collect(_config(tmp_path, temperature=0.9, overwrite=True), make_generator=FakeGenerator, make_prompts=CharPrompts)
    with pytest.raises(FileExistsError, match="--overwrite"):
        collect(_config(tmp_path), make_generator=FakeGenerator, make_prompts=CharPrompts)


def test_a_prompt_longer_than_the_context_is_refused_before_decoding(tmp_path):
    generator = FakeGenerator(_config(tmp_path))
    with pytest.raises(ValueError, match="question 0: its prompt has 6 tokens.*max_model_len 12"):
        collect(_config(tmp_path, max_model_len=12), make_generator=lambda cfg: generator, make_prompts=CharPrompts)
    assert generator.steps == 0


def test_an_edited_question_file_does_not_resume_an_old_run(tmp_path):
    collect(_config(tmp_path), make_generator=FakeGenerator, make_prompts=CharPrompts)
    with open(tmp_path / "bench.jsonl", "a") as fh:
        fh.write(json.dumps({"question": "q3", "answer": "3"}) + "\n")
    with pytest.raises(ConfigError, match="questions:"):
        collect(_config(tmp_path, overwrite=True), make_generator=FakeGenerator, make_prompts=CharPrompts)


def test_missing_packages_are_reported_before_any_work(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "math_verify" else real(name))
    with pytest.raises(ValueError, match="collection needs math_verify.*--no-math-verify"):
        collect(_config(tmp_path, use_math_verify=True), make_generator=FakeGenerator, make_prompts=CharPrompts)
    assert not (tmp_path / "store.work").exists()


def test_completed_run_rebuilds_the_store_without_a_backend(tmp_path):
    collect(_config(tmp_path), make_generator=FakeGenerator, make_prompts=CharPrompts)

    def no_backend(cfg):
        raise AssertionError("nothing is left to collect")

    store = collect(_config(tmp_path, overwrite=True), make_generator=no_backend, make_prompts=CharPrompts)
    assert Store.load(store.path).splits[0].num_questions == 3


def test_flags_override_the_config_file(tmp_path):
    cfg_file = tmp_path / "run.toml"
    cfg_file.write_text('model = "m"\nquestions = "q.jsonl"\nout = "o"\ntrajectories = 8\ntemperature = 0.6\n'
                        '[engine_args]\nblock_size = 32\n')
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_args(parser.parse_args(["--config", str(cfg_file), "-n", "16", "--engine-arg", "enforce_eager=true"]))
    assert (config.trajectories, config.temperature) == (16, 0.6)
    assert config.engine_args == {"block_size": 32, "enforce_eager": True}
    assert parse_engine_args(["distributed_executor_backend=uni"]) == {"distributed_executor_backend": "uni"}
    with pytest.raises(ConfigError, match="unknown setting 'trajectorys'"):
        cfg_file.write_text("trajectorys = 3\n")
        config_from_args(parser.parse_args(["--config", str(cfg_file)]))
    with pytest.raises(ConfigError, match="'trajectories' must be at least 1"):
        CollectConfig(model="m", questions="q", out="o", trajectories=0).validate()


def test_probe_confidence_survives_the_store_round_trip(tmp_path):
    store = collect(_config(tmp_path), make_generator=FakeGenerator, make_prompts=CharPrompts)
    loaded = Store.load(store.path).splits[0]
    conf = loaded.question(1).probe_confidence
    assert conf is not None
    assert all(math.isnan(c[0]) for c in conf)  # depth 0 has no probe
    assert conf[3][1] == pytest.approx(-0.75)


# ---------------------------------------------------------------- bounds (issue 13)
def test_the_collectors_store_passes_the_bounds_with_room(tmp_path):
    """The writer's store is checked on save and on load; its probe counts sit in [T/Delta - 1, T/Delta]."""
    from autotts_gym.data.validation import check_split

    store = collect(_config(tmp_path, max_tokens=33), make_generator=FakeGenerator, make_prompts=CharPrompts)
    split = Store.load(store.path).splits[0]
    check_split(split)
    counts = np.diff(split.probe_offsets)
    excess = counts - split.total_tokens / split.info.interval_tokens
    assert excess.max() <= 0 and excess.min() >= -1


def test_overlong_answers_become_err_so_the_store_stays_in_bounds():
    from autotts_gym.data.validation import MAX_ANSWER_CHARS

    canon = AnswerCanonicalizer("5", use_math_verify=False)
    assert canon("1" * MAX_ANSWER_CHARS) == "1" * MAX_ANSWER_CHARS
    assert canon("1" * (MAX_ANSWER_CHARS + 1)) == NO_ANSWER


def test_config_caps_follow_the_store_bounds():
    with pytest.raises(ConfigError, match="'max_tokens' must be at most 10000000"):
        CollectConfig(model="m", questions="q", out="o", max_tokens=10**8).validate()
    with pytest.raises(ConfigError, match="'interval_tokens' must be at most 10000000"):
        CollectConfig(model="m", questions="q", out="o", interval_tokens=10**30).validate()


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("dup.jsonl", b'{"question": "x", "answer": "1"}\n{"question": "y", "answer": "2", "answer": "3"}\n',
         r"dup\.jsonl: line 2 \(record 1\), field answer: key 'answer' appears twice"),
        ("dup.json", b'[{"question": "x", "answer": "1", "question": "z"}]',
         r"dup\.json: record 0, field question: key 'question' appears twice"),
        ("sur.jsonl", b'{"question": "x", "answer": "\\udc00"}\n',
         r"sur\.jsonl: line 1 \(record 0\), field answer: holds a lone surrogate"),
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, r"deep\.json: record 0, field \[0\]\[0\].*deeper than 64 levels"),
        ("long.jsonl", b'{"question": "x", "answer": "' + b"7" * 5000 + b'"}\n',
         r"long\.jsonl: record 0, field 'answer': has 5000 characters \(allowed: at most 4096"),
        ("bad.csv", b"question,answer\ncaf\xe9,1\n", r"bad\.csv: not UTF-8 text"),
        ("bad.jsonl", b'{"question": "caf\xe9", "answer": "1"}\n', r"bad\.jsonl: not UTF-8 text"),
    ],
    ids=["jsonl duplicate key", "json duplicate key", "lone surrogate", "deep", "long gold", "csv latin-1", "jsonl latin-1"],
)
def test_question_files_are_read_strictly(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(QuestionFileError, match=expected):
        read_questions(path)


def test_a_corrupted_shard_names_file_question_branch_and_field(tmp_path):
    config = _config(tmp_path)
    collect(config, make_generator=FakeGenerator, make_prompts=CharPrompts)
    shard = Path(f"{config.out}.work") / "shards" / "q000001-t00002.json"
    payload = json.loads(shard.read_text())
    payload["trajectories"][1]["total_tokens"] = 10**25
    shard.write_text(json.dumps(payload))
    with pytest.raises(StoreError, match=r"q000001-t00002\.json: question 1, branch 3, field 'total_tokens': is out of "
                                         r"range: 10+ \(allowed: integers 0\.\.10000000\)"):
        collect(_config(tmp_path, overwrite=True), make_generator=FakeGenerator, make_prompts=CharPrompts)
    shard.write_text(shard.read_text().replace('"stopped"', '"stopped": true, "stopped"', 1))
    with pytest.raises(StoreError, match=r"trajectory 0, field stopped: key 'stopped' appears twice.*delete the shard"):
        collect(_config(tmp_path, overwrite=True), make_generator=FakeGenerator, make_prompts=CharPrompts)
