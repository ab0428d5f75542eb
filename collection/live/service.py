"""Run controllers live from asynchronous code (the base of ``autotts serve``, issue 15).

A controller is blocking Python; :class:`LiveService` runs each one in a worker thread
and turns every batch of requests it makes into one ``await`` on the service's event
loop (:class:`~collection.live.runner.ThreadRequester` over
:class:`~collection.live.endpoints.AsyncEndpoints`), so many requests of a web server
share the upstream servers, each with its own episode::

    service = LiveService(config, prompts, AsyncEndpoints(config))
    await service.start()
    answer = await service.answer(controller, "What is 2 plus 3?")
    answer.result.answer_text, answer.text, answer.stats.sampled_tokens
    await service.aclose()

Cancelling the task that awaits :meth:`LiveService.answer` cancels the batch in flight
(its HTTP requests are dropped) and the controller's thread ends at its next request.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from autotts_gym.engine.protocol import EpisodeResult
from autotts_gym.evaluation.orders import branch_order
from collection.config import CollectConfig
from collection.live.endpoints import AsyncEndpoints
from collection.live.episode import LiveEpisode, LiveStats
from collection.live.runner import LiveOptions, ThreadRequester, make_pool
from collection.questions import Question


@dataclass
class LiveAnswer:
    """A controller's answer to one question.

    Attributes:
        result: the episode's result (answer, tokens charged, branches, probes, stop reason).
        text: the generated text of the first finished branch whose final answer is the
            chosen one ("" if none finished with it).
        stats: what the episode asked of the model (sampled, probe and prompt tokens).
        seconds: wall time.
        episode: the finished episode (its views: depths, revealed probes, ...).
    """

    result: EpisodeResult
    text: str
    stats: LiveStats
    seconds: float
    episode: LiveEpisode


class LiveService:
    """Answers questions live with any controller, from async code (module docstring).

    Args:
        config: the collector's settings (prompt, Delta, sampling, probe suffix/tokens, seed).
        prompts: a :class:`~collection.prompts.PromptBuilder`.
        endpoints: the upstream servers.
        options: pool size, order, budget and kappa_probe of each episode.
        max_workers: controllers running at once (threads).
    """

    def __init__(
        self,
        config: CollectConfig,
        prompts: Any,
        endpoints: AsyncEndpoints,
        options: LiveOptions | None = None,
        max_workers: int = 64,
    ) -> None:
        self.config = config
        self.prompts = prompts
        self.endpoints = endpoints
        self.options = options or LiveOptions(pool_size=config.trajectories)
        self._threads = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="autotts-live")

    async def start(self) -> None:
        """Check the upstream servers."""
        await self.endpoints.start()

    async def answer(
        self,
        controller: Any,
        question: str,
        gold: str = "",
        seed: int = 0,
        index: int = 0,
        options: LiveOptions | None = None,
    ) -> LiveAnswer:
        """Run ``controller`` live on ``question`` and return its answer.

        Args:
            controller: any controller (``controller(episode) -> EpisodeResult``).
            question: the question text (rendered with the config's prompt template).
            gold: the gold answer if known (only grades ``result.correct``).
            seed: the episode seed (branch order and, with ``index``, the sampling seeds).
            index: the question's index in the sampling seeds (same index and seed: same tokens).
            options: this request's pool size, budget and kappa_probe (default: the service's).
        """
        o = options or self.options
        loop = asyncio.get_running_loop()
        pool = make_pool(self.config, self.prompts, Question(index, question, gold), o.pool_size,
                         self.endpoints.max_model_len)
        requester = ThreadRequester(self.endpoints.complete, loop)
        episode = LiveEpisode(
            pool, branch_order(o.pool_size, seed, index, o.shuffle), requester,
            budget_tokens=o.budget_tokens, budget_intervals=o.budget_intervals, kappa_probe=o.kappa_probe,
        )  # fmt: skip
        started = time.perf_counter()
        try:
            result = await loop.run_in_executor(self._threads, controller, episode)
        except asyncio.CancelledError:
            requester.cancel()
            raise
        return LiveAnswer(result, episode.answer_branch_text(result.answer), episode.live_stats,
                          time.perf_counter() - started, episode)  # fmt: skip

    async def aclose(self) -> None:
        """Stop the worker threads and close the upstream clients."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        await self.endpoints.aclose()

