"""The Episode protocol: what controller code programs against, whatever runs the episode.

Two implementations exist: the replay engine (:class:`autotts_gym.engine.Episode`) and
the isolated sandbox's channel (:class:`autotts_gym.isolation.client.RemoteEpisode`,
which sends actions to an engine in another process and mirrors only what they
reveal). A live-model backend implements the same protocol. This module imports
nothing but the standard library, so the sandbox can load it without the engine.

Answers are *answer ids*: small ints interned per question (``-1``: no answer). An
answer given to :meth:`EpisodeProtocol.answer` must be a plain ``int`` that the episode
revealed (or ``-1``, or ``None`` for the aggregation rule); anything else is an
:class:`InvalidAction`.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

ACTIVE, FINISHED, PRUNED = 0, 1, 2
NO_ANSWER_ID = -1

# The episode's public actions (primitives and composites).
PUBLIC_ACTIONS: tuple[str, ...] = (
    "branch",
    "continue_branch",
    "probe",
    "prune",
    "answer",
    "open_and_probe",
    "open_and_probe_many",
    "continue_and_probe",
    "continue_and_probe_many",
    "read_whole",
    "read_whole_many",
)

# The episode's read-only views (properties and query methods): what a real controller
# has at decision time.
PUBLIC_VIEWS: tuple[str, ...] = (
    "num_opened",
    "num_available",
    "can_branch",
    "done",
    "depth",
    "depths",
    "status",
    "is_active",
    "is_finished",
    "is_pruned",
    "is_probed",
    "latest_answer",
    "final_answer",
    "latest_answers",
    "active_branches",
    "active_by_depth",
    "num_active",
    "finished_answers",
    "finished_branches",
    "num_finished",
    "finished_vote",
    "revealed_probes",
    "probe_confidence",
    "tokens",
    "branch_tokens",
    "sequential_tokens",
    "cost",
    "budget",
    "kappa_probe",
    "remaining_budget",
    "num_actions",
    "no_answer_id",
    "interval_tokens",
    "answer_text",
)

# Longest stop reason kept in a result (a controller's free text).
MAX_REASON_CHARS = 80


class InvalidAction(ValueError):
    """An action that is not admissible in the current state."""


class BudgetExceeded(InvalidAction):
    """An action that would take the cost over the budget. A controller run through
    :class:`agents.base.Controller` ends the episode with the aggregation rule instead."""


class EpisodeResult(NamedTuple):
    """What an episode ended with (a named tuple: built once per episode, so it is cheap).

    Attributes:
        question: index of the question in its split.
        answer: interned answer id (``-1``: no answer).
        answer_text: the answer string (``""`` for no answer).
        correct: ``answer == gold``.
        tokens: total tokens charged to all branches.
        sequential_tokens: tokens of the longest branch (latency when branches run
            in parallel).
        intervals: the MDP cost in intervals (sum of depths, plus kappa_probe x probes).
        branches_opened: number of branches opened.
        probes: number of PROBE actions.
        actions: number of primitive actions, ANSWER included.
        stop_reason: why the controller answered.
    """

    question: int
    answer: int
    answer_text: str
    correct: bool
    tokens: int
    sequential_tokens: int
    intervals: float
    branches_opened: int
    probes: int
    actions: int
    stop_reason: str


def check_answer_id(answer: object, revealed: bool, where: str) -> int:
    """``answer`` as an answer id if it is a plain ``int`` the episode revealed (or -1);
    :class:`InvalidAction` otherwise. ``revealed`` says whether the episode revealed it.

    An ``int`` subclass (whose ``__eq__`` could claim any gold), a float, a bool or a
    string is refused: the answer must be one of the ids the episode handed out.
    """
    if type(answer) is not int:
        raise InvalidAction(
            f"{where}: ANSWER({answer!r}): an answer is a plain int answer id, not {type(answer).__name__}"
        )
    if answer != NO_ANSWER_ID and not revealed:
        raise InvalidAction(f"{where}: ANSWER({answer}) names an answer this episode has not revealed")
    return answer


def check_reason(reason: object) -> str:
    """A stop reason as a short plain string (anything else is an :class:`InvalidAction`)."""
    if type(reason) is not str:
        raise InvalidAction(f"a stop reason is a str, not {type(reason).__name__}")
    return reason[:MAX_REASON_CHARS]


@runtime_checkable
class EpisodeProtocol(Protocol):
    """The episode a controller drives: the MDP's actions and read-only views.

    Actions (each raises :class:`InvalidAction` when not admissible, :class:`BudgetExceeded`
    when it would exceed the budget):

    * ``branch()``: BRANCH, the new branch's number; ``continue_branch(j)``: CONTINUE(j),
      the final answer if the branch finished, else -1; ``probe(j)``: PROBE(j), the
      revealed answer; ``prune(j)``: PRUNE(j); ``answer(a=None, reason=...)``: ANSWER.
    * Composites: ``open_and_probe()`` -> ``(j, answer)``, ``open_and_probe_many(n)``,
      ``continue_and_probe(j)``, ``continue_and_probe_many(js, bursts=None)``,
      ``read_whole()`` -> ``(j, final answer)``, ``read_whole_many(n)``.

    Views: :data:`PUBLIC_VIEWS` (depths, statuses, revealed answers, tokens, cost, budget).
    """

    def branch(self) -> int: ...
    def continue_branch(self, j: int) -> int: ...
    def probe(self, j: int) -> int: ...
    def prune(self, j: int) -> None: ...
    def answer(self, answer: int | None = None, reason: str = "answer") -> EpisodeResult | None: ...
    def open_and_probe(self) -> tuple[int, int]: ...
    def open_and_probe_many(self, n: int) -> list[int]: ...
    def continue_and_probe(self, j: int) -> int: ...
    def continue_and_probe_many(self, branches: list[int], bursts: list[int] | None = None) -> list[int]: ...
    def read_whole(self) -> tuple[int, int]: ...
    def read_whole_many(self, n: int) -> list[int]: ...

    @property
    def done(self) -> bool: ...
    @property
    def num_opened(self) -> int: ...
    @property
    def num_available(self) -> int: ...
    def depth(self, j: int) -> int: ...
    def status(self, j: int) -> int: ...
    def latest_answer(self, j: int) -> int: ...
    @property
    def finished_answers(self) -> list[int]: ...
    @property
    def tokens(self) -> int: ...
    @property
    def cost(self) -> float: ...
    @property
    def remaining_budget(self) -> float: ...
