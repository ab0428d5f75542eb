"""OpenAI's chat completion format: the request parser and the response, chunk and error bodies.

Nothing here knows the web framework; :mod:`collection.serve.app` calls it.

A request is one question: optional ``system`` (or ``developer``) messages, then one
``user`` message, whose text fills the operator's prompt template as ``autotts run``
fills it with a question. Accepted fields:

* ``model`` (must be the served name), ``messages``, ``stream``,
  ``stream_options.include_usage``, ``n`` (only 1);
* ``seed``: the request's sampling seed. The same seed and question ask the upstream for
  the same tokens; ``seed=i`` draws what ``autotts run`` draws for question ``i`` (with
  the same settings). Without it, a fresh seed per request;
* ``max_tokens`` / ``max_completion_tokens``: the request's token budget (tokens charged
  to branches, the engine's ``budget_tokens``) when smaller than the autotts one;
* ``autotts`` (``extra_body={"autotts": {...}}`` in the ``openai`` client): ``method``
  (a method the operator allows, optionally ``name@beta``), ``beta``, ``budget_tokens``
  (at most the operator's limit) and ``episode_seed`` (the branch order: seed ``s`` of
  ``autotts run --seeds``);
* sampling fields (``temperature``, ``top_p``, ``stop``, penalties, ...) are accepted and
  ignored: sampling is the operator's (the controller's episodes are defined by it);
  ``tools``, ``functions`` and ``logprobs`` are refused.
"""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import dataclass
from typing import Any

from collection.serve.settings import ServeSettings

AUTOTTS_FIELDS = ("method", "beta", "budget_tokens", "episode_seed")
REFUSED_FIELDS = ("tools", "functions", "tool_choice", "function_call", "logprobs", "top_logprobs", "audio")


