"""``autotts serve``'s request parser and bodies (no server, no model: fast). The server
itself is tested against a real upstream in test_serve.py (marker ``serve``)."""

from __future__ import annotations

import json

import pytest

from collection.config import CollectConfig
from collection.serve.openai_api import APIError, chunk_body, parse_chat_request, sse, usage_body
from collection.serve.settings import ServeSettings


def settings(**extra) -> ServeSettings:
    config = CollectConfig(model="m", endpoints=["http://127.0.0.1:1/v1"], served_model_name="tiny")
    return ServeSettings(config=config, method="dsr-lock@0.5", allowed_methods=("sc", "cmc"), **extra).validate()


def parse(body: dict, **extra):
    return parse_chat_request(json.dumps(body).encode(), settings(**extra), "dsr-lock", 0.5)


OK = {"model": "tiny", "messages": [{"role": "user", "content": "What is 2+3?"}]}


def test_a_question_with_the_server_defaults():
    chat = parse({**OK, "seed": 4, "temperature": 0.2, "stop": ["x"]})  # sampling fields are ignored
    assert (chat.question, chat.system, chat.spec, chat.seed, chat.episode_seed) == ("What is 2+3?", None, "dsr-lock@0.5", 4, 0)
    assert chat.budget_tokens is None and not chat.stream
    assert 0 <= parse(OK).seed < 2**31  # a fresh seed without one


def test_system_messages_and_text_parts():
    chat = parse({**OK, "messages": [{"role": "system", "content": "Be brief."}, {"role": "developer", "content": "Box it."},
                                     {"role": "user", "content": [{"type": "text", "text": "What is "},
                                                                  {"type": "text", "text": "2+3?"}]}]})  # fmt: skip
    assert (chat.question, chat.system) == ("What is 2+3?", "Be brief.\n\nBox it.")


def test_overrides_within_the_operator_limits():
    assert parse({**OK, "autotts": {"method": "cmc", "beta": 0.3}}).spec == "cmc@0.3"
    assert parse({**OK, "autotts": {"method": "cmc@0.2"}}).spec == "cmc@0.2"
    assert parse({**OK, "autotts": {"method": "sc"}}).spec == "sc"
    assert parse({**OK, "autotts": {"method": "dsr-lock"}}).spec == "dsr-lock@0.5"  # the server's beta
    assert parse({**OK, "autotts": {"beta": 0.9}}).spec == "dsr-lock@0.9"
    assert parse({**OK, "autotts": {"budget_tokens": 500}}, max_budget_tokens=1000).budget_tokens == 500
    assert parse({**OK, "max_tokens": 300, "autotts": {"budget_tokens": 500}}).budget_tokens == 300
    assert parse(OK, budget_tokens=800).budget_tokens == 800
    assert parse({**OK, "stream": True, "stream_options": {"include_usage": True}}).include_usage


@pytest.mark.parametrize(
    "body, status, param",
    [
        ({"messages": OK["messages"]}, 400, "model"),
        ({**OK, "model": "other"}, 404, "model"),
        ({"model": "tiny"}, 400, "messages"),
        ({**OK, "messages": []}, 400, "messages"),
        ({**OK, "messages": [{"role": "system", "content": "x"}]}, 400, "messages"),
        ({**OK, "messages": [{"role": "user", "content": "  "}]}, 400, "messages"),
        ({**OK, "messages": [{"role": "robot", "content": "x"}]}, 400, "messages[0].role"),
        ({**OK, "messages": [*OK["messages"], {"role": "user", "content": "and?"}]}, 400, "messages[1].role"),
        ({**OK, "messages": [{"role": "user", "content": 7}]}, 400, "messages[0].content"),
        ({**OK, "n": 3}, 400, "n"),
        ({**OK, "stream": 1}, 400, "stream"),
        ({**OK, "seed": 1.5}, 400, "seed"),
        ({**OK, "max_tokens": 0}, 400, "max_tokens"),
        ({**OK, "logprobs": True}, 400, "logprobs"),
        ({**OK, "autotts": []}, 400, "autotts"),
        ({**OK, "autotts": {"pool_size": 4}}, 400, "autotts.pool_size"),
        ({**OK, "autotts": {"method": "agents/evil.py:Evil"}}, 400, "autotts.method"),
        ({**OK, "autotts": {"method": "ppo:model.zip"}}, 400, "autotts.method"),
        ({**OK, "autotts": {"method": "cmc@2"}}, 400, "autotts.method"),
        ({**OK, "autotts": {"beta": -0.1}}, 400, "autotts.beta"),
        ({**OK, "autotts": {"beta": True}}, 400, "autotts.beta"),
        ({**OK, "autotts": {"method": "cmc@0.2", "beta": 0.4}}, 400, "autotts.beta"),
        ({**OK, "autotts": {"budget_tokens": -5}}, 400, "autotts.budget_tokens"),
        ({**OK, "autotts": {"episode_seed": "a"}}, 400, "autotts.episode_seed"),
    ],
)
def test_a_malformed_request_names_its_field(body, status, param):
    with pytest.raises(APIError) as err:
        parse(body)
    assert (err.value.status, err.value.param) == (status, param)
    assert err.value.body()["error"]["message"]


def test_budgets_and_betas_above_the_limits_are_refused():
    with pytest.raises(APIError, match="above this server's limit") as err:
        parse({**OK, "autotts": {"budget_tokens": 2000}}, max_budget_tokens=1000)
    assert err.value.param == "autotts.budget_tokens"
    with pytest.raises(APIError) as err:  # the default budget is also the limit when no other is set
        parse({**OK, "autotts": {"budget_tokens": 900}}, budget_tokens=800)
    assert err.value.param == "autotts.budget_tokens"
    with pytest.raises(APIError) as err:
        parse({**OK, "autotts": {"beta": 0.8}}, max_beta=0.6)
    assert err.value.param == "autotts.beta"


def test_not_json_is_a_400():
    for raw in (b"{", b"\xff\xfe", b"[1, 2]"):
        with pytest.raises(APIError) as err:
            parse_chat_request(raw, settings(), "dsr-lock", 0.5)
        assert err.value.status == 400


def test_bodies():
    usage = usage_body(sampled=300, probe=40, prompt=2000, cached=1500)
    assert usage == {"prompt_tokens": 2000, "completion_tokens": 340, "total_tokens": 2340,
                     "completion_tokens_details": {"reasoning_tokens": 340}, "prompt_tokens_details": {"cached_tokens": 1500}}  # fmt: skip
    assert "prompt_tokens_details" not in usage_body(1, 0, 2, None)
    chunk = chunk_body("id", 1, "tiny", {}, "stop", autotts={"answer": "5"})
    assert chunk["choices"][0]["finish_reason"] == "stop" and chunk["autotts"] == {"answer": "5"}
    assert chunk_body("id", 1, "tiny", None, usage=usage)["choices"] == []
    assert sse("[DONE]") == b"data: [DONE]\n\n" and sse({"a": 1}) == b'data: {"a":1}\n\n'
