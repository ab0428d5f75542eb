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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass

from collection.config import CollectConfig
from collection.generation import Completion, Request
from collection.live.endpoints import AsyncEndpoints
from collection.serve.metrics import ServeMetrics
from collection.serve.openai_api import APIError

CHECK_TIMEOUT = 5.0


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

    async def _one(self, r: Request) -> Completion:
        trace = REQUEST_TRACE.get()
        if trace is not None:
            trace.enter()
        self.metrics.upstream_in_flight.inc()
        started = time.perf_counter()
        try:
            completion = await super()._one(r)
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
