"""The episode a candidate controller sees inside the sandbox.

:class:`EpisodeView` wraps an :class:`~autotts_gym.engine.Episode` and offers exactly
the contract's actions and views (:data:`~agents.discovery.contract.EPISODE_ACTIONS`,
:data:`~agents.discovery.contract.EPISODE_VIEWS`), nothing else: no question (gold
answer), no branch order (the future), no result (correctness), no trace. It also

* counts every *attempted* primitive action (a composite counts its parts, a rejected
  action counts too) and raises :class:`StepLimitExceeded` past the limit, so a loop that
  retries an invalid action forever ends;
* lets ``answer`` and ``answer_text`` take only answer ids the episode has revealed
  (or the observable no-answer id), since any other id would leak unrevealed answers;
* returns None from ``answer``: the episode's result (with its correctness) stays with
  the evaluator.

:class:`ViewedController` is what the evaluator runs: it gives the candidate a fresh
view per episode and returns the engine's result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autotts_gym.engine import Episode, EpisodeResult, InvalidAction


class StepLimitExceeded(BaseException):
    """An episode attempted more primitive actions than the sandbox allows.

    A BaseException, so a candidate's ``except Exception`` cannot swallow it.
    """


class EpisodeView:
    """An episode restricted to what a real controller has at decision time.

    Args:
        episode: the engine's episode.
        max_actions: attempted primitive actions allowed in this episode.
    """

    __slots__ = ("_e", "_left", "_limit")

    def __init__(self, episode: Episode, max_actions: int) -> None:
        self._e = episode
        self._left = max_actions
        self._limit = max_actions

    def _over(self) -> None:
        self._left = -1  # stays exceeded: later actions keep failing
        raise StepLimitExceeded(f"the episode attempted more than {self._limit} primitive actions")

    # ------------------------------------------------------------- actions
    def branch(self) -> int:
        """BRANCH: open the next branch, decode its first interval; its number."""
        self._left -= 1
        if self._left < 0:
            self._over()
        return self._e.branch()

    def continue_branch(self, j: int) -> int:
        """CONTINUE(j): one more interval; the final answer if it finished, else -1."""
        self._left -= 1
        if self._left < 0:
            self._over()
        return self._e.continue_branch(j)

    def probe(self, j: int) -> int:
        """PROBE(j): reveal branch j's answer at its current depth."""
        self._left -= 1
        if self._left < 0:
            self._over()
        return self._e.probe(j)

    def prune(self, j: int) -> None:
        """PRUNE(j): deactivate branch j; what it revealed stays."""
        self._left -= 1
        if self._left < 0:
            self._over()
        self._e.prune(j)

    def open_and_probe(self) -> tuple[int, int]:
        """BRANCH then PROBE the new branch; ``(branch, answer)``."""
        self._left -= 2
        if self._left < 0:
            self._over()
        return self._e.open_and_probe()

    def continue_and_probe(self, j: int) -> int:
        """CONTINUE(j) then PROBE(j) unless it finished; the revealed answer."""
        self._left -= 2
        if self._left < 0:
            self._over()
        return self._e.continue_and_probe(j)

    def continue_and_probe_many(self, branches: Sequence[int], bursts: Sequence[int] | None = None) -> list[int]:
        """:meth:`continue_and_probe` on each branch in turn (``bursts[i]`` times, cut short
        when the branch finishes); each branch's last revealed answer."""
        self._left -= 2 * (len(branches) if bursts is None else sum(bursts))
        if self._left < 0:
            self._over()
        return self._e.continue_and_probe_many(branches, bursts)

    def open_and_probe_many(self, n: int) -> list[int]:
        """:meth:`open_and_probe` ``n`` times; the revealed answers."""
        self._left -= 2 * n
        if self._left < 0:
            self._over()
        return self._e.open_and_probe_many(n)

    def read_whole(self) -> tuple[int, int]:
        """Open the next branch and read it whole; ``(branch, final answer)``."""
        self._left -= 1
        if self._left < 0:
            self._over()
        return self._e.read_whole()

    def read_whole_many(self, n: int) -> list[int]:
        """:meth:`read_whole` ``n`` times; the final answers."""
        self._left -= n
        if self._left < 0:
            self._over()
        return self._e.read_whole_many(n)

    def answer(self, answer: int | None = None, reason: str = "answer") -> None:
        """ANSWER: end the episode with a revealed answer id (None: the default
        aggregation over what was revealed). Returns None."""
        self._left -= 1
        if self._left < 0:
            self._over()
        if answer is not None:
            self._require_revealed(answer, "ANSWER")
        self._e.answer(answer, reason=str(reason)[:80])

    def _require_revealed(self, answer: int, what: str) -> None:
        e = self._e
        if answer == -1 or answer == e.no_answer_id:
            return
        if (
            answer in e.latest_answers
            or answer in e.finished_answers
            or any(a == answer for _, _, a in e.revealed_probes)
        ):
            return
        raise InvalidAction(f"{what}({answer}): answer id {answer} has not been revealed in this episode")

    # --------------------------------------------------------------- views
    @property
    def num_opened(self) -> int:
        """Branches opened so far."""
        return self._e.num_opened

    @property
    def num_available(self) -> int:
        """Branches that can be opened in all."""
        return self._e.num_available

    @property
    def can_branch(self) -> bool:
        """True if BRANCH is admissible now."""
        return self._e.can_branch

    @property
    def done(self) -> bool:
        """True once ANSWER was taken."""
        return self._e.done

    def depth(self, j: int) -> int:
        """Intervals decoded on branch j."""
        return self._e.depth(j)

    @property
    def num_active(self) -> int:
        """Number of active branches."""
        return self._e.num_active

    @property
    def num_finished(self) -> int:
        """Number of finished branches."""
        return self._e.num_finished

    def finished_vote(self) -> tuple[int, int, int]:
        """``(winner, v1, v2)`` of the finished answers, ties to the first finished."""
        return self._e.finished_vote()

    def active_by_depth(self, deepest_first: bool = True) -> list[int]:
        """Active branches by depth (deepest first, or shallowest first), ties in opening order."""
        return self._e.active_by_depth(deepest_first)

    @property
    def depths(self) -> list[int]:
        """Depth of every opened branch, in opening order."""
        return self._e.depths

    def status(self, j: int) -> int:
        """ACTIVE (0), FINISHED (1) or PRUNED (2)."""
        return self._e.status(j)

    def is_active(self, j: int) -> bool:
        """True if branch j can still be continued, probed or pruned."""
        return self._e.is_active(j)

    def is_finished(self, j: int) -> bool:
        """True if branch j reached its end."""
        return self._e.is_finished(j)

    def is_pruned(self, j: int) -> bool:
        """True if branch j was pruned."""
        return self._e.is_pruned(j)

    def is_probed(self, j: int) -> bool:
        """True if branch j was probed at its current depth (or is finished)."""
        return self._e.is_probed(j)

    def latest_answer(self, j: int) -> int:
        """Latest revealed answer of branch j, -1 if none."""
        return self._e.latest_answer(j)

    def final_answer(self, j: int) -> int:
        """Final answer of branch j if finished, else -1."""
        return self._e.final_answer(j)

    @property
    def latest_answers(self) -> list[int]:
        """Latest revealed answer of every opened branch."""
        return self._e.latest_answers

    @property
    def active_branches(self) -> list[int]:
        """Branches neither finished nor pruned, in opening order."""
        return self._e.active_branches

    @property
    def finished_answers(self) -> list[int]:
        """Final answers in finishing order."""
        return self._e.finished_answers

    @property
    def finished_branches(self) -> list[int]:
        """Finished branches in finishing order."""
        return self._e.finished_branches

    @property
    def revealed_probes(self) -> list[tuple[int, int, int]]:
        """Every revealed ``(branch, depth, answer)``."""
        return self._e.revealed_probes

    def probe_confidence(self, j: int, depth: int | None = None) -> float:
        """The model's confidence in a revealed probe, NaN if unknown."""
        return self._e.probe_confidence(j, depth)

    @property
    def tokens(self) -> int:
        """Tokens charged so far."""
        return self._e.tokens

    def branch_tokens(self, j: int) -> int:
        """Tokens charged to branch j so far."""
        return self._e.branch_tokens(j)

    @property
    def sequential_tokens(self) -> int:
        """Tokens of the longest branch so far."""
        return self._e.sequential_tokens

    @property
    def cost(self) -> float:
        """The MDP cost in intervals."""
        return self._e.cost

    @property
    def budget(self) -> float | None:
        """The budget in intervals (None: unlimited)."""
        return self._e.budget

    @property
    def kappa_probe(self) -> float:
        """Cost of one PROBE in intervals."""
        return self._e.kappa_probe

    @property
    def remaining_budget(self) -> float:
        """Intervals left before the budget binds."""
        return self._e.remaining_budget

    @property
    def num_actions(self) -> int:
        """Primitive actions taken so far."""
        return self._e.num_actions

    @property
    def no_answer_id(self) -> int:
        """Id of the no-answer string (ERR), -1 if none occurs."""
        return self._e.no_answer_id

    @property
    def interval_tokens(self) -> int:
        """Delta, tokens per interval."""
        return self._e.interval_tokens

    def answer_text(self, answer: int) -> str:
        """The string of a revealed answer id."""
        self._require_revealed(answer, "answer_text")
        return self._e.answer_text(answer)


class ViewedController:
    """A candidate controller as the evaluator runs it: one :class:`EpisodeView` per
    episode, the engine's result returned.

    Args:
        controller: the candidate's controller instance.
        max_actions: the per-episode step limit.
        label: names the evaluated point in summaries (``beta=0.5``, ``setting 2``).
        beta: the point's beta (None for a free-parameter setting).
    """

    def __init__(self, controller: Any, max_actions: int, label: str, beta: float | None) -> None:
        self.controller = controller
        self.max_actions = max_actions
        self.name = str(getattr(controller, "name", type(controller).__name__))
        self.label = label
        self.beta = beta
        self.current: Episode | None = None  # the episode being run (names a failure)

    def params(self) -> dict[str, Any]:
        """The candidate's hyper-parameters."""
        return self.controller.params()

    def __call__(self, episode: Episode) -> EpisodeResult:
        self.current = episode
        self.controller.run(EpisodeView(episode, self.max_actions))
        if not episode.done:
            episode.answer(reason="end")
        self.current = None
        return episode.result
