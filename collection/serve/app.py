"""The ``autotts serve`` web application (Starlette, run by uvicorn).

Routes: ``POST /v1/chat/completions`` (a controller answers; ``stream`` as server-sent
events), ``GET /v1/models``, ``GET /health`` (200 when the upstream answers, else 503; no
key needed) and ``GET /metrics`` (Prometheus text).

A request goes: API key (401) -> body size (413) -> parsing, naming the field that is wrong
(400/404) -> the controller (400 if the method or beta is refused) -> admission (429 with
``Retry-After`` beyond ``max_inflight``) -> the upstream's state (503 while it is down) ->
the live service. A client that disconnects cancels its request: the batch in flight is
cancelled (its HTTP requests to the upstream are closed, which makes vLLM abort them) and
the controller's thread raises at its next request, so nothing of it keeps running.

Streaming (``stream: true``): a first chunk with the assistant role at once; while the
controller works, a chunk every ``stream_interval`` seconds with an empty delta and an
``autotts`` progress field (upstream requests finished, tokens generated, seconds); when
it has answered, the whole message in one content chunk (the answer is not known before
the vote, so no branch's text can be streamed earlier), a final chunk with
``finish_reason: "stop"`` and the ``autotts`` decision, the usage chunk if
``stream_options.include_usage``, and ``data: [DONE]``. A failure after the stream began
is an ``error`` event (OpenAI's clients raise it), then ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from collection.live.runner import LiveOptions
from collection.live.service import LiveAnswer, LiveService
from collection.serve.metrics import ServeMetrics
from collection.serve.openai_api import APIError, ChatRequest, chunk_body, completion_body, parse_chat_request, sse
from collection.serve.reply import decision, message_text, usage
from collection.serve.settings import ServeSettings
from collection.serve.upstream import REQUEST_TRACE, RequestTrace, ServeEndpoints, upstream_error

log = logging.getLogger("autotts.serve")

ControllerFactory = Callable[[str, "float | None"], Any]
CACHED_CONTROLLERS = 64


class ServeState:
    """The server's shared state: settings, controllers, live service, metrics.

    Args:
        settings: the operator's settings.
        make_controller: ``(method name, beta or None) -> controller``; a ValueError is a
            refused request (the command line passes :func:`agents.registry.make_controller`).
        default_method, default_beta: the controller a request gets without ``autotts.method``.
        prompts: the prompt builder (default: the collector's, over ``config.model``'s tokenizer).
        make_endpoints: ``(config, metrics) -> ServeEndpoints``, the upstream servers
            (default: :class:`ServeEndpoints`; tests pass a fake).
    """

    def __init__(
        self,
        settings: ServeSettings,
        make_controller: ControllerFactory,
        default_method: str,
        default_beta: float | None,
        prompts: Any = None,
        make_endpoints: Callable[[Any, ServeMetrics], ServeEndpoints] = ServeEndpoints,
    ) -> None:
        from collection.collect import default_prompts

        self.settings = settings.validate()
        self.make_controller = make_controller
        self.default_method = default_method
        self.default_beta = default_beta
        self.metrics = ServeMetrics()
        self.endpoints = make_endpoints(settings.config, self.metrics)
        self.prompts = prompts or default_prompts(settings.config)
        options = LiveOptions(pool_size=settings.pool_size, shuffle=settings.shuffle,
                              budget_tokens=settings.budget_tokens, kappa_probe=settings.kappa_probe)  # fmt: skip
        self.service = LiveService(settings.config, self.prompts, self.endpoints, options,
                                   max_workers=settings.max_inflight)  # fmt: skip
        self.in_flight = 0
        self.tasks: set[asyncio.Task] = set()
        self._abandoned: set[asyncio.Task] = set()
        self._controllers: OrderedDict[tuple[str, float | None], Any] = OrderedDict()
        self._prompts: OrderedDict[str, Any] = OrderedDict()
        self.controller(default_method, default_beta)  # a bad default fails at start, not at the first request

    # ------------------------------------------------------------------ pieces
    def controller(self, method: str, beta: float | None) -> Any:
        """The controller of ``(method, beta)``, built once (controllers keep no episode state)."""
        key = (method, beta)
        found = self._controllers.get(key)
        if found is None:
            try:
                found = self.make_controller(method, beta)
            except ValueError as err:
                raise APIError(400, f"'autotts.method' {method!r} at beta {beta}: {err}", "autotts.method") from None
            self._controllers[key] = found
            if len(self._controllers) > CACHED_CONTROLLERS:
                self._controllers.popitem(last=False)
        return found

    def prompts_for(self, system: str | None) -> Any:
        """The prompt builder of a request's system message (None: the operator's)."""
        if system is None:
            return self.prompts
        found = self._prompts.get(system)
        if found is None:
            config = replace(self.prompts.config, system_prompt=system)
            found = self._prompts[system] = type(self.prompts)(self.prompts.tokenizer, config)
            if len(self._prompts) > CACHED_CONTROLLERS:
                self._prompts.popitem(last=False)
        return found

    def authorize(self, request: Request) -> None:
        """401 unless the request carries the API key (when one is set)."""
        key = self.settings.api_key
        if not key:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise APIError(401, "missing or incorrect API key: send 'Authorization: Bearer KEY'", kind="invalid_request_error",
                           code="invalid_api_key")  # fmt: skip

    async def read_body(self, request: Request) -> bytes:
        """The body, refused with 413 beyond ``max_request_bytes``."""
        limit = self.settings.max_request_bytes
        length = request.headers.get("content-length", "")
        too_big = APIError(413, f"the request body is larger than this server's limit of {limit} bytes",
                           code="request_too_large")  # fmt: skip
        if length.isdigit() and int(length) > limit:
            raise too_big
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
        return b"".join(chunks)

    def admit(self) -> None:
        """Take a slot, or 429 with ``Retry-After`` when ``max_inflight`` requests are running."""
        if self.in_flight >= self.settings.max_inflight:
            raise APIError(429, f"this server is answering its limit of {self.settings.max_inflight} requests; retry "
                                "shortly", kind="rate_limit_error", code="too_many_requests",
                           headers={"Retry-After": "1"})  # fmt: skip
        self.in_flight += 1
        self.metrics.in_flight.set(self.in_flight)

    def release(self, _: Any = None) -> None:
        """Give the slot back (when the request's task is done, cancelled ones included)."""
        self.in_flight -= 1
        self.metrics.in_flight.set(self.in_flight)

    async def upstream_ready(self) -> None:
        """503 at once while the upstream is known to be down (it is checked again at most
        every ``health_interval`` seconds, so the server recovers when it returns)."""
        if self.endpoints.up:
            return
        try:
            up = await self.endpoints.refresh(min_interval=self.settings.health_interval)
        except ValueError as err:
            raise APIError(502, str(err), kind="upstream_error", code="upstream_error") from None
        if not up:
            raise APIError(503, f"the upstream model server ({', '.join(self.endpoints.endpoints)}) is unavailable "
                                f"({self.endpoints.last_error}); retry later", kind="service_unavailable",
                           code="upstream_unavailable", headers={"Retry-After": "5"})  # fmt: skip

    def start(self, chat: ChatRequest, controller: Any) -> tuple[asyncio.Task, RequestTrace]:
        """Start answering ``chat`` in a task of its own (its context carries the request's trace)."""
        trace = RequestTrace()
        options = LiveOptions(pool_size=self.settings.pool_size, shuffle=self.settings.shuffle,
                              budget_tokens=chat.budget_tokens, kappa_probe=self.settings.kappa_probe)  # fmt: skip
        metrics = self.metrics

        def run(episode: Any) -> Any:
            metrics.controllers_running.inc()
            try:
                return controller(episode)
            finally:
                metrics.controllers_running.dec()

        token = REQUEST_TRACE.set(trace)
        try:
            task = asyncio.get_running_loop().create_task(self.service.answer(
                run, chat.question, seed=chat.episode_seed, index=chat.seed, options=options,
                prompts=self.prompts_for(chat.system)))  # fmt: skip
        finally:
            REQUEST_TRACE.reset(token)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(self.release)
        return task, trace

    def abandon(self, task: asyncio.Task) -> None:
        """Cancel a request's task if it is still running (its client left); counted once."""
        if not task.done() and task not in self._abandoned:
            self._abandoned.add(task)
            task.add_done_callback(self._abandoned.discard)
            task.cancel()
            self.metrics.cancelled.inc()

    def failure(self, err: BaseException, trace: RequestTrace) -> APIError:
        """The reply to a request whose answer raised ``err``."""
        if isinstance(err, APIError):
            return err
        if trace.error is not None:
            return upstream_error(trace.error, self.endpoints.endpoints)
        if isinstance(err, ValueError) and "max_model_len" in str(err):
            return APIError(400, f"the question does not fit the model's context: {err}", "messages")
        log.exception("the controller failed", exc_info=err)
        return APIError(500, f"the controller failed: {type(err).__name__}: {err}", kind="server_error",
                        code="controller_error")  # fmt: skip

    def record(self, chat: ChatRequest, answer: LiveAnswer, trace: RequestTrace, seconds: float) -> None:
        """Count an answered request in the metrics."""
        m, r, s = self.metrics, answer.result, answer.stats
        m.requests.labels(chat.method, "200").inc()
        m.latency.labels(chat.method).observe(seconds)
        m.overhead.observe(max(0.0, seconds - trace.upstream_seconds))
        for kind, value in (("sampled", s.sampled_tokens), ("probe", s.probe_tokens), ("prompt", s.prompt_tokens),
                            ("cached_prompt", s.cached_prompt_tokens or 0)):  # fmt: skip
            m.tokens.labels(kind).inc(value)
        m.branches.inc(r.branches_opened)
        m.probes.inc(r.probes)
        m.stop_reasons.labels(r.stop_reason).inc()

    def reply(self, chat: ChatRequest, answer: LiveAnswer, trace: RequestTrace, seconds: float) -> dict[str, Any]:
        """The ``chat.completion`` body of an answer."""
        return completion_body(_request_id(), int(time.time()), self.settings.model_name, message_text(answer),
                               usage(answer), decision(answer, chat, trace, seconds))  # fmt: skip


# ---------------------------------------------------------------------- routes
def create_app(
    settings: ServeSettings,
    make_controller: ControllerFactory,
    default_method: str,
    default_beta: float | None = None,
    prompts: Any = None,
    make_endpoints: Callable[[Any, ServeMetrics], ServeEndpoints] = ServeEndpoints,
) -> Starlette:
    """The Starlette application of ``autotts serve`` (see the module docstring and
    :class:`ServeState` for the arguments). ``app.state.serve`` is the :class:`ServeState`."""
    state = ServeState(settings, make_controller, default_method, default_beta, prompts, make_endpoints)

    async def chat_completions(request: Request) -> Response:
        chat: ChatRequest | None = None
        try:
            state.authorize(request)
            chat = parse_chat_request(await state.read_body(request), settings, default_method, default_beta)
            controller = state.controller(chat.method, chat.beta)
            state.admit()
        except APIError as err:
            return _error(state, err, chat)
        try:
            await state.upstream_ready()
        except APIError as err:
            state.release()
            return _error(state, err, chat)
        started = time.perf_counter()
        task, trace = state.start(chat, controller)
        if chat.stream:
            # The background runs once the response has ended, also when the client left
            # before the stream's first chunk (then the stream's own cleanup never ran).
            return StreamingResponse(_stream(state, chat, task, trace, started), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                                     background=BackgroundTask(_abandon, state, task))  # fmt: skip
        watcher = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            state.abandon(task)  # the client left (or this handler was cancelled): cancel its branches
        if not task.done() or task.cancelled():
            await asyncio.wait({task})  # its batch in flight is cancelled by then
            return Response(status_code=499)  # nobody reads it
        err = task.exception()
        if err is not None:
            return _error(state, state.failure(err, trace), chat)
        answer = task.result()
        seconds = time.perf_counter() - started
        state.record(chat, answer, trace, seconds)
        return JSONResponse(state.reply(chat, answer, trace, seconds))

    async def models(request: Request) -> Response:
        try:
            state.authorize(request)
        except APIError as err:
            return _error(state, err)
        limit = settings.request_budget_limit
        card = {"id": settings.model_name, "object": "model", "created": int(STARTED), "owned_by": "autotts",
                "root": settings.upstream_model,
                "autotts": {"method": _spec(default_method, default_beta),
                            "allowed_methods": sorted({default_method, *settings.allowed_methods}),
                            "budget_tokens": settings.budget_tokens, "max_budget_tokens": limit,
                            "max_beta": settings.max_beta, "pool_size": settings.pool_size,
                            "interval_tokens": settings.config.interval_tokens,
                            "max_tokens_per_branch": settings.config.max_tokens,
                            "upstream": list(settings.config.endpoints)}}  # fmt: skip
        if state.endpoints.max_model_len:
            card["max_model_len"] = state.endpoints.max_model_len
        return JSONResponse({"object": "list", "data": [card]})

    async def health(request: Request) -> Response:
        try:
            up = await state.endpoints.refresh(min_interval=settings.health_interval)
        except ValueError as err:
            up, state.endpoints.last_error = False, str(err)
        body = {"status": "ok" if up else "upstream_unavailable", "requests_in_flight": state.in_flight,
                "max_inflight": settings.max_inflight,
                "upstream": {"urls": list(settings.config.endpoints), "model": settings.upstream_model, "up": up,
                             "error": state.endpoints.last_error or None}}  # fmt: skip
        return JSONResponse(body, status_code=200 if up else 503)

    async def metrics(request: Request) -> Response:
        try:
            state.authorize(request)
        except APIError as err:
            return _error(state, err)
        return Response(state.metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        message = (f"no route {request.method} {request.url.path}; this server answers POST /v1/chat/completions, "
                   "GET /v1/models, GET /health, GET /metrics")  # fmt: skip
        return JSONResponse(APIError(status, message).body(), status_code=status)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        error = APIError(500, f"internal error: {type(exc).__name__}: {exc}", kind="server_error", code="internal_error")
        return JSONResponse(error.body(), status_code=500)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not await state.endpoints.refresh():
            log.warning("the upstream %s is not reachable yet (%s); requests get 503 until it is",
                        ", ".join(settings.config.endpoints), state.endpoints.last_error)  # fmt: skip
        yield
        for task in list(state.tasks):
            task.cancel()
        await asyncio.gather(*state.tasks, return_exceptions=True)
        await state.service.aclose()

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: not_found, Exception: server_error})  # fmt: skip
    app.state.serve = state
    return app


