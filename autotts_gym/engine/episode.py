"""The replay MDP engine: the one place where the semantics of an episode live.

An :class:`Episode` replays one question with one branch order. Branches are numbered
``0, 1, ...`` in the order they were opened; the ``j``-th opened branch is pool branch
``order[j]``. The actions are those of the AutoTTS MDP (facts section 2):

* :meth:`Episode.branch` (BRANCH): open the next branch and decode its first interval.
* :meth:`Episode.continue_branch` (CONTINUE(j)): decode one more interval of branch j.
* :meth:`Episode.probe` (PROBE(j)): reveal the answer of branch j at its current depth.
* :meth:`Episode.prune` (PRUNE(j)): deactivate branch j; what it revealed stays.
* :meth:`Episode.answer` (ANSWER): end the episode with an answer.

Cost accounting (facts section 4). A branch stepped interval by interval is charged
``Delta`` tokens per step while probe answers remain; the step after its last probe
reveals the final answer, is charged ``max(0, total - charged so far)`` and finishes the
branch. A branch read whole (:meth:`Episode.read_whole`) is charged exactly its total.
The finishing step reveals the final answer without a PROBE. A finished branch leaves
the active set (nothing is left to decode or probe).

The MDP cost is ``sum of depths + kappa_probe * probes`` in intervals; a budget (given in
intervals, or in tokens and converted at ``Delta`` tokens per interval) admits BRANCH and
CONTINUE only while ``cost + 1 <= budget`` and PROBE while ``cost + kappa_probe <=
budget``. An inadmissible action raises :class:`InvalidAction`.

Composites that match how published controllers are written: :meth:`open_and_probe`,
:meth:`open_and_probe_many`, :meth:`continue_and_probe`, :meth:`continue_and_probe_many`,
:meth:`read_whole`, :meth:`read_whole_many`. Each is its primitives in a row: opening a
branch, stepping it and probing it are written once (``_open``, ``_step``, ``_probe``).

This file is the engine: ``pip install`` compiles it with Cython when a C compiler is
present (``episode.pxd`` beside it declares the C types of its state and locals), and
the same file runs as plain Python otherwise (see ``setup.py``; identical results).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

try:
    import cython
except ImportError:  # no Cython installed: plain Python, where its directives change nothing
    from autotts_gym.utils import no_cython as cython

from autotts_gym.data.store import QuestionData
from autotts_gym.engine.protocol import (  # noqa: F401  (re-exported: the engine's public names)
    ACTIVE,
    FINISHED,
    NO_ANSWER_ID,
    PRUNED,
    PUBLIC_ACTIONS,
    PUBLIC_VIEWS,
    BudgetExceeded,
    EpisodeResult,
    InvalidAction,
    check_answer_id,
    check_reason,
)
from autotts_gym.engine.views import BranchViews
from autotts_gym.engine.voting import majority

Aggregator = Callable[["Episode"], int]


def default_aggregate(episode: Episode) -> int:
    """Majority over revealed final answers (in finishing order, first-seen ties); with
    none, majority over the latest revealed answers of unpruned branches (opening
    order); with nothing revealed, no answer (-1)."""
    finals = episode.finished_answers
    if finals:
        return majority(finals)[0]
    latest = [a for j, a in enumerate(episode.latest_answers) if a >= 0 and episode.status(j) != PRUNED]
    return majority(latest)[0] if latest else NO_ANSWER_ID


# Orders already checked, by identity: the release orders are cached tuples, so most
# episodes skip the scans. Bounded, as numpy orders are fresh tuples every reset.
_CHECKED_ORDERS: dict[int, tuple[Sequence[int], int]] = {}


def _check_order(order: Sequence[int], question: QuestionData) -> None:
    n = question.num_branches
    seen = _CHECKED_ORDERS.get(id(order))
    if seen is not None and seen[0] is order and seen[1] == n:
        return
    if order and (min(order) < 0 or max(order) >= n):  # C-level scans: this runs every reset
        bad = next(b for b in order if not 0 <= b < n)
        raise ValueError(f"question {question.index}: branch order names pool branch {bad}; the pool has {n}")
    if len(set(order)) != len(order):
        raise ValueError(f"question {question.index}: branch order repeats a branch")
    if isinstance(order, tuple):  # immutable, so the check stays true
        if len(_CHECKED_ORDERS) >= 4096:
            _CHECKED_ORDERS.clear()
        _CHECKED_ORDERS[id(order)] = (order, n)


def _check_burst(burst: int, j: int) -> int:
    if burst < 1:
        raise ValueError(f"continue_and_probe_many: burst {burst} for branch {j}; bursts must be >= 1")
    return burst


class Episode(BranchViews):
    """One replayed question with a fixed branch order.

    Args:
        question: the question's data (``Split.question(i)``).
        order: pool indices in the order new branches are opened; its length bounds
            how many branches can be opened (use it to subsample the pool).
        budget_intervals: budget on the MDP cost in intervals (None: unlimited).
        budget_tokens: budget in tokens, converted to ``floor(budget / Delta)``
            intervals. Give at most one of the two.
        kappa_probe: cost of one PROBE in intervals (0 in the paper).
        aggregate: maps the final state to an answer when :meth:`answer` is called
            without one; default :func:`default_aggregate`.
        trace: if True, record one dict per primitive action in :attr:`trace`.
    """

    # The per-branch lists the views read are BranchViews' slots.
    __slots__ = (
        "question",
        "order",
        "_num_probes",
        "_answer_at",
        "_tokens_at",
        "_final_answer",
        "_total_tokens",
        "_pool",
        "_whole",
        "_whole_depth",
        "_finish_tokens",
        "_finished_stepwise",
        "_n_prunes",
        "_probe_log",
        "_budget",
        "_kappa",
        "_aggregate",
        "_hooked",
        "result",
        "trace",
    )

    def __init__(
        self,
        question: QuestionData,
        order: Sequence[int],
        *,
        budget_intervals: float | None = None,
        budget_tokens: float | None = None,
        kappa_probe: float = 0.0,
        aggregate: Aggregator | None = None,
        trace: bool = False,
    ) -> None:
        if budget_intervals is not None and budget_tokens is not None:
            raise ValueError("give budget_intervals or budget_tokens, not both")
        if budget_tokens is not None:
            budget_intervals = math.floor(budget_tokens / question.interval_tokens)
        _check_order(order, question)
        self.question = question
        self.order = order
        # The question's columns the actions read, held once.
        self._num_probes = question.num_probes
        self._answer_at = question.answer_at
        self._tokens_at = question.tokens_at
        self._final_answer = question.final_answer
        self._total_tokens = question.total_tokens
        self._pool: list[int] = []  # pool index of each opened branch
        self._depth: list[int] = []
        # Tokens, intervals and actions are derived from depths (see the views), so a step
        # updates only the branch it touches. What depths alone cannot give:
        self._whole: set[int] = set()  # branches read whole (charged exactly their total)
        self._whole_depth = 0  # sum of the depths of branches read whole
        self._finish_tokens = 0  # finishing-step charges, plus the totals of whole reads
        self._finished_stepwise = 0  # branches finished interval by interval
        self._n_prunes = 0
        self._status: list[int] = []
        self._active: list[int] = []  # ACTIVE branches in opening order, kept incrementally
        self._probed_at: list[int] = []  # depth of the last PROBE, -1 if none
        self._latest: list[int] = []  # latest revealed answer, -1 if none
        self._finals: list[int] = []  # final answers in finishing order
        self._finished_order: list[int] = []  # branches in finishing order
        # Revealed probes as a flat log: branch, depth, branch, depth, ... (the answer is
        # answer_at[pool[branch]][depth]). Flat ints allocate nothing on the hot path.
        self._probe_log: list[int] = []
        self._vote: tuple[int, tuple[int, int, int]] = (0, (NO_ANSWER_ID, 0, 0))  # (pool size, its vote)
        self._budget = budget_intervals
        self._kappa = kappa_probe
        self._aggregate = aggregate or default_aggregate
        # A backend whose data is decoded on demand or may be missing defines hooks the
        # engine calls before it reads a branch's data: before_step(j, depth),
        # before_probe(j, depth), before_whole(pool_branch) (autotts_gym.engine.recorded).
        self._hooked = hasattr(self, "before_step")
        self.result: EpisodeResult | None = None
        self.trace: list[dict[str, Any]] | None = [] if trace else None

    # ================================================================ views
    @property
    def done(self) -> bool:
        """True once ANSWER was taken."""
        return self.result is not None

    @property
    def num_available(self) -> int:
        """Branches that can be opened in all (the length of the order)."""
        return len(self.order)

    @property
    def can_branch(self) -> bool:
        """True if BRANCH is admissible now."""
        return self.result is None and len(self._pool) < len(self.order) and self._fits(1)

    @property
    def revealed_probes(self) -> list[tuple[int, int, int]]:
        """Omega_t: every ``(branch, depth, answer)`` revealed by PROBE, in order."""
        log, pool, answer_at = self._probe_log, self._pool, self.question.answer_at
        return [(j, d, answer_at[pool[j]][d]) for j, d in zip(log[::2], log[1::2])]

    def probe_confidence(self, j: int, depth: int | None = None) -> float:
        """The model's confidence in the probe of branch j at ``depth`` (default: the
        current one), if the store records it and it was revealed; NaN otherwise."""
        d = self._depth[j] if depth is None else depth
        conf = self.question.probe_confidence
        if conf is None or (self._probed_at[j] < d and not any(pj == j and pd == d for pj, pd in zip(self._probe_log[::2], self._probe_log[1::2]))):
            return math.nan
        return conf[self._pool[j]][d]

    @property
    def tokens(self) -> int:
        """Tokens charged so far, all branches together."""
        # Every stepwise interval but a finishing one costs Delta; the rest is recorded.
        stepwise = sum(self._depth) - self._whole_depth - self._finished_stepwise
        return stepwise * self.question.interval_tokens + self._finish_tokens

    def branch_tokens(self, j: int) -> int:
        """Tokens charged to branch j so far."""
        b = self._pool[j]
        return self.question.total_tokens[b] if j in self._whole else self.question.tokens_at[b][self._depth[j]]

    @property
    def sequential_tokens(self) -> int:
        """Tokens of the longest branch so far (latency when branches run in parallel)."""
        q, whole = self.question, self._whole
        if not whole:
            tokens_at = q.tokens_at
            return max([tokens_at[b][d] for b, d in zip(self._pool, self._depth)], default=0)
        if len(whole) == len(self._pool):  # the full-read baselines
            return max(map(q.total_tokens.__getitem__, self._pool))
        return max(map(self.branch_tokens, range(len(self._pool))), default=0)

    @property
    def cost(self) -> float:
        """The MDP cost in intervals: sum of depths + kappa_probe x probes."""
        return sum(self._depth) + self._kappa * (len(self._probe_log) // 2)

    @property
    def budget(self) -> float | None:
        """The budget in intervals (None: unlimited)."""
        return self._budget

    @property
    def kappa_probe(self) -> float:
        """Cost of one PROBE in intervals."""
        return self._kappa

    @property
    def remaining_budget(self) -> float:
        """Intervals left before the budget binds (inf without budget)."""
        return math.inf if self._budget is None else self._budget - self.cost

    @property
    def num_actions(self) -> int:
        """Primitive actions taken so far (a whole read counts as one)."""
        # A stepwise branch took one BRANCH and depth - 1 CONTINUEs.
        taken = sum(self._depth) - self._whole_depth + len(self._whole) + len(self._probe_log) // 2 + self._n_prunes
        return taken + (self.result is not None)

    @property
    def no_answer_id(self) -> int:
        """Id of the no-answer string (``ERR``) in this question, -1 if none occurs.
        Observable: a controller may treat it as an abstention."""
        return self.question.no_answer_id

    @property
    def interval_tokens(self) -> int:
        """Delta, tokens per interval."""
        return self.question.interval_tokens

    def answer_text(self, answer: int) -> str:
        """The string of an interned answer id (``""`` for -1)."""
        return self.question.vocab[answer] if answer >= 0 else ""

    # ============================================================== checks
    def _fits(self, extra: float) -> bool:
        return self._budget is None or self.cost + extra <= self._budget

    def _require_active(self, j: int, action: str) -> None:
        status = -1  # not opened
        if 0 <= j < len(self._status):
            with cython.boundscheck(False), cython.wraparound(False):
                status = self._status[j]
        if status == ACTIVE and self.result is None:
            return
        where = f"question {self.question.index}: {action}({j})"
        if self.result is not None:
            raise InvalidAction(f"{where} after ANSWER")
        if status < 0:
            raise InvalidAction(f"{where} names a branch that was not opened ({len(self._pool)} opened)")
        raise InvalidAction(f"{where} on a {'finished' if status == FINISHED else 'pruned'} branch")

    def _require_open(self, action: str) -> None:
        if self.result is not None:
            raise InvalidAction(f"question {self.question.index}: {action} after ANSWER")
        if len(self._pool) >= len(self.order):
            raise InvalidAction(f"question {self.question.index}: {action}: all {len(self.order)} branches are open")

    def _require_budget(self, extra: float, action: str) -> None:
        if self._budget is not None and not self._fits(extra):
            raise BudgetExceeded(
                f"question {self.question.index}: {action} exceeds the budget "
                f"(cost {self.cost:g} + {extra:g} > {self._budget:g} intervals)"
            )

    def _record(self, action: str, j: int, answer: int) -> None:
        self.trace.append(
            {
                "action": action,
                "branch": j,
                "depth": self._depth[j] if j >= 0 else 0,
                "answer": answer,
                "tokens": self.tokens,
            }
        )

    # ==================================================== the state changes
    # Every action is made of these four; admissibility is checked before them, so the
    # indices into the episode's own per-branch lists are valid and the compiled build
    # skips Python's index checks there (the question's data, which a live pool grows,
    # keeps them).
    def _open(self) -> int:
        # Open the next branch of the order, at depth 0.
        with cython.boundscheck(False), cython.wraparound(False):
            j = len(self._pool)
            self._pool.append(self.order[j])
            self._depth.append(0)
            self._status.append(ACTIVE)
            self._active.append(j)
            self._probed_at.append(-1)
            self._latest.append(NO_ANSWER_ID)
            return j

    def _step(self, j: int) -> int:
        # Decode one interval of active branch j: its new depth, or 0 if the step after
        # its last probe finished it (revealing its final answer).
        if self._hooked:
            self.before_step(j, self._depth[j] + 1)
        with cython.boundscheck(False), cython.wraparound(False):
            b = self._pool[j]
            d = self._depth[j] + 1
            self._depth[j] = d
        probes = self._num_probes[b]
        if d <= probes:
            return d
        tokens_at = self._tokens_at[b]
        self._finish_tokens += tokens_at[d] - tokens_at[d - 1]
        self._finished_stepwise += 1
        self._finish(j, self._final_answer[b])
        return 0

    def _finish(self, j: int, answer: int) -> None:
        self._status[j] = FINISHED
        self._leave_active(j)
        self._latest[j] = answer
        self._finals.append(answer)
        self._finished_order.append(j)

    def _leave_active(self, j: int) -> None:
        # Drop j from the active set (``self._active.remove(j)``, a scan of ints).
        active = self._active
        for k in range(len(active)):
            a = active[k]
            if a == j:
                del active[k]
                return

    def _probe(self, j: int, d: int) -> int:
        # Reveal the answer of active branch j at its current depth d.
        if self._hooked:
            self.before_probe(j, d)
        with cython.boundscheck(False), cython.wraparound(False):
            b = self._pool[j]
        answer = self._answer_at[b][d]
        with cython.boundscheck(False), cython.wraparound(False):
            depth = self._depth[j]  # d, as the int object _step stored
            self._probed_at[j] = depth
            self._latest[j] = answer
        self._probe_log.append(j)
        self._probe_log.append(depth)
        if self.trace is not None:
            self._record("PROBE", j, answer)
        return answer

    # ============================================================= actions
    def branch(self) -> int:
        """BRANCH: open the next branch of the order and decode its first interval.

        Returns the new branch's number. A branch with no probe answers finishes on this
        step, revealing its final answer.
        """
        self._require_open("BRANCH")
        if self._budget is not None:
            self._require_budget(1, "BRANCH")
        j = self._open()
        self._step(j)
        if self.trace is not None:
            self._record("BRANCH", j, self.final_answer(j))
        return j

    def continue_branch(self, j: int) -> int:
        """CONTINUE(j): decode one more interval of branch j.

        Returns the final answer if this step finished the branch, else -1 (the probe
        answer at the new depth stays hidden until PROBE).
        """
        self._require_active(j, "CONTINUE")
        self._require_budget(1, "CONTINUE")
        self._step(j)
        if self.trace is not None:
            self._record("CONTINUE", j, self.final_answer(j))
        return self.final_answer(j)

    def probe(self, j: int) -> int:
        """PROBE(j): reveal the answer branch j would give at its current depth."""
        self._require_active(j, "PROBE")
        d = self._depth[j]
        if self._probed_at[j] == d:
            raise InvalidAction(f"question {self.question.index}: PROBE({j}) twice at depth {d}")
        self._require_budget(self._kappa, "PROBE")
        return self._probe(j, d)

    def prune(self, j: int) -> None:
        """PRUNE(j): deactivate branch j. Its depth and revealed answers stay."""
        self._require_active(j, "PRUNE")
        self._status[j] = PRUNED
        self._leave_active(j)
        self._n_prunes += 1
        if self.trace is not None:
            self._record("PRUNE", j, self._latest[j])

    def answer(self, answer: int | None = None, reason: str = "answer") -> EpisodeResult:
        """ANSWER: end the episode.

        Args:
            answer: an interned answer id; None applies the episode's aggregation rule.
            reason: why the controller stops (kept in the result).
        """
        if self.result is not None:
            raise InvalidAction(f"question {self.question.index}: ANSWER twice")
        q = self.question
        if answer is None:
            answer = self._aggregate(self)
        else:
            check_answer_id(answer, self._revealed(answer), f"question {q.index}")
        reason = check_reason(reason)
        if self.trace is not None:
            self._record("ANSWER", -1, answer)
        # tokens, cost and num_actions, with the sum of depths taken once.
        depths, probes = sum(self._depth), len(self._probe_log) // 2
        stepwise = depths - self._whole_depth
        self.result = EpisodeResult(
            question=q.index,
            answer=answer,
            answer_text=q.vocab[answer] if answer >= 0 else "",
            correct=answer >= 0 and answer == q.gold_id,
            tokens=(stepwise - self._finished_stepwise) * q.interval_tokens + self._finish_tokens,
            sequential_tokens=self.sequential_tokens,
            intervals=depths + self._kappa * probes,
            branches_opened=len(self._pool),
            probes=probes,
            actions=stepwise + len(self._whole) + probes + self._n_prunes + 1,
            stop_reason=reason,
        )
        return self.result

    def _revealed(self, answer: int) -> bool:
        # Is ``answer`` among the ids this episode handed out (latest, final or probed)?
        if answer in self._latest or answer in self._finals or answer == self.question.no_answer_id:
            return True
        log, pool, answer_at = self._probe_log, self._pool, self.question.answer_at
        return any(answer_at[pool[j]][d] == answer for j, d in zip(log[::2], log[1::2]))

    # ========================================================== composites
    def open_and_probe(self) -> tuple[int, int]:
        """BRANCH, then PROBE the new branch (unless it finished at once).

        Returns ``(branch, answer)``.
        """
        j = self.branch()
        return j, self._probe_opened(j)

    def _probe_opened(self, j: int) -> int:
        # The PROBE of open_and_probe: none if the branch finished on its first step.
        if self.is_finished(j):
            return self._latest[j]
        if self._budget is not None:
            self._require_budget(self._kappa, "PROBE")
        return self._probe(j, 1)

    def open_and_probe_many(self, n: int) -> list[int]:
        """:meth:`open_and_probe` ``n`` times; the revealed answers in opening order."""
        if n < 0:
            raise ValueError(f"open_and_probe_many: n must be >= 0, got {n}")
        return [self._probe_opened(self.branch()) for _ in range(n)]

    def continue_and_probe(self, j: int) -> int:
        """CONTINUE(j), then PROBE(j) unless the step finished the branch.

        Returns the revealed answer (the final answer if the branch finished).
        """
        self._require_active(j, "CONTINUE")
        return self._continue_and_probe(j, 1)

    def _continue_and_probe(self, j: int, burst: int) -> int:
        # continue_and_probe of active branch j, ``burst`` times in a row unless it
        # finishes first; its last revealed answer.
        for _ in range(burst):
            if self._budget is not None:
                self._require_budget(1 + self._kappa, "CONTINUE+PROBE")
            d = self._step(j)
            if self.trace is not None:
                self._record("CONTINUE", j, self.final_answer(j))
            if not d:
                return self._latest[j]
            answer = self._probe(j, d)
        return answer

    def continue_and_probe_many(self, branches: Sequence[int], bursts: Sequence[int] | None = None) -> list[int]:
        """:meth:`continue_and_probe` on each branch in turn; each branch's revealed answer.

        Args:
            branches: the branches, in the order they are stepped (the order decides the
                finishing order, hence vote ties).
            bursts: with it, branch ``branches[i]`` is stepped and probed ``bursts[i] >= 1``
                times in a row, stopping early if it finishes; the answer returned is its
                last revealed one.

        The hot path of lock-step and depth-first controllers.
        """
        out = []
        for i, j in enumerate(branches):
            self._require_active(j, "CONTINUE")
            burst = 1 if bursts is None else _check_burst(bursts[i], j)
            out.append(self._continue_and_probe(j, burst))
        return out

    def read_whole(self) -> tuple[int, int]:
        """Open the next branch and read it to its end in one go, charged exactly its
        total tokens (the full-read baselines). Returns ``(branch, final answer)``.

        Under a budget the whole read must fit: it counts ``num_probes + 1`` intervals.
        """
        j = self._read_whole()
        return j, self._latest[j]

    def _read_whole(self) -> int:
        self._require_open("READ_WHOLE")
        b = self.order[len(self._pool)]
        if self._hooked:
            self.before_whole(b)
        steps = self._num_probes[b] + 1
        if self._budget is not None:
            self._require_budget(steps, "READ_WHOLE")
        j = self._open()
        self._depth[j] = steps
        self._whole.add(j)
        self._whole_depth += steps
        self._finish_tokens += self._total_tokens[b]
        self._finish(j, self._final_answer[b])
        if self.trace is not None:
            self._record("READ_WHOLE", j, self._latest[j])
        return j

    def read_whole_many(self, n: int) -> list[int]:
        """:meth:`read_whole` ``n`` times; the final answers in reading order."""
        if n < 0:
            raise ValueError(f"read_whole_many: n must be >= 0, got {n}")
        return [self._latest[self._read_whole()] for _ in range(n)]
