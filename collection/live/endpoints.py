"""Live requests to OpenAI-compatible servers (vLLM), for blocking and for async callers.

Both classes send the collector's requests the way :class:`collection.server.ServerGenerator`
does (token-id prompts, ``return_token_ids``, every request of a branch to the same
endpoint, at most ``max_concurrency`` in flight per endpoint). Failures: the ``openai``
client retries a request that cannot connect, times out or gets a 408/409/429/5xx
(``max_retries`` times, with exponential backoff); a request that still fails fails
only the episode that made it.

* :class:`LiveServerGenerator`: ``generate_settled(requests)`` for
  :func:`~collection.live.runner.run_live` (``autotts run --endpoint URL``).
* :class:`AsyncEndpoints`: ``await complete(requests)`` on the caller's event loop (a web
  server's), for :class:`~collection.live.service.LiveService`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from collection.config import CollectConfig
from collection.generation import Completion, Request
from collection.server import ServerGenerator

MAX_RETRIES = 3


class EndpointError(RuntimeError):
    """The servers cannot be reached or do not serve the model."""


class LiveServerGenerator(ServerGenerator):
    """:class:`~collection.server.ServerGenerator` that reports failures per request.

    Args:
        config: endpoints, served model name, API key, concurrency, timeout.
    """

    def __init__(self, config: CollectConfig) -> None:
        try:
            super().__init__(config)
        except ValueError:
            raise
        except Exception as err:  # connection refused, DNS, timeout, auth
            raise EndpointError(f"cannot reach {', '.join(config.endpoints)}: {type(err).__name__}: {err}") from None

    def generate_settled(self, requests: Sequence[Request]) -> list[Completion | BaseException]:
        """Every request's completion, or the exception that ended it (after retries)."""
        return self._run(self._settle(requests))

    async def _settle(self, requests: Sequence[Request]) -> list[Completion | BaseException]:
        outs = await asyncio.gather(*(self._one(r) for r in requests), return_exceptions=True)
        return [_endpoint_error(self, r, o) if isinstance(o, Exception) else o for r, o in zip(requests, outs)]


class AsyncEndpoints(ServerGenerator):
    """The server backend on the running event loop: ``await start()`` once, then
    ``await complete(requests)`` from any task, ``await aclose()`` at the end.

    Args:
        config: endpoints, served model name, API key, concurrency, timeout.
    """

    def __init__(self, config: CollectConfig) -> None:  # noqa: D107 - no private loop, unlike the parent
        from openai import AsyncOpenAI

        self.endpoints = list(config.endpoints)
        self.model = config.served_model_name or config.model
        self._clients = [
            AsyncOpenAI(base_url=url, api_key=config.api_key, timeout=config.request_timeout, max_retries=MAX_RETRIES)
            for url in self.endpoints
        ]
        self._limits = [asyncio.Semaphore(config.max_concurrency) for _ in self.endpoints]
        self.max_model_len = config.max_model_len
        self._configured_len = config.max_model_len

    async def start(self) -> None:
        """Check that every endpoint serves the model and read its context length."""
        try:
            served = await self._max_model_len()
        except ValueError:
            raise
        except Exception as err:
            raise EndpointError(f"cannot reach {', '.join(self.endpoints)}: {type(err).__name__}: {err}") from None
        if served is not None:
            self.max_model_len = min(served, self._configured_len or served)

    async def complete(self, requests: Sequence[Request]) -> list[Completion]:
        """Complete all requests concurrently (bounded per endpoint); the first failure raises."""
        outs = await asyncio.gather(*(self._one(r) for r in requests), return_exceptions=True)
        for r, o in zip(requests, outs):
            if isinstance(o, BaseException):
                raise _endpoint_error(self, r, o) if isinstance(o, Exception) else o
        return list(outs)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        for client in self._clients:
            await client.close()

    def close(self) -> None:  # the parent's close runs on its own loop
        """Not for async callers: use :meth:`aclose`."""
        raise RuntimeError("AsyncEndpoints: await aclose() instead of close()")


def _endpoint_error(backend: ServerGenerator, request: Request, err: Exception) -> Exception:
    url = backend.endpoints[request.route % len(backend.endpoints)]
    if isinstance(err, (RuntimeError, ValueError)) and not type(err).__module__.startswith("openai"):
        return err
    return EndpointError(f"endpoint {url} failed after {MAX_RETRIES} retries: {type(err).__name__}: {err}")