STARTED = time.time()


def _spec(method: str, beta: float | None) -> str:
    return method if beta is None else f"{method}@{beta:g}"


def _request_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def _error(state: ServeState, err: APIError, chat: ChatRequest | None = None) -> JSONResponse:
    state.metrics.requests.labels(chat.method if chat else "", str(err.status)).inc()
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


async def _abandon(state: ServeState, task: asyncio.Task) -> None:
    """:meth:`ServeState.abandon` on the event loop (a synchronous background task would
    run in a worker thread)."""
    state.abandon(task)


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone (the body is read already, so the next ASGI
    message is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _stream(
    state: ServeState, chat: ChatRequest, task: asyncio.Task, trace: RequestTrace, started: float
) -> AsyncIterator[bytes]:
    """The server-sent events of a streamed answer (see the module docstring)."""
    request_id, created, model = _request_id(), int(time.time()), state.settings.model_name
    try:
        yield sse(chunk_body(request_id, created, model, {"role": "assistant", "content": ""}))
        while not task.done():
            await asyncio.wait({task}, timeout=state.settings.stream_interval)
            if not task.done():
                progress = {"event": "progress", "upstream_requests": trace.upstream_requests,
                            "generated_tokens": trace.generated_tokens,
                            "seconds": round(time.perf_counter() - started, 3)}  # fmt: skip
                yield sse(chunk_body(request_id, created, model, {}, autotts=progress))
        err = task.exception()
        if err is not None:
            failure = state.failure(err, trace)
            state.metrics.requests.labels(chat.method, str(failure.status)).inc()
            yield sse(failure.body())
            yield sse("[DONE]")
            return
        answer = task.result()
        seconds = time.perf_counter() - started
        state.record(chat, answer, trace, seconds)
        yield sse(chunk_body(request_id, created, model, {"content": message_text(answer)}))
        yield sse(chunk_body(request_id, created, model, {}, "stop", autotts=decision(answer, chat, trace, seconds)))
        if chat.include_usage:
            yield sse(chunk_body(request_id, created, model, None, usage=usage(answer)))
        yield sse("[DONE]")
    finally:
        state.abandon(task)  # the client left: cancel its branches
