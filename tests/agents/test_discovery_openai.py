"""The LLM proposers against a local HTTP server on 127.0.0.1: the OpenAI-compatible
chat-completions path (what a local vLLM server or a hosted API speaks) end to end
through ``autotts discover``, the Anthropic Messages path, API errors, and the price
table."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agents.discovery.history import load_history
from agents.discovery.proposers import PriceTable, ProposerError, make_proposer
from autotts_gym.cli.main import main
from autotts_gym.data.store import Store
from autotts_gym.data.synthetic import generate_split

EXAMPLES = Path(__file__).resolve().parents[2] / "discovery" / "examples"
PROMPT_TOKENS, COMPLETION_TOKENS = 1234, 567


class FakeLLM(BaseHTTPRequestHandler):
    """Answers chat completions (OpenAI) and messages (Anthropic) with the example
    candidates, one per request, in order; records every request."""

    requests: list[dict] = []
    replies: list[str] = []
    fail_with: int | None = None

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.requests.append({"path": self.path, "headers": headers, "body": body})
        if self.fail_with:
            self.respond(self.fail_with, {"error": {"message": "the model is overloaded", "type": "server_error"}})
            return
        reply = (
            f"Here is my controller.\n\n```python\n{self.replies[(len(self.requests) - 1) % len(self.replies)]}```\n"
        )
        if self.path.endswith("/chat/completions"):
            self.respond(
                200,
                {
                    "id": "cmpl-1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
                    ],
                    "usage": {
                        "prompt_tokens": PROMPT_TOKENS,
                        "completion_tokens": COMPLETION_TOKENS,
                        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                    },
                },
            )
        elif self.path.endswith("/messages"):
            self.respond(
                200,
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [{"type": "text", "text": reply}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS},
                },
            )
        else:
            self.respond(404, {"error": {"message": f"no route {self.path}"}})

    def respond(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture
def server() -> Iterator[str]:
    """A chat-completions server on 127.0.0.1 (a free port), stopped after the test."""
    FakeLLM.requests = []
    FakeLLM.replies = [p.read_text() for p in sorted(EXAMPLES.glob("*.py"))]
    FakeLLM.fail_with = None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeLLM)
    httpd.timeout = 10
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """A small search store, so the test time goes to the proposer path."""
    path = tmp_path_factory.mktemp("llm") / "store"
    Store([generate_split(6, 24, seed=2, model="tiny", benchmark="search")]).save(path)
    return str(path)


def discover(out: Path, store: str, proposer: str, *extra: str) -> int:
    argv = ["discover", "--rounds", "2", "--proposer", proposer, "--out", str(out), "--search", store]
    return main([*argv, "--seeds", "2", "--betas", "0", "1", "--retries", "0", *extra])


def test_openai_compatible_endpoint_end_to_end(server, store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"local-*": {"prompt": 2.0, "completion": 8.0}}))
    out = tmp_path / "run"
    assert discover(out, store, "openai:local-qwen", "--price-table", str(prices), "--temperature", "0.2") == 0
    printed = capsys.readouterr().out
    assert "proposer openai:local-qwen" in printed

    history = load_history(out)
    assert len(FakeLLM.requests) == 2 and [h.ok for h in history] == [True, True]
    cost = round((PROMPT_TOKENS * 2.0 + COMPLETION_TOKENS * 8.0) / 1e6, 6)
    for request, rec in zip(FakeLLM.requests, history):
        assert request["path"] == "/v1/chat/completions"
        assert request["headers"]["authorization"] == "Bearer sk-local-test"
        body = request["body"]
        assert body["model"] == "local-qwen" and body["temperature"] == 0.2 and body["max_tokens"] == 8192
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
        folder = out / f"round-{rec.round:03d}"
        assert body["messages"][1]["content"] == (folder / "prompt.md").read_text()
        assert (folder / "response.md").read_text().startswith("Here is my controller.")
        usage = rec.data["usage"]
        assert (usage["model"], usage["prompt_tokens"], usage["completion_tokens"]) == (
            "local-qwen",
            PROMPT_TOKENS,
            COMPLETION_TOKENS,
        )
        assert usage["cost_usd"] == cost and usage["seconds"] >= 0
    assert f"cost ${2 * cost:.4f}" in printed
    assert "sk-local-test" not in (out / "config.json").read_text()


def test_anthropic_messages_path(server, store, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    out = tmp_path / "run"
    assert discover(out, store, "anthropic:claude-test", "--base-url", server) == 0
    assert [r["path"] for r in FakeLLM.requests] == ["/v1/messages", "/v1/messages"]
    body = FakeLLM.requests[0]["body"]
    assert body["model"] == "claude-test" and body["messages"][0]["role"] == "user" and body["system"]
    headers = FakeLLM.requests[0]["headers"]
    assert "sk-ant-test" in (headers.get("x-api-key", ""), headers.get("authorization", "").removeprefix("Bearer "))
    usage = load_history(out)[0].data["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["cost_usd"]) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
        None,
    )


def test_api_error_stops_the_run_and_resume_continues(server, store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    out = tmp_path / "run"
    FakeLLM.fail_with = 503
    assert discover(out, store, "openai:local-qwen") == 1
    err = capsys.readouterr().err
    assert "proposer error: openai:local-qwen at " in err and "round 1" in err and "--resume" in err
    assert not list(out.glob("round-*"))
    FakeLLM.fail_with = None
    assert discover(out, store, "openai:local-qwen", "--resume") == 0
    assert [h.round for h in load_history(out)] == [1, 2]


def test_missing_key_and_bad_specs_are_clear(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ProposerError, match="no API key"):
        make_proposer("openai:gpt-test")
    with pytest.raises(ValueError, match="expected openai:MODEL"):
        make_proposer("gpt-test")
    with pytest.raises(ValueError, match="unknown kind 'local'"):
        make_proposer("local:x")
    with pytest.raises(ProposerError, match="round 5 has none"):
        make_proposer(f"scripted:{EXAMPLES}").propose("prompt", 5)


def test_price_table(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps({"openai:gpt-x": {"prompt": 1, "completion": 2}, "claude-*": {"input": 3, "output": 15}})
    )
    table = PriceTable.load(path)
    assert table.cost("openai", "gpt-x", 1_000_000, 500_000) == 2.0
    assert table.cost("anthropic", "claude-test", 1000, 1000) == 0.018
    assert table.cost("openai", "other", 1000, 1000) is None
    assert table.cost("openai", "gpt-x", None, 10) is None
    path.write_text(json.dumps({"m": {"prompt": "cheap"}}))
    with pytest.raises(ValueError, match=r"prices.json: entry 'm' needs numeric"):
        PriceTable.load(path)
