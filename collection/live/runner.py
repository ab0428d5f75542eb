"""Run controllers live: many episodes in flight, their requests gathered into batches.

Controllers stay ordinary blocking Python. :func:`run_live` runs each episode in its own
greenlet; when an episode needs the model, its requester switches back to the hub, which
waits until every running episode is waiting too, sends all their requests as one batch
(identical requests once) and resumes each episode with its completions. One
``Generator.generate`` call per round keeps vLLM's batches full and lets a probe find its
branch's prefix in the prefix cache.

For an application that is itself asynchronous (a web server), :class:`ThreadRequester`
is the other way to feed a blocking controller: the controller runs in a worker thread
and each of its batches is a coroutine on the application's event loop (see
:mod:`collection.live.service`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from autotts_gym.engine.protocol import EpisodeResult
from autotts_gym.evaluation.orders import branch_order
from collection.config import CollectConfig
from collection.generation import Completion, Generator, Request
from collection.live.episode import LiveEpisode, LiveStats, Requester
from collection.live.pool import QuestionPool
from collection.questions import Question


@dataclass(frozen=True)
class LiveOptions:
    """How live episodes are built (the replay protocol's options).

    Attributes:
        pool_size: branches per question an episode may open (the replay pool size).
        shuffle: branch order of each (question, seed), as in replay.
        budget_tokens / budget_intervals / kappa_probe: as in replay.
    """

    pool_size: int = 128
    shuffle: str = "release"
    budget_tokens: float | None = None
    budget_intervals: float | None = None
    kappa_probe: float = 0.0


@dataclass
class LiveRecord:
    """One finished (or failed) live episode.

    Attributes:
        question, seed: which episode.
        result: the engine's result (None if the episode failed).
        stats: what it asked of the model.
        seconds: wall time from its first action to its answer.
        error: why it failed ("" if it did not).
    """

    question: int
    seed: int
    result: EpisodeResult | None
    stats: LiveStats
    seconds: float
    error: str = ""


class LiveBackend:
    """The questions of a run and their pools; builds live episodes.

    Args:
        config: collection settings (Delta, sampling, probe suffix/tokens, base seed).
        questions: the question set.
        prompts: a :class:`~collection.prompts.PromptBuilder` (``prompt_ids``,
            ``probe_suffix``, ``decode``).
        options: pool size, order, budget, kappa_probe.
        max_model_len: context length; a branch's token cap leaves room for a probe.
    """

    def __init__(
        self,
        config: CollectConfig,
        questions: Sequence[Question],
        prompts: Any,
        options: LiveOptions,
        max_model_len: int | None = None,
    ) -> None:
        self.config = config
        self.questions = list(questions)
        self.prompts = prompts
        self.options = options
        self.max_model_len = max_model_len
        self.pools: dict[int, QuestionPool] = {}

    def pool(self, question: int) -> QuestionPool:
        """The pool of ``question`` (made on first use, then shared by all its episodes)."""
        pool = self.pools.get(question)
        if pool is None:
            pool = make_pool(self.config, self.prompts, self.questions[question], self.options.pool_size,
                             self.max_model_len)  # fmt: skip
            self.pools[question] = pool
        return pool

    def episode(self, question: int, seed: int, requester: Requester, trace: bool = False) -> LiveEpisode:
        """The live episode of ``(question, seed)``: the replay order of that seed."""
        o = self.options
        pool = self.pool(question)
        order = branch_order(o.pool_size, seed, question, o.shuffle)
        return LiveEpisode(
            pool, order, requester, budget_tokens=o.budget_tokens, budget_intervals=o.budget_intervals,
            kappa_probe=o.kappa_probe, trace=trace,
        )  # fmt: skip


def make_pool(
    config: CollectConfig, prompts: Any, question: Question, pool_size: int, max_model_len: int | None = None
) -> QuestionPool:
    """A fresh pool for ``question``; a branch's token cap leaves room for a probe within
    ``max_model_len`` (as ``TrajectoryCollector.token_cap``)."""
    prompt = tuple(prompts.prompt_ids(question))
    suffix = tuple(prompts.probe_suffix)
    cap = config.max_tokens
    if max_model_len is not None:
        room = max_model_len - len(prompt) - len(suffix) - config.probe_tokens
        if room < 1:
            raise ValueError(
                f"question {question.index}: its prompt has {len(prompt)} tokens; with the probe suffix and "
                f"{config.probe_tokens} probe tokens it does not fit max_model_len {max_model_len}"
            )
        cap = min(cap, room)
    return QuestionPool(question.index, question.text, question.gold, prompt, config, pool_size, cap, suffix,
                        prompts.decode)  # fmt: skip


@dataclass
class RunStats:
    """Counters of one :func:`run_live` call."""

    rounds: int = 0
    requests: int = 0
    deduplicated: int = 0
    generate_seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    @property
    def seconds(self) -> float:
        """Wall time since the run started."""
        return time.perf_counter() - self.started


def run_live(
    backend: LiveBackend,
    controller: Callable[[Any], EpisodeResult],
    episodes: Iterable[tuple[int, int]],
    generator: Generator,
    max_in_flight: int = 64,
    on_record: Callable[[LiveRecord], None] | None = None,
    stats: RunStats | None = None,
) -> list[LiveRecord]:
    """Run ``controller`` on every ``(question, seed)`` with up to ``max_in_flight``
    episodes at once, their requests batched onto ``generator``.

    A request that fails (a generator with ``generate_settled`` reports failures per
    request; otherwise an exception ends the run) fails only its episode, which is
    recorded with the error. ``on_record`` sees each record as its episode ends (write
    it out there: a run stopped by Ctrl-C keeps what finished).
    """
    import greenlet

    hub = greenlet.getcurrent()
    stats = stats if stats is not None else RunStats()
    records: list[LiveRecord] = []
    todo = iter(episodes)

    def requester(requests: Sequence[Request]) -> list[Completion]:
        return hub.switch(list(requests))

    def play(question: int, seed: int) -> LiveRecord:
        started = time.perf_counter()
        episode = backend.episode(question, seed, requester)
        try:
            result = controller(episode)
        except greenlet.GreenletExit:
            raise
        except Exception as err:  # a failed request or a controller's bug: recorded, the run goes on
            return LiveRecord(question, seed, None, episode.live_stats, time.perf_counter() - started,
                              f"{type(err).__name__}: {err}")
        return LiveRecord(question, seed, result, episode.live_stats, time.perf_counter() - started)

    def finish(record: LiveRecord) -> None:
        records.append(record)
        if on_record is not None:
            on_record(record)

    waiting: list[tuple[Any, list[Request]]] = []

    def advance(g: Any, value: Any, throw: BaseException | None = None) -> None:
        out = g.throw(throw) if throw is not None else g.switch(value)
        if g.dead:
            finish(out)
            start_next()
        else:
            waiting.append((g, out))

    def start_next() -> None:
        for question, seed in todo:
            g = greenlet.greenlet(play)
            out = g.switch(question, seed)
            if g.dead:
                finish(out)
                continue
            waiting.append((g, out))
            return

    for _ in range(max_in_flight):
        start_next()
    settle = getattr(generator, "generate_settled", None)
    try:
        while waiting:
            batch, groups = waiting, []
            waiting = []
            unique: dict[Request, int] = {}
            for _, requests in batch:
                groups.append([unique.setdefault(r, len(unique)) for r in requests])
            flat = list(unique)
            stats.rounds += 1
            stats.requests += len(flat)
            stats.deduplicated += sum(map(len, groups)) - len(flat)
            started = time.perf_counter()
            outs: list[Any] = settle(flat) if settle is not None else generator.generate(flat)
            stats.generate_seconds += time.perf_counter() - started
            for (g, _), index in zip(batch, groups):
                mine = [outs[i] for i in index]
                failed = next((c for c in mine if isinstance(c, BaseException)), None)
                advance(g, mine, throw=failed)
    finally:
        for g, _ in waiting:  # interrupted: end the episodes still waiting
            g.throw(greenlet.GreenletExit)
    return records


class ThreadRequester:
    """A requester for a controller running in a worker thread: each batch is handed to
    ``complete`` (an ``async`` function of the requests) on ``loop`` and the thread waits
    for it. Thread-safe; many controllers may share one.

    Args:
        complete: ``async (requests) -> completions``.
        loop: the running event loop that owns ``complete``'s resources.
    """

    def __init__(self, complete: Callable[[Sequence[Request]], Any], loop: asyncio.AbstractEventLoop) -> None:
        self.complete = complete
        self.loop = loop
        self.pending: set[Future] = set()

    def __call__(self, requests: Sequence[Request]) -> list[Completion]:
        future = asyncio.run_coroutine_threadsafe(self.complete(list(requests)), self.loop)
        self.pending.add(future)
        try:
            return future.result()
        finally:
            self.pending.discard(future)

    def cancel(self) -> None:
        """Cancel the batches in flight (the waiting controller then raises)."""
        for future in list(self.pending):
            future.cancel()
