"""The live episode: the replay engine's :class:`~autotts_gym.engine.Episode` over a pool
that is decoded when an action needs it.

:class:`LiveEpisode` is the engine's Episode (through
:class:`~autotts_gym.recorded.HookedEpisode`) with one change: before the engine reads a
branch's next interval, a probe answer or a whole branch, the missing piece is requested
from the model (through a *requester*: any blocking ``requests -> completions`` call)
and written into the shared :class:`~collection.live.pool.QuestionPool`. Everything
else (admissibility, cost accounting, budgets, kappa_probe, the aggregation rule, the
result) is the engine's own code, so a live episode and its replay cannot disagree on
what an action costs or reveals.

Composites that touch many branches (``open_and_probe_many``,
``continue_and_probe_many``, ``read_whole_many``) first ask for the pieces of all their
branches together (one round of requests per interval), so they cost one model round
trip per interval, not one per branch; then the engine applies them in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from autotts_gym.engine import Episode
from autotts_gym.engine.protocol import ACTIVE, InvalidAction
from autotts_gym.engine.recorded import HookedEpisode
from collection.generation import Completion, Request
from collection.live.pool import CHUNK, PROBE, Need, QuestionPool

Requester = Callable[[Sequence[Request]], list[Completion]]
# Called with each piece an episode decoded: (kind "chunk" or "probe", pool branch, depth,
# the new token ids, the answer string: a probe's, or a finished branch's final, else "").
Observer = Callable[[str, int, int, tuple[int, ...], str], None]


@dataclass
class LiveStats:
    """What one live episode asked of the model (its own requests only: pieces another
    episode of the same question already decoded cost it nothing).

    Attributes:
        requests: requests sent.
        rounds: model round trips (batches) the episode waited for.
        sampled_tokens: trajectory tokens generated for this episode.
        probe_tokens: probe tokens generated for this episode.
        prompt_tokens: prompt tokens of its requests.
        cached_prompt_tokens: of those, served from the prefix cache (None if the
            backend does not report it).
        probe_requests: probe requests sent.
        probe_prompt_tokens, probe_cached_tokens: their prompt tokens, and those served
            from the prefix cache (None if the backend does not say).
        wait_seconds: wall time spent waiting for the model.
    """

    requests: int = 0
    rounds: int = 0
    sampled_tokens: int = 0
    probe_tokens: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int | None = 0
    probe_requests: int = 0
    probe_prompt_tokens: int = 0
    probe_cached_tokens: int | None = 0
    wait_seconds: float = 0.0


class LiveEpisode(HookedEpisode):
    """One question answered live, with the engine's semantics (see the module docstring).

    Args:
        pool: the question's pool (shared by every episode of that question).
        order: pool branches in the order BRANCH opens them.
        requester: completes a batch of requests (blocking).
        budget_intervals, budget_tokens, kappa_probe, aggregate, trace: as for
            :class:`autotts_gym.engine.Episode`.
        observer: called with every piece this episode decoded (see :data:`Observer`),
            e.g. to stream a branch's text as it grows; it runs in the controller's
            thread (or greenlet) and must be quick.
    """

    __slots__ = ("live_pool", "live_stats", "_requester", "_observer")

    def __init__(
        self,
        pool: QuestionPool,
        order: Sequence[int],
        requester: Requester,
        *,
        budget_intervals: float | None = None,
        budget_tokens: float | None = None,
        kappa_probe: float = 0.0,
        aggregate: Callable[[Episode], int] | None = None,
        trace: bool = False,
        observer: Observer | None = None,
    ) -> None:
        super().__init__(
            pool.data,  # type: ignore[arg-type]  # a QuestionData look-alike whose lists grow
            order,
            budget_intervals=budget_intervals,
            budget_tokens=budget_tokens,
            kappa_probe=kappa_probe,
            aggregate=aggregate,
            trace=trace,
        )
        self.live_pool = pool
        self.live_stats = LiveStats()
        self._requester = requester
        self._observer = observer

    # --------------------------------------------------------------- texts
    def branch_text(self, j: int) -> str:
        """The text branch j generated so far."""
        pool = self.live_pool
        return pool.decode(pool.tokens[self._pool[j]])

    def answer_branch_text(self, answer: int) -> str:
        """The text of the first branch (in finishing order) that finished with ``answer``
        ("" if none did)."""
        return next((self.branch_text(j) for j in self._finished_order if self._latest[j] == answer), "")

    # ------------------------------------------------------------ decoding
    def ensure(self, needs: Sequence[Need]) -> None:
        """Decode every missing piece of ``needs`` (chunks up to their depth, then probes),
        one round of requests per step; pieces already decoded cost nothing."""
        pool = self.live_pool
        while True:
            todo: dict[tuple[int, int, int], Need] = {}
            waiting = False
            for need in needs:
                if not pool.missing(need):
                    continue
                if need.kind == CHUNK:
                    todo.setdefault((CHUNK, need.branch, 0), need)
                elif pool.chunks[need.branch] >= need.depth:
                    todo.setdefault((PROBE, need.branch, need.depth), need)
                else:
                    waiting = True  # its chunk comes first
            if not todo:
                if waiting:
                    raise InvalidAction(f"question {self.question.index}: a probe beyond the end of its branch")
                return
            self._fetch(list(todo.values()))

    def _fetch(self, needs: list[Need]) -> None:
        pool, stats = self.live_pool, self.live_stats
        requests = [pool.request(n) for n in needs]
        started = time.perf_counter()
        completions = self._requester(requests)
        stats.wait_seconds += time.perf_counter() - started
        if len(completions) != len(requests):
            raise RuntimeError(f"the backend returned {len(completions)} completions for {len(requests)} requests")
        stats.rounds += 1
        for need, request, completion in zip(needs, requests, completions):
            if not pool.apply(need, request, completion):
                continue
            stats.requests += 1
            stats.prompt_tokens += len(request.prompt)
            if completion.cached_prompt_tokens is None or stats.cached_prompt_tokens is None:
                stats.cached_prompt_tokens = None
            else:
                stats.cached_prompt_tokens += completion.cached_prompt_tokens
            if need.kind == PROBE:
                stats.probe_tokens += len(completion.tokens)
                stats.probe_requests += 1
                stats.probe_prompt_tokens += len(request.prompt)
                if completion.cached_prompt_tokens is None or stats.probe_cached_tokens is None:
                    stats.probe_cached_tokens = None
                else:
                    stats.probe_cached_tokens += completion.cached_prompt_tokens
            else:
                stats.sampled_tokens += len(completion.tokens)
            if self._observer is not None:
                self._observe(need, completion)

    def _observe(self, need: Need, completion: Completion) -> None:
        q, b, d = self.live_pool.data, need.branch, need.depth
        if need.kind == PROBE:
            self._observer("probe", b, d, completion.tokens, q.vocab[q.answer_at[b][d]])
        else:
            final = q.vocab[q.final_answer[b]] if self.live_pool.ended[b] else ""
            self._observer("chunk", b, self.live_pool.chunks[b], completion.tokens, final)

    def _ensure_whole(self, branches: Sequence[int]) -> None:
        # Decode pool branches to their end, all together (one round per interval).
        pool = self.live_pool
        while True:
            needs = [Need(CHUNK, b, pool.chunks[b] + 1) for b in branches if not pool.ended[b]]
            if not needs:
                return
            self.ensure(needs)

    # ------------------------------------------------------------------ hooks
    def before_step(self, j: int, depth: int) -> None:
        """Decode branch j's interval ``depth`` if no episode did yet."""
        self.ensure((Need(CHUNK, self._pool[j], depth),))

    def before_probe(self, j: int, depth: int) -> None:
        """Decode branch j's probe at ``depth`` if no episode did yet."""
        self.ensure((Need(PROBE, self._pool[j], depth),))

    def before_whole(self, branch: int) -> None:
        """Decode pool branch ``branch`` to its end."""
        self._ensure_whole((branch,))

    def before_mask(self) -> None:
        """Decode what the action mask of :mod:`autotts_gym.envs.spaces` needs to agree with
        replay (a trained policy calls it before each observation).

        Under a budget, the mask's READ_WHOLE bit says whether the next branch fits whole:
        it reads the branch's length, which a live branch knows once it ended. So the next
        unopened branch is decoded until it ended or is known not to fit (a branch ``c``
        chunks in, not ended, needs at least ``c + 1`` intervals, which is what a recorded
        store that cut it there counts). Live pays those tokens; the MDP charges nothing.
        """
        budget = self.budget
        j = len(self._pool)
        if budget is None or self.result is not None or j >= len(self.order):
            return
        pool, b = self.live_pool, self.order[j]
        while not pool.ended[b] and self.cost + (pool.chunks[b] + 1) <= budget:
            self.ensure((Need(CHUNK, b, pool.chunks[b] + 1),))

    # ------------------------- composites: decode all their branches together
    def open_and_probe_many(self, n: int) -> list[int]:
        """:meth:`open_and_probe` ``n`` times; the first intervals and probes of all the
        new branches are decoded together."""
        if n < 0:
            raise ValueError(f"open_and_probe_many: n must be >= 0, got {n}")
        if self.result is None:
            j0 = len(self._pool)
            fits = self._steps_that_fit(1 + self._kappa)
            new = self.order[j0 : j0 + min(n, fits)]
            self.ensure([Need(CHUNK, b, 1) for b in new])
            self.ensure([Need(PROBE, b, 1) for b in new if not self._ends_by(b, 1)])
        return super().open_and_probe_many(n)

    def continue_and_probe_many(self, branches: Sequence[int], bursts: Sequence[int] | None = None) -> list[int]:
        """The engine's ``continue_and_probe_many``; the intervals and probes of all the
        branches are decoded together, one round per interval of the longest burst."""
        if self.result is None:
            self._prefetch_steps(branches, bursts)
        return super().continue_and_probe_many(branches, bursts)

    def read_whole_many(self, n: int) -> list[int]:
        """:meth:`read_whole` ``n`` times; the branches are decoded together."""
        if n < 0:
            raise ValueError(f"read_whole_many: n must be >= 0, got {n}")
        if self.result is None:
            j0 = len(self._pool)
            self._ensure_whole(self.order[j0 : j0 + min(n, self._steps_that_fit(1))])
        return super().read_whole_many(n)

    # -------------------------------------------------------------- helpers
    def _steps_that_fit(self, step_cost: float) -> int:
        # How many steps of step_cost intervals the budget admits (at least).
        if self._budget is None:
            return len(self.order)
        room = self._budget - self.cost
        return 0 if room < 1 else int(room // max(step_cost, 1))

    def _ends_by(self, b: int, depth: int) -> bool:
        pool = self.live_pool
        return pool.ended[b] and self.question.num_probes[b] < depth

    def _prefetch_steps(self, branches: Sequence[int], bursts: Sequence[int] | None) -> None:
        # Round r decodes interval r of every branch still stepping, with the probes of
        # round r - 1 (a branch that ends stops; the budget bounds the total).
        plan = []
        for i, j in enumerate(branches):
            if 0 <= j < len(self._status) and self._status[j] == ACTIVE:
                plan.append((self._pool[j], self._depth[j], 1 if bursts is None else max(1, int(bursts[i]))))
        room = self._steps_that_fit(1 + self._kappa)
        if room <= 0 or not plan:
            return
        longest = max(burst for _, _, burst in plan)
        probes: list[Need] = []
        for r in range(1, longest + 1):
            chunks = []
            for b, d0, burst in plan:
                if burst >= r and room > 0 and not self._ends_by(b, d0 + r - 1):
                    chunks.append(Need(CHUNK, b, d0 + r))
                    room -= 1
            self.ensure(chunks + probes)
            probes = [Need(PROBE, n.branch, n.depth) for n in chunks if not self._ends_by(n.branch, n.depth)]
        self.ensure(probes)

