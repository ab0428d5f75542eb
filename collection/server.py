"""Server backend: the same collection against OpenAI-compatible endpoints (vLLM servers).

This is how a collection scales past one machine: start one ``vllm serve`` per GPU (or
per node) and pass every URL with ``--endpoint``. Requests go through the ``openai``
client to ``/v1/completions`` with token-id prompts and ``return_token_ids`` (a vLLM
extension), so the server never re-tokenises text. All requests of a trajectory go to
the same endpoint (routing by trajectory), which keeps its prefix in that server's cache.

Start servers with ``--enable-prefix-caching`` and ``--enable-prompt-tokens-details``
(the latter lets the summary report measured prefix-cache hits).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from collection.config import CollectConfig
from collection.generation import Completion, Request


class ServerGenerator:
    """A :class:`~collection.generation.Generator` over one or more OpenAI-compatible URLs.

    Args:
        config: endpoints, served model name, API key, concurrency and timeout.
    """

    def __init__(self, config: CollectConfig) -> None:
        from openai import AsyncOpenAI

        self.endpoints = list(config.endpoints)
        self.model = config.served_model_name or config.model
        self._loop = asyncio.new_event_loop()
        self._clients = [
            AsyncOpenAI(base_url=url, api_key=config.api_key, timeout=config.request_timeout, max_retries=3)
            for url in self.endpoints
        ]
        self._limits = [asyncio.Semaphore(config.max_concurrency) for _ in self.endpoints]
        self.max_model_len = self._run(self._max_model_len())
        if config.max_model_len is not None:
            self.max_model_len = min(self.max_model_len or config.max_model_len, config.max_model_len)

    def _run(self, coroutine: Any) -> Any:
        return self._loop.run_until_complete(coroutine)

    async def _max_model_len(self) -> int | None:
        """The smallest context length the servers announce for the model (vLLM adds it to /v1/models)."""
        lengths = []
        for url, client in zip(self.endpoints, self._clients):
            models = await client.models.list()
            served = {m.id: m for m in models.data}
            if self.model not in served:
                raise ValueError(f"endpoint {url} does not serve model {self.model!r}; it serves {sorted(served)}")
            length = getattr(served[self.model], "max_model_len", None)
            if length:
                lengths.append(int(length))
        return min(lengths) if lengths else None

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """Send all requests concurrently (bounded per endpoint) and wait for all."""
        return self._run(self._generate_all(requests))

    async def _generate_all(self, requests: Sequence[Request]) -> list[Completion]:
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    async def _one(self, r: Request) -> Completion:
        k = r.route % len(self._clients)
        extra: dict[str, Any] = {"return_token_ids": True}
        if r.top_k > 0:
            extra["top_k"] = r.top_k
        async with self._limits[k]:
            response = await self._clients[k].completions.create(
                model=self.model,
                prompt=list(r.prompt),
                max_tokens=r.max_tokens,
                temperature=r.temperature,
                top_p=r.top_p,
                seed=r.seed,
                logprobs=0 if r.logprobs else None,
                extra_body=extra,
            )
        choice = response.choices[0]
        tokens = getattr(choice, "token_ids", None)
        if tokens is None:
            raise RuntimeError(
                f"endpoint {self.endpoints[k]} returned no token_ids; it must be a vLLM server "
                "(the collector needs the 'return_token_ids' extension)"
            )
        logprobs: tuple[float, ...] = ()
        if r.logprobs and choice.logprobs is not None and choice.logprobs.token_logprobs is not None:
            logprobs = tuple(float(x) for x in choice.logprobs.token_logprobs)
        return Completion(
            tokens=tuple(int(t) for t in tokens),
            stopped=choice.finish_reason == "stop",
            logprobs=logprobs,
            cached_prompt_tokens=_cached_tokens(response),
        )

    def describe(self) -> dict[str, Any]:
        """Endpoints and the served model for the store's metadata."""
        return {"mode": "server", "endpoints": self.endpoints, "served_model": self.model,
                "max_model_len": self.max_model_len}

    def close(self) -> None:
        """Close the HTTP clients and the event loop."""
        for client in self._clients:
            self._run(client.close())
        self._loop.close()


def _cached_tokens(response: Any) -> int | None:
    usage = getattr(response, "usage", None)
    details = getattr(usage, "prompt_tokens_details", None) if usage is not None else None
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    return None if cached is None else int(cached)
