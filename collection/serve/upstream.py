"""The upstream servers of ``autotts serve``: per-request accounting, failure kinds, health.

:class:`ServeEndpoints` is the live service's :class:`~collection.live.endpoints.AsyncEndpoints`
with three additions:

* every upstream call is counted in the metrics and in the :class:`RequestTrace` of the
  chat request that caused it (a context variable: the live service runs each controller,
  and the batches it sends, in its caller's context), so a request knows its own upstream
  time, and the proxy's overhead is its wall time minus that;
* the first failure of a request is kept, so the reply says whether the upstream was
  unreachable (503) or answered with an error (502);
* :meth:`ServeEndpoints.refresh` checks the upstream quickly (no retries); a server that
  found it down checks again before the next request, so it recovers by itself.

Its completion requests are the collector's (:class:`collection.server.ServerGenerator`:
the same JSON body, token-id prompts, ``return_token_ids``, every request of a branch to
the same server, at most ``max_concurrency`` in flight per server, the same retries) sent
with aiohttp instead of the ``openai`` client: a web server sends many small requests per
answer from one event loop, and the ``openai`` client's per-request work (about 2.4 ms of
CPU here, against 0.4 ms) made that loop the proxy's bottleneck at 16 concurrent requests.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from collection.config import CollectConfig
from collection.generation import Completion, Request
from collection.live.endpoints import MAX_RETRIES, AsyncEndpoints
from collection.serve.metrics import ServeMetrics
from collection.serve.openai_api import APIError

CHECK_TIMEOUT = 5.0
# Retries as the openai client makes them: connection failures, timeouts, 408/409/429/5xx,
# MAX_RETRIES times after the first attempt, backing off 0.5 s, 1 s, 2 s (at most 8 s), jittered.
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class UpstreamError(Exception):
    """An upstream request that failed (after its retries).

    Attributes:
        kind: ``connection``, ``timeout``, ``status_5xx``, ``status_4xx`` or ``bad_response``.
        status_code: the upstream's HTTP status (None if it did not answer).
    """

    def __init__(self, kind: str, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status_code = status_code


@dataclass
class RequestTrace:
    """What one chat request asked of the upstream, as its calls happen.

    Attributes:
        upstream_requests: upstream calls finished (completed or failed).
        generated_tokens: tokens they returned (sampled and probe).
        upstream_seconds: wall time with at least one of its calls in flight (waiting for
            a slot under ``--max-concurrency`` included).
        error: the first upstream failure (None if none).
    """

    upstream_requests: int = 0
    generated_tokens: int = 0
    upstream_seconds: float = 0.0
    error: BaseException | None = None
    _in_flight: int = 0
    _since: float = 0.0

    def enter(self) -> None:
        """An upstream call of this request starts."""
        if self._in_flight == 0:
            self._since = time.perf_counter()
        self._in_flight += 1

    def leave(self) -> None:
        """An upstream call of this request ends."""
        self._in_flight -= 1
        if self._in_flight == 0:
            self.upstream_seconds += time.perf_counter() - self._since


REQUEST_TRACE: ContextVar[RequestTrace | None] = ContextVar("autotts_serve_request_trace", default=None)


def failure_kind(err: BaseException) -> str:
    """``connection``, ``timeout``, ``status_5xx``, ``status_4xx`` or ``bad_response``."""
    import openai

    if isinstance(err, UpstreamError):
        return err.kind
    if isinstance(err, openai.APITimeoutError):
        return "timeout"
    if isinstance(err, openai.APIConnectionError):
        return "connection"
    if isinstance(err, openai.APIStatusError):
        return "status_5xx" if err.status_code >= 500 or err.status_code == 429 else "status_4xx"
    return "bad_response"


def upstream_error(err: BaseException, urls: Sequence[str]) -> APIError:
    """The reply to a request whose upstream call failed with ``err``: 503 if the upstream
    could not be reached (or was overloaded), 502 if it answered with an error."""
    kind = failure_kind(err)
    where = ", ".join(urls)
    detail = f"{type(err).__name__}: {err}"
    if kind in ("connection", "timeout") or getattr(err, "status_code", None) in (429, 503):
        return APIError(503, f"the upstream model server ({where}) is unavailable ({detail}); retry later",
                        kind="service_unavailable", code="upstream_unavailable", headers={"Retry-After": "5"})
    return APIError(502, f"the upstream model server ({where}) failed ({detail})", kind="upstream_error",
                    code="upstream_error")  # fmt: skip


class ServeEndpoints(AsyncEndpoints):
    """:class:`AsyncEndpoints` that accounts every call (see the module docstring).

    Args:
        config: upstream URLs, served model name, API key, concurrency, timeout.
        metrics: where upstream calls and failures are counted.
    """

    def __init__(self, config: CollectConfig, metrics: ServeMetrics) -> None:
        super().__init__(config)
        self.metrics = metrics
        self.up = False
        self.last_error = "not checked yet"
        self.checked = 0.0
        self._checking = asyncio.Lock()
        self._quick = [client.with_options(max_retries=0, timeout=CHECK_TIMEOUT) for client in self._clients]
        self._api_key = config.api_key
        self._timeout = config.request_timeout
        self._sessions: list[Any] = []

    async def refresh(self, min_interval: float = 0.0) -> bool:
        """Check that the upstream servers answer and serve the model (and read its context
        length); at most once per ``min_interval`` seconds. Returns whether they are up.

        Raises:
            ValueError: a server answers but does not serve the model (a setting is wrong).
        """
        async with self._checking:
            if time.monotonic() - self.checked < min_interval:
                return self.up
            try:
                lengths = []
                for url, client in zip(self.endpoints, self._quick):
                    served = {m.id: m for m in (await client.models.list()).data}
                    if self.model not in served:
                        raise ValueError(f"upstream {url} does not serve model {self.model!r}; it serves {sorted(served)}")
                    length = getattr(served[self.model], "max_model_len", None)
                    if length:
                        lengths.append(int(length))
            except ValueError:
                raise
            except Exception as err:
                self._set_up(False, f"{type(err).__name__}: {err}")
            else:
                if lengths:
                    self.max_model_len = min(min(lengths), self._configured_len or min(lengths))
                self._set_up(True, "")
            self.checked = time.monotonic()
            return self.up

    def _set_up(self, up: bool, error: str) -> None:
        self.up = up
        self.last_error = error
        self.metrics.upstream_up.set(1 if up else 0)

    async def aclose(self) -> None:
        """Close the HTTP sessions and clients."""
        for session in self._sessions:
            await session.close()
        await super().aclose()

    def _session(self, k: int) -> Any:
        if not self._sessions:
            import aiohttp

            headers = {"Authorization": f"Bearer {self._api_key}"}
            self._sessions = [aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=0),
                                                    timeout=aiohttp.ClientTimeout(total=self._timeout))
                              for _ in self.endpoints]  # fmt: skip
        return self._sessions[k]

    async def _send(self, r: Request) -> Completion:
        """One completion request, with the openai client's retries (module docstring)."""
        import aiohttp

        k = r.route % len(self.endpoints)
        body: dict[str, Any] = {"model": self.model, "prompt": list(r.prompt), "max_tokens": r.max_tokens,
                                "temperature": r.temperature, "top_p": r.top_p, "seed": r.seed,
                                "return_token_ids": True}  # fmt: skip
        if r.top_k > 0:
            body["top_k"] = r.top_k
        if r.logprobs:
            body["logprobs"] = 0
        url = self.endpoints[k].rstrip("/") + "/completions"
        async with self._limits[k]:
            for attempt in range(MAX_RETRIES + 1):
                try:
                    async with self._session(k).post(url, json=body) as response:
                        payload = await response.read()
                        status = response.status
                except asyncio.TimeoutError:
                    failure = UpstreamError("timeout", f"{url}: no answer within {self._timeout:g} s")
                except aiohttp.ClientError as err:
                    failure = UpstreamError("connection", f"{url}: {type(err).__name__}: {err}")
                else:
                    if status == 200:
                        return _completion(payload, url)
                    kind = "status_5xx" if status >= 500 or status == 429 else "status_4xx"
                    failure = UpstreamError(kind, f"{url} answered {status}: {payload[:500].decode(errors='replace')}",
                                            status)  # fmt: skip
                    if status not in RETRY_STATUS:
                        raise failure
                if attempt == MAX_RETRIES:
                    raise failure
                await asyncio.sleep(min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * random.random()))
        raise AssertionError("unreachable")

    async def _one(self, r: Request) -> Completion:
        trace = REQUEST_TRACE.get()
        if trace is not None:
            trace.enter()
        self.metrics.upstream_in_flight.inc()
        started = time.perf_counter()
        try:
            completion = await self._send(r)
        except asyncio.CancelledError:
            self.metrics.upstream_requests.labels("cancelled").inc()
            raise
        except Exception as err:
            kind = failure_kind(err)
            self.metrics.upstream_requests.labels("error").inc()
            self.metrics.upstream_errors.labels(kind).inc()
            if kind in ("connection", "timeout"):
                self._set_up(False, f"{type(err).__name__}: {err}")
            if trace is not None and trace.error is None:
                trace.error = err
            raise
        finally:
            self.metrics.upstream_in_flight.dec()
            if trace is not None:
                trace.leave()
                trace.upstream_requests += 1
            self.metrics.upstream_latency.observe(time.perf_counter() - started)
        self.metrics.upstream_requests.labels("ok").inc()
        if not self.up:
            self._set_up(True, "")
        if trace is not None:
            trace.generated_tokens += len(completion.tokens)
        return completion


def _completion(payload: bytes, url: str) -> Completion:
    """A :class:`Completion` from a vLLM ``/v1/completions`` answer (as ``ServerGenerator`` reads it)."""
    try:
        data = json.loads(payload)
        choice = data["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        raise UpstreamError("bad_response", f"{url} answered something that is not a completion: {payload[:200]!r}") from None
    tokens = choice.get("token_ids")
    if tokens is None:
        raise UpstreamError("bad_response", f"{url} returned no token_ids; it must be a vLLM server (the live episodes "
                                            "need the 'return_token_ids' extension)")  # fmt: skip
    logprobs = choice.get("logprobs") or {}
    cached = ((data.get("usage") or {}).get("prompt_tokens_details") or {}).get("cached_tokens")
    return Completion(
        tokens=tuple(int(t) for t in tokens),
        stopped=choice.get("finish_reason") == "stop",
        logprobs=tuple(float(x) for x in logprobs.get("token_logprobs") or ()),
        cached_prompt_tokens=None if cached is None else int(cached),
    )
