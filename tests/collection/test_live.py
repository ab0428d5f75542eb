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

import numpy as np
import pytest

from agents.registry import make_controller
from autotts_gym.data.store import NO_ANSWER, Split, SplitInfo, Store
from autotts_gym.engine.recorded import NOT_GENERATED, NotRecorded
from autotts_gym.envs.spaces import ObservationConfig
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


def _live_and_replay(tmp_path, questions_file, method, seeds=3, budget=None, kappa=0.0, name=None, controller=None):
    spec, _, beta = method.partition("@")
    controller = controller or make_controller(spec, beta=float(beta) if beta else None)
    out = tmp_path / (name or method.replace("@", "_"))
    options = LiveOptions(pool_size=POOL, budget_tokens=budget, kappa_probe=kappa)
    summary = live_run(_config(questions_file, out), controller, method, list(range(seeds)), options, out,
                       make_generator=SeededModel, make_prompts=CharPrompts, max_in_flight=4, progress=False)
    with open(out / "records.csv", newline="") as fh:
        live = {(int(r["question"]), int(r["seed"])): r for r in csv.DictReader(fh)}
    [replay] = evaluate(controller, out / "store", seeds=seeds, budget_tokens=budget, kappa_probe=kappa, workers=1)
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
        for field in (*COMPARED, "answer"):  # the recorded store keeps the live answer ids
            assert str(row[field]) == str(replay[key][field]), (method, key, field)


def test_budgets_refuse_as_in_replay(tmp_path, questions_file):
    summary, live, replay = _live_and_replay(tmp_path, questions_file, "cmc@1.0", budget=40)
    assert {r["stop_reason"] for r in live.values()} == {"budget"}
    assert all(int(r["tokens"]) <= 40 for r in live.values())
    for key, row in live.items():
        assert [str(row[f]) for f in COMPARED] == [str(replay[key][f]) for f in COMPARED]


@pytest.mark.parametrize("method", ["parallel-probe", "cmc@1.0", "dsr-lock@0.8"])
def test_kappa_probe_charges_as_in_replay(tmp_path, questions_file, method):
    summary, live, replay = _live_and_replay(tmp_path, questions_file, method, budget=60, kappa=0.5)
    for key, row in live.items():
        assert float(row["intervals"]) <= 60 / DELTA
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


def test_the_thread_requester_runs_controllers_from_async_code_and_cancels(questions_file, tmp_path):
    """LiveService's mechanism without a server: controllers in threads, batches awaited
    on the event loop; cancelling the awaiting task stops the controller's requests."""
    import asyncio
    import threading

    from collection.live.runner import ThreadRequester

    config = _config(questions_file, tmp_path / "o")
    questions = read_questions(questions_file, "q", "a")
    backend = LiveBackend(config, questions, CharPrompts(), LiveOptions(pool_size=POOL))
    model = SeededModel()
    gate = threading.Event()

    async def complete(requests):
        await asyncio.sleep(0)
        return model.generate(requests)

    async def slow(requests):
        gate.set()
        await asyncio.sleep(30)

    async def main():
        loop = asyncio.get_running_loop()
        controller = make_controller("cmc", beta=0.5)
        episodes = [backend.episode(q, 0, ThreadRequester(complete, loop)) for q in range(5)]
        results = await asyncio.gather(*(asyncio.to_thread(controller, e) for e in episodes))
        blocked = ThreadRequester(slow, loop)
        task = asyncio.ensure_future(asyncio.to_thread(controller, backend.episode(0, 1, blocked)))
        await asyncio.to_thread(gate.wait, 5)
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):  # the controller's thread ended too
            await task
        return results

    results = asyncio.run(main())
    reference = run_live(LiveBackend(config, questions, CharPrompts(), LiveOptions(pool_size=POOL)),
                         make_controller("cmc", beta=0.5), [(q, 0) for q in range(5)], SeededModel())
    assert [r.answer_text for r in results] == [r.result.answer_text for r in reference]
    assert [r.tokens for r in results] == [r.result.tokens for r in reference]


def test_an_observer_sees_every_piece_the_episode_decoded(questions_file, tmp_path):
    from collection.live.episode import LiveEpisode
    from collection.live.runner import make_pool

    config = _config(questions_file, tmp_path / "o")
    question = read_questions(questions_file, "q", "a")[1]
    pool = make_pool(config, CharPrompts(), question, POOL)
    model = SeededModel()
    events = []
    episode = LiveEpisode(pool, range(POOL), model.generate, observer=lambda *e: events.append(e))
    result = make_controller("cmc", beta=0.5)(episode)
    chunks = [e for e in events if e[0] == "chunk"]
    assert sum(len(e[3]) for e in chunks) == result.tokens == episode.live_stats.sampled_tokens
    assert len([e for e in events if e[0] == "probe"]) == result.probes
    finals = [e[4] for e in chunks if e[4]]
    assert sorted(finals) == sorted(episode.answer_text(a) for a in episode.finished_answers)
    text = episode.answer_branch_text(result.answer)
    assert text.endswith(f"\\boxed{{{result.answer_text}}}") if result.answer_text != "ERR" else "boxed" not in text