class APIError(Exception):
    """An error answered in OpenAI's error body format.

    Args:
        status: HTTP status.
        message: what is wrong, naming the field.
        param: the field (``messages[0].content``, ``autotts.beta``), if one is at fault.
        kind: OpenAI's error ``type`` (``invalid_request_error``, ``server_error``, ...).
        code: OpenAI's error ``code`` (``invalid_api_key``, ``model_not_found``, ...).
        headers: extra response headers (``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        kind: str = "invalid_request_error",
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.kind = kind
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class ChatRequest:
    """A parsed chat completion request.

    Attributes:
        question: the user message's text.
        system: the system message's text (None: the operator's system prompt).
        method: the controller's method name (no beta).
        beta: its beta (None: the method's default settings).
        budget_tokens: the episode's token budget (None: none).
        seed: the sampling seed (the question index of ``autotts run``'s seeds).
        episode_seed: the branch order's seed.
        stream: answer with server-sent events.
        include_usage: add the usage chunk to a stream.
    """

    question: str
    system: str | None
    method: str
    beta: float | None
    budget_tokens: float | None
    seed: int
    episode_seed: int
    stream: bool
    include_usage: bool

    @property
    def spec(self) -> str:
        """``method@beta`` (or ``method``)."""
        return self.method if self.beta is None else f"{self.method}@{self.beta:g}"


def parse_chat_request(raw: bytes, settings: ServeSettings, default_method: str, default_beta: float | None) -> ChatRequest:
    """The request in ``raw`` (a JSON body), checked against the operator's limits.

    Raises:
        APIError: 400 naming the field that is wrong (404 for an unknown model).
    """
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise APIError(400, f"the request body is not valid JSON: {err}") from None
    if not isinstance(body, dict):
        raise APIError(400, f"the request body must be a JSON object, got {type(body).__name__}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise APIError(400, "'model' is required: a string (see GET /v1/models)", "model")
    if model != settings.model_name:
        raise APIError(404, f"the model {model!r} does not exist; this server serves {settings.model_name!r}", "model",
                       code="model_not_found")  # fmt: skip
    for name in REFUSED_FIELDS:
        if body.get(name) not in (None, False, [], {}):
            raise APIError(400, f"'{name}' is not supported by autotts serve (it answers with a controller's vote)", name)
    n = body.get("n")
    if n is not None and (type(n) is not int or n != 1):
        raise APIError(400, f"'n' must be 1 (one answer per request; the controller samples its own branches), got {n!r}", "n")
    question, system = _messages(body.get("messages"))
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise APIError(400, f"'stream' must be true or false, got {stream!r}", "stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise APIError(400, "'stream_options' must be an object", "stream_options")
        include_usage = options.get("include_usage") is True
    seed = body.get("seed")
    if seed is None:
        seed = secrets.randbelow(2**31)
    elif type(seed) is not int:
        raise APIError(400, f"'seed' must be an integer, got {seed!r}", "seed")
    limit = None
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is not None:
            limit = _positive_number(value, name, integer=True)
    method, beta, budget, episode_seed = _autotts(body.get("autotts"), settings, default_method, default_beta)
    if limit is not None:
        budget = limit if budget is None else min(budget, limit)
    return ChatRequest(question, system, method, beta, budget, seed, episode_seed, bool(stream), include_usage)


def _messages(messages: Any) -> tuple[str, str | None]:
    if not isinstance(messages, list) or not messages:
        raise APIError(400, "'messages' is required: a non-empty list of {role, content} objects", "messages")
    systems: list[str] = []
    question = None
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise APIError(400, f"'{where}' must be an object with 'role' and 'content'", where)
        role = message.get("role")
        if role in ("system", "developer") and question is None:
            systems.append(_text(message.get("content"), f"{where}.content"))
        elif role == "user" and question is None:
            question = _text(message.get("content"), f"{where}.content")
        elif role in ("system", "developer", "user", "assistant", "tool", "function"):
            raise APIError(400, f"'{where}.role' {role!r}: autotts serve answers one question per request: give one "
                                "'user' message, after optional 'system' messages, and nothing after it",
                           f"{where}.role")  # fmt: skip
        else:
            raise APIError(400, f"'{where}.role' must be 'system', 'developer' or 'user', got {role!r}", f"{where}.role")
    if question is None:
        raise APIError(400, "'messages' has no 'user' message: it holds the question", "messages")
    if not question.strip():
        raise APIError(400, "the 'user' message is empty", "messages")
    return question, "\n\n".join(systems) if systems else None


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for k, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(400, f"'{where}[{k}]' must be a text part {{\"type\": \"text\", \"text\": ...}}",
                               f"{where}[{k}]")  # fmt: skip
            parts.append(part["text"])
        return "".join(parts)
    raise APIError(400, f"'{where}' must be a string or a list of text parts", where)


def _positive_number(value: Any, where: str, integer: bool = False) -> float:
    ok = type(value) is int or (not integer and type(value) is float and math.isfinite(value))
    if not ok or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise APIError(400, f"'{where}' must be {kind}, got {value!r}", where)
    return float(value)


def _autotts(
    options: Any, settings: ServeSettings, default_method: str, default_beta: float | None
) -> tuple[str, float | None, float | None, int]:
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise APIError(400, "'autotts' must be an object (extra_body={'autotts': {...}})", "autotts")
    for key in options:
        if key not in AUTOTTS_FIELDS:
            raise APIError(400, f"'autotts.{key}' is not a setting; known: {', '.join(AUTOTTS_FIELDS)}", f"autotts.{key}")
    method, beta = default_method, default_beta
    if options.get("method") is not None:
        method, beta = _method(options["method"], settings, default_method)
        if beta is None and method == default_method:
            beta = default_beta  # the server's method keeps the server's beta
    if options.get("beta") is not None:
        value = options["beta"]
        if type(value) not in (int, float) or not 0.0 <= value <= settings.max_beta:
            raise APIError(400, f"'autotts.beta' must be a number in [0, {settings.max_beta:g}], got {value!r}", "autotts.beta")
        if beta is not None and "@" in str(options.get("method", "")) and float(value) != beta:
            raise APIError(400, f"'autotts.method' {options['method']!r} fixes beta {beta:g}; drop 'autotts.beta'",
                           "autotts.beta")  # fmt: skip
        beta = float(value)
    elif beta is not None and beta > settings.max_beta:
        raise APIError(400, f"beta {beta:g} is above this server's limit {settings.max_beta:g}", "autotts.method")
    budget = settings.budget_tokens
    limit = settings.request_budget_limit
    if options.get("budget_tokens") is not None:
        budget = _positive_number(options["budget_tokens"], "autotts.budget_tokens")
        if limit is not None and budget > limit:
            raise APIError(400, f"'autotts.budget_tokens' {budget:g} is above this server's limit {limit:g}",
                           "autotts.budget_tokens")  # fmt: skip
    episode_seed = options.get("episode_seed", 0)
    if type(episode_seed) is not int or episode_seed < 0:
        raise APIError(400, f"'autotts.episode_seed' must be a non-negative integer, got {episode_seed!r}",
                       "autotts.episode_seed")  # fmt: skip
    return method, beta, budget, episode_seed


def _method(value: Any, settings: ServeSettings, default_method: str) -> tuple[str, float | None]:
    allowed = {default_method, *settings.allowed_methods}
    if not isinstance(value, str):
        raise APIError(400, f"'autotts.method' must be a string, got {value!r}", "autotts.method")
    name, beta = value, None
    head, sep, tail = value.rpartition("@")
    if value not in allowed and sep:
        try:
            name, beta = head, float(tail)
        except ValueError:
            pass
    if name not in allowed:
        raise APIError(400, f"'autotts.method' {value!r} is not allowed on this server; allowed: {', '.join(sorted(allowed))}",
                       "autotts.method")  # fmt: skip
    if beta is not None and not 0.0 <= beta <= settings.max_beta:
        raise APIError(400, f"'autotts.method' {value!r}: beta must lie in [0, {settings.max_beta:g}]", "autotts.method")
    return name, beta


# ------------------------------------------------------------------ bodies
def usage_body(sampled: int, probe: int, prompt: int, cached: int | None) -> dict[str, Any]:
    """OpenAI's ``usage``: completion tokens are every sampled and probe token, prompt
    tokens every prompt token sent upstream (``cached_tokens``: served from the prefix cache)."""
    body: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": sampled + probe,
                            "total_tokens": prompt + sampled + probe,
                            "completion_tokens_details": {"reasoning_tokens": sampled + probe}}  # fmt: skip
    if cached is not None:
        body["prompt_tokens_details"] = {"cached_tokens": cached}
    return body


def completion_body(
    request_id: str, created: int, model: str, text: str, usage: dict[str, Any], decision: dict[str, Any]
) -> dict[str, Any]:
    """A ``chat.completion`` object with the ``autotts`` decision field."""
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                     "finish_reason": "stop"}],
        "usage": usage,
        "autotts": decision,
    }  # fmt: skip


def chunk_body(
    request_id: str,
    created: int,
    model: str,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` (``delta`` None: a chunk without choices, e.g. usage)."""
    body: dict[str, Any] = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model,
                            "choices": [] if delta is None else
                            [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}  # fmt: skip
    body.update(extra)
    return body


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event: ``data: JSON`` and a blank line."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()
