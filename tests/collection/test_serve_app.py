"""``autotts serve``'s application in this process over a fake upstream (fast; no vLLM, no
sockets): the answer, streaming, backpressure, an upstream that is down then back, auth,
limits and metrics. The fake model is test_live.py's seeded character-level one. The real
stack (vLLM, uvicorn, the openai client, disconnects) is tested in test_serve.py (marker
``serve``)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from agents.registry import make_controller
from collection.config import CollectConfig
from collection.serve.app import create_app
from collection.serve.settings import ServeSettings
from collection.serve.upstream import ServeEndpoints, UpstreamError
from tests.collection.test_live import CharPrompts, SeededModel

KEY = "k"
HEADERS = {"Authorization": f"Bearer {KEY}"}
ASK = {"model": "fake", "messages": [{"role": "user", "content": "What is 2+3?"}], "seed": 1}


class FakeEndpoints(ServeEndpoints):
    """The upstream: the seeded fake model, a few milliseconds per request; ``alive`` False
    makes every request and check fail as a refused connection."""

    alive = True

    async def refresh(self, min_interval: float = 0.0) -> bool:
        self._set_up(self.alive, "" if self.alive else "ConnectionRefusedError")
        return self.up

    async def _send(self, r):
        await asyncio.sleep(0.005)
        if not FakeEndpoints.alive:
            raise UpstreamError("connection", "127.0.0.1:1: connection refused")
        return SeededModel()._one(r)


def app(**extra):
    FakeEndpoints.alive = True
    config = CollectConfig(model="fake-model", served_model_name="fake", endpoints=["http://127.0.0.1:1/v1"],
                           interval_tokens=16, max_tokens=128, probe_tokens=4, use_math_verify=False)  # fmt: skip
    settings = ServeSettings(config=config, method="cmc@0.5", allowed_methods=("sc", "cmc"), pool_size=16,
                             api_key=KEY, health_interval=0.0, **extra)  # fmt: skip
    return create_app(settings, lambda m, b: make_controller(m, beta=b), "cmc", 0.5, prompts=CharPrompts(),
                      make_endpoints=FakeEndpoints)  # fmt: skip


def run(application, scenario):
    async def main():
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
            try:
                return await scenario(client)
            finally:
                await application.state.serve.service.aclose()

    return asyncio.run(main())


def test_an_answer_its_usage_and_the_metrics():
    async def scenario(client):
        reply = (await client.post("/v1/chat/completions", json=ASK, headers=HEADERS)).json()
        again = (await client.post("/v1/chat/completions", json=ASK, headers=HEADERS)).json()
        metrics = (await client.get("/metrics", headers=HEADERS)).text
        return reply, again, metrics

    reply, again, metrics = run(app(), scenario)
    d, usage = reply["autotts"], reply["usage"]
    assert d["method"] == "cmc@0.5" and d["answer"] and d["stop_reason"] and d["branches_opened"] >= 1
    assert "\\boxed{" + d["answer"] in reply["choices"][0]["message"]["content"]
    assert usage["completion_tokens"] == d["sampled_tokens"] + d["probe_tokens"] > 0
    assert usage["prompt_tokens"] == d["prompt_tokens"] and usage["prompt_tokens_details"]["cached_tokens"] > 0
    assert again["choices"] == reply["choices"] and again["usage"] == usage  # the same seed, the same tokens
    assert 'autotts_requests_total{method="cmc",status="200"} 2.0' in metrics
    assert "autotts_upstream_up 1.0" in metrics and "autotts_proxy_overhead_seconds_count 2.0" in metrics


def test_streaming():
    async def scenario(client):
        body = {**ASK, "stream": True, "stream_options": {"include_usage": True}}
        stream = (await client.post("/v1/chat/completions", json=body, headers=HEADERS)).text
        plain = (await client.post("/v1/chat/completions", json=ASK, headers=HEADERS)).json()
        return stream, plain

    stream, plain = run(app(stream_interval=0.001), scenario)
    events = [line.removeprefix("data: ") for line in stream.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == plain["choices"][0]["message"]["content"]
    final = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0]["finish_reason"] for c in final] == ["stop"]
    assert final[0]["autotts"]["answer"] == plain["autotts"]["answer"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]
    assert any(c.get("autotts", {}).get("event") == "progress" for c in chunks)


def test_beyond_max_inflight_a_429():
    async def scenario(client):
        first = asyncio.ensure_future(client.post("/v1/chat/completions", json={**ASK, "autotts": {"method": "sc"}},
                                                  headers=HEADERS))  # fmt: skip
        await asyncio.sleep(0.02)
        second = await client.post("/v1/chat/completions", json=ASK, headers=HEADERS)
        return await first, second

    first, second = run(app(max_inflight=1), scenario)
    assert first.status_code == 200
    assert second.status_code == 429 and second.headers["Retry-After"] == "1"
    assert second.json()["error"]["code"] == "too_many_requests"


def test_an_upstream_that_is_down_then_back():
    async def scenario(client):
        FakeEndpoints.alive = False
        down = await client.post("/v1/chat/completions", json=ASK, headers=HEADERS)
        health = await client.get("/health")
        FakeEndpoints.alive = True
        back = await client.post("/v1/chat/completions", json=ASK, headers=HEADERS)
        return down, health, back, (await client.get("/health"))

    down, health, back, healthy = run(app(), scenario)
    assert down.status_code == 503 and down.headers["Retry-After"] and "unavailable" in down.json()["error"]["message"]
    assert health.status_code == 503 and health.json()["upstream"]["up"] is False
    assert back.status_code == 200 and healthy.status_code == 200


def test_an_upstream_that_fails_mid_answer_is_a_503():
    async def scenario(client):
        async def kill():
            await asyncio.sleep(0.03)
            FakeEndpoints.alive = False

        killer = asyncio.ensure_future(kill())
        reply = await client.post("/v1/chat/completions", json={**ASK, "autotts": {"method": "sc"}}, headers=HEADERS)
        await killer
        return reply, (await client.get("/metrics", headers=HEADERS)).text

    reply, metrics = run(app(), scenario)
    assert reply.status_code == 503 and reply.json()["error"]["code"] == "upstream_unavailable", reply.text
    assert 'autotts_upstream_errors_total{kind="connection"}' in metrics


@pytest.mark.parametrize(
    "method, path, headers, body, status",
    [
        ("POST", "/v1/chat/completions", {}, ASK, 401),
        ("POST", "/v1/chat/completions", {"Authorization": "Bearer nope"}, ASK, 401),
        ("GET", "/v1/models", {}, None, 401),
        ("GET", "/metrics", {}, None, 401),
        ("GET", "/health", {}, None, 200),
        ("GET", "/v1/models", HEADERS, None, 200),
        ("GET", "/v1/nothing", HEADERS, None, 404),
        ("POST", "/v1/chat/completions", HEADERS, {**ASK, "messages": [{"role": "user", "content": "x" * 300_000}]}, 413),
        ("POST", "/v1/chat/completions", HEADERS, {**ASK, "autotts": {"method": "dsr"}}, 400),
    ],
)
def test_auth_routes_and_limits(method, path, headers, body, status):
    async def scenario(client):
        return await client.request(method, path, headers=headers, json=body)

    response = run(app(), scenario)
    assert response.status_code == status, response.text
    if status != 200:
        assert response.json()["error"]["message"]
