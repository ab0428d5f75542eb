"""Fast tests of live mode with a fake model: a live run replays to the same records.

The fake model is character-level (token id = code point) and draws from each request's
seed, like vLLM's seeded sampling: a chunk either fills its interval with dots or stops
with ``\\boxed{d}``; a probe answers a digit drawn from its seed. So branches end at
varied depths and answers agree and differ, which makes the controllers act differently.
The real-vLLM version of these checks is ``tests/collection/test_live_vllm.py``.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from agents.registry import make_controller
from autotts_gym.data.store import Store
from autotts_gym.engine.recorded import NOT_GENERATED, NotRecorded
from autotts_gym.evaluation.evaluate import evaluate
from collection.config import CollectConfig
from collection.generation import Completion, Request
from collection.live.run import live_run
from collection.live.runner import LiveBackend, LiveOptions, run_live
from collection.questions import read_questions

SUFFIX = "|\\boxed{"
POOL, DELTA = 16, 8
COMPARED = ("answer_text", "correct", "tokens", "sequential_tokens", "intervals", "branches_opened", "probes",
            "actions", "stop_reason")  # fmt: skip


class CharPrompts:
    """Character-level tokenizer: token id = code point."""

    def __init__(self, config: CollectConfig | None = None) -> None:
        self.probe_suffix = tuple(ord(c) for c in SUFFIX)

    def prompt_ids(self, question) -> tuple[int, ...]:
        return tuple(ord(c) for c in f"Q{question.index}:{question.text}>")

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids)


class SeededModel:
    """A fake generator whose output is a function of the request (seed, prompt)."""

    def __init__(self, config: CollectConfig | None = None) -> None:
        self.max_model_len = None
        self.requests: list[Request] = []
        self.calls = 0

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        self.calls += 1
        self.requests.extend(requests)
        return [self._one(r) for r in requests]

    def _one(self, r: Request) -> Completion:
        rng = random.Random(r.seed)
        if r.temperature == 0.0:  # a probe
            text = f"{rng.randrange(4)}}}zz"[: r.max_tokens]
            return Completion(tuple(map(ord, text)), False, tuple(-0.1 for _ in text), len(r.prompt) - 1)
        if rng.random() < 0.3:
            text = "." * rng.randrange(3) + f"\\boxed{{{rng.randrange(4)}}}"
            if len(text) <= r.max_tokens:
                return Completion(tuple(map(ord, text)), True, (), len(r.prompt) - 1)
        return Completion(tuple(map(ord, "." * r.max_tokens)), False, (), len(r.prompt) - 1)

    def describe(self) -> dict:
        return {"mode": "fake"}

    def close(self) -> None:
        pass


@pytest.fixture
def questions_file(tmp_path) -> Path:
    path = tmp_path / "q.jsonl"
    path.write_text("".join(f'{{"q": "sum {i}", "a": "{i % 4}"}}\n' for i in range(5)))
    return path


def _config(questions: Path, out: Path) -> CollectConfig:
    return CollectConfig(model="fake", questions=str(questions), out=str(out), question_field="q", answer_field="a",
                         trajectories=POOL, interval_tokens=DELTA, max_tokens=80, probe_tokens=4, seed=3,
                         use_math_verify=False, progress=False)  # fmt: skip


def _live_and_replay(tmp_path, questions_file, method, seeds=3, budget=None):
    spec, _, beta = method.partition("@")
    controller = make_controller(spec, beta=float(beta) if beta else None)
    out = tmp_path / method.replace("@", "_")
    options = LiveOptions(pool_size=POOL, budget_tokens=budget)
    summary = live_run(_config(questions_file, out), controller, method, list(range(seeds)), options, out,
                       make_generator=SeededModel, make_prompts=CharPrompts, max_in_flight=4, progress=False)
    with open(out / "records.csv", newline="") as fh:
        live = {(int(r["question"]), int(r["seed"])): r for r in csv.DictReader(fh)}
    [replay] = evaluate(controller, out / "store", seeds=seeds, budget_tokens=budget, workers=1)
    return summary, live, {(r["question"], r["seed"]): r for r in replay.rows()}


@pytest.mark.parametrize(
    "method",
    ["sc", "asc", "esc", "parallel-probe", "cmc@0.2", "cmc@0.8", "dsr-lock@0.2", "dsr-lock@0.8", "dsr@0.5"],
)
def test_a_live_run_replays_to_the_same_records(tmp_path, questions_file, method):
    summary, live, replay = _live_and_replay(tmp_path, questions_file, method)
    assert summary.failed == 0 and summary.episodes == 15
    assert set(live) == set(replay)
    for key, row in live.items():
        for field in COMPARED:
            assert str(row[field]) == str(replay[key][field]), (method, key, field)


def test_budgets_refuse_as_in_replay(tmp_path, questions_file):
    summary, live, replay = _live_and_replay(tmp_path, questions_file, "cmc@1.0", budget=40)
    assert {r["stop_reason"] for r in live.values()} == {"budget"}
    assert all(int(r["tokens"]) <= 40 for r in live.values())
    for key, row in live.items():
        assert [str(row[f]) for f in COMPARED] == [str(replay[key][f]) for f in COMPARED]


def test_replaying_another_controller_stops_at_the_first_missing_piece(tmp_path, questions_file):
    _live_and_replay(tmp_path, questions_file, "cmc@0.2", seeds=1)
    store = Store.load(tmp_path / "cmc_0.2" / "store")
    assert NOT_GENERATED in store.splits[0].vocabs[0]
    with pytest.raises(Exception, match="never generated") as err:
        evaluate(make_controller("sc"), store, seeds=1, workers=1)
    assert "READ_WHOLE" in str(err.value)
    with pytest.raises(Exception, match="seed 1: NotRecorded"):  # seed 1 opens branches in another order
        evaluate(make_controller("cmc", beta=0.2), store, seeds=[1], workers=1)
    assert issubclass(NotRecorded, RuntimeError)


def test_requests_are_the_collectors_and_batched(tmp_path, questions_file):
    """Chunk k of pool branch b is seeded derive_seed(seed, q, b, k - 1), as in collection;
    the episodes in flight share one generate call per round."""
    from collection.generation import derive_seed

    config = _config(questions_file, tmp_path / "o")
    questions = read_questions(questions_file, "q", "a")
    model = SeededModel()
    backend = LiveBackend(config, questions, CharPrompts(), LiveOptions(pool_size=POOL))
    records = run_live(backend, make_controller("parallel-probe"), [(q, 0) for q in range(5)], model, max_in_flight=5)
    assert len(records) == 5 and not any(r.error for r in records)
    prompt_len = {q: len(CharPrompts().prompt_ids(questions[q])) for q in range(5)}
    for r in model.requests:
        q, b = divmod(r.route, POOL)
        done = len(r.prompt) - prompt_len[q]
        if r.temperature > 0:
            assert r.seed == derive_seed(3, q, b, done // DELTA)
    rounds = max(rec.stats.rounds for rec in records)
    assert model.calls <= rounds + 1  # every episode waits in the same rounds
    for rec in records:  # nothing shared between questions: the engine charged what was sampled
        assert rec.result.tokens == rec.stats.sampled_tokens


def test_a_failed_request_fails_only_its_episode(tmp_path, questions_file):
    class Flaky(SeededModel):
        def generate_settled(self, requests):
            outs = self.generate(requests)
            return [RuntimeError("endpoint down") if r.route // POOL == 2 else c for r, c in zip(requests, outs)]

    config = _config(questions_file, tmp_path / "o")
    backend = LiveBackend(config, read_questions(questions_file, "q", "a"), CharPrompts(), LiveOptions(pool_size=POOL))
    records = run_live(backend, make_controller("cmc", beta=0.5), [(q, 0) for q in range(5)], Flaky())
    failed = {r.question: r.error for r in records if r.error}
    assert failed == {2: "RuntimeError: endpoint down"}


def test_a_killed_run_resumes_question_by_question(tmp_path, questions_file):
    class Killed(SeededModel):
        def generate(self, requests):
            if self.calls >= 70:
                raise KeyboardInterrupt
            return super().generate(requests)

    controller = make_controller("cmc", beta=0.5)
    out = tmp_path / "run"
    args = (controller, "cmc@0.5", [0, 1], LiveOptions(pool_size=POOL), out)
    with pytest.raises(KeyboardInterrupt):
        live_run(_config(questions_file, out), *args, make_generator=Killed, make_prompts=CharPrompts,
                 max_in_flight=2, progress=False)
    with open(out / "records.csv", newline="") as fh:
        first = list(csv.DictReader(fh))
    done = {r["question"] for r in first}
    assert 0 < len(done) < 5 and len(first) == 2 * len(done)
    model = SeededModel()
    summary = live_run(_config(questions_file, out), *args, make_generator=lambda c: model, make_prompts=CharPrompts,
                       max_in_flight=2, progress=False)
    assert summary.episodes == 10
    fresh = tmp_path / "fresh"
    again = live_run(_config(questions_file, fresh), controller, "cmc@0.5", [0, 1], LiveOptions(pool_size=POOL), fresh,
                     make_generator=SeededModel, make_prompts=CharPrompts, progress=False)
    assert again.evaluation.tokens == summary.evaluation.tokens
    assert not any(int(r.route) // POOL in {int(q) for q in done} for r in model.requests)