def test_servers_resume_each_episode_as_soon_as_its_requests_are_back(questions_file, tmp_path):
    """LiveServerGenerator.run_episodes (no round barrier) gives the rounds' results."""
    import asyncio

    from collection.live.endpoints import LiveServerGenerator

    class AsyncModel(SeededModel):
        run_episodes = LiveServerGenerator.run_episodes
        _drive = LiveServerGenerator._drive

        def __init__(self) -> None:
            super().__init__()
            self._loop = asyncio.new_event_loop()
            self.in_flight = self.most_in_flight = 0

        def _run(self, coroutine):
            return self._loop.run_until_complete(coroutine)

        async def _settle(self, requests):
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            await asyncio.sleep(0.001 * (sum(r.seed for r in requests) % 5))  # uneven latencies
            self.in_flight -= 1
            return self.generate(requests)

    config = _config(questions_file, tmp_path / "o")
    questions = read_questions(questions_file, "q", "a")
    episodes = [(q, s) for q in range(5) for s in range(3)]
    model = AsyncModel()
    served = run_live(LiveBackend(config, questions, CharPrompts(), LiveOptions(pool_size=POOL)),
                      make_controller("dsr-lock", beta=0.5), episodes, model, max_in_flight=6)
    rounds = run_live(LiveBackend(config, questions, CharPrompts(), LiveOptions(pool_size=POOL)),
                      make_controller("dsr-lock", beta=0.5), episodes, SeededModel(), max_in_flight=6)
    key = lambda r: (r.question, r.seed)  # noqa: E731
    assert [r.result for r in sorted(served, key=key)] == [r.result for r in sorted(rounds, key=key)]
    assert model.most_in_flight == 6 and not any(r.error for r in served)


# ------------------------------------------------------------------ PPO policies
def _digits_split(seed: int, questions: int = 6) -> Split:
    """Pools like the fake model's (Delta 8, up to 10 intervals, digit answers, some ERR)."""
    rng = random.Random(seed)
    pools = []
    for _ in range(questions):
        pool = []
        for _ in range(POOL):
            probes = rng.randrange(11)
            answers = [rng.choice("0123") if rng.random() < 0.8 else NO_ANSWER for _ in range(probes)]
            final = rng.choice("0123")
            pool.append((answers, probes * DELTA + rng.randrange(1, DELTA + 1), final))
        pools.append(pool)
    info = SplitInfo(model="digits", benchmark="train", interval_tokens=DELTA)
    return Split.from_lists(info, [f"q{i}" for i in range(questions)], [str(i % 4) for i in range(questions)], pools)


@pytest.fixture(scope="module")
def ppo_models(tmp_path_factory) -> dict:
    """Two MaskablePPO policies trained for a few hundred steps: without and with a budget."""
    pytest.importorskip("sb3_contrib")
    from agents.ppo.config import TrainConfig
    from agents.ppo.train import train

    root = tmp_path_factory.mktemp("ppo")
    Store([_digits_split(0)]).save(root / "store")
    models = {}
    for budget in (None, 40):
        config = TrainConfig(store=str(root / "store"), total_timesteps=384, cost_weight=1e-3, budget_tokens=budget,
                             max_branches=8, n_envs=2, n_steps=64, batch_size=64, n_epochs=2, net_arch=[32, 32],
                             eval_freq=0, checkpoint_freq=0, seed=1, out=str(root / f"out{budget}"))  # fmt: skip
        models[budget] = train(config).model
    return models


@pytest.mark.parametrize("budget", [None, 40])
def test_a_ppo_policy_runs_live_as_in_replay(tmp_path, questions_file, ppo_models, budget):
    """The policy sees the same observations and masks live (answer ids interned as they
    appear, the vocabulary growing; under a budget the next branch's length) as in replay."""
    method = f"ppo:{ppo_models[budget]}"
    summary, live, replay = _live_and_replay(tmp_path, questions_file, method, budget=budget, name="ppo")
    assert summary.failed == 0 and summary.episodes == 15
    assert set(live) == set(replay)
    for key, row in live.items():
        for field in (*COMPARED, "answer"):  # the recorded store keeps the live answer ids
            assert str(row[field]) == str(replay[key][field]), (budget, key, field)
    # The policy acts (opens and reads branches), so the comparison is not trivial.
    assert sum(int(r["actions"]) for r in live.values()) > 2 * len(live)


def _noisy_policy(seed: int, budget: float | None, max_branches: int = 8):
    """Logits: a random two-layer map of the observation plus noise drawn with the
    observation as the seed (stateless: live episodes run concurrently), so the policy
    opens, continues, probes, prunes and reads whole in varied ways, every choice made
    from the observation and the mask alone."""
    pytest.importorskip("torch")  # agents.ppo.policy imports it
    from agents.ppo.policy import PolicyController

    config = ObservationConfig(max_branches, depth_scale=11.0)
    rng = np.random.default_rng(seed)
    hidden = rng.normal(scale=3.0, size=(32, config.observation_size))
    head = rng.normal(size=(config.num_actions, 32))
    answer_bias = np.zeros(config.num_actions)
    answer_bias[0] = -2.5  # ANSWER less often: longer episodes

    def logits(obs: np.ndarray) -> np.ndarray:
        noise = np.random.default_rng(list(obs.view(np.uint32))).normal(size=len(head))
        return 0.3 * head @ np.tanh(hidden @ obs - 1.0) + noise + answer_bias

    return PolicyController(
        logits, config, budget_intervals_of=lambda delta: None if budget is None else budget // delta
    )


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("budget", [None, 48])
def test_a_policy_over_the_observation_runs_live_as_in_replay(tmp_path, questions_file, seed, budget):
    summary, live, replay = _live_and_replay(tmp_path, questions_file, "policy", budget=budget, name="policy",
                                             controller=_noisy_policy(seed, budget))  # fmt: skip
    assert summary.failed == 0 and summary.episodes == 15
    assert set(live) == set(replay)
    for key, row in live.items():
        for field in (*COMPARED, "answer"):
            assert str(row[field]) == str(replay[key][field]), (seed, budget, key, field)
    # The policy acts in varied ways (not only ANSWER), so the comparison is not trivial.
    assert sum(int(r["actions"]) for r in live.values()) > 2 * len(live)
