"""Run a controller THROUGH the Gymnasium env: the controller as a Gymnasium policy.

:class:`EnvEpisode` looks like :class:`autotts_gym.engine.Episode` to a controller: its
read-only views delegate to the env's engine episode, and every action becomes one or
more ``env.step(index)`` calls (composites decompose into primitive env actions; an
answer is committed with ``env.unwrapped.commit_answer`` and then ANSWER is stepped).
So a controller gives the same per-episode result through either door::

    env = gym.make("AutoTTS-v0", store=..., shuffle="release")
    result = run_controller_in_env(controller, env, question=3, order_seed=7)
    # == controller(Episode(split.question(3), branch_order(pool, 7, 3, "release")))

A controller that answers an answer it never revealed cannot be run through the env
(``commit_answer`` refuses it), nor can one that opens more than ``max_branches``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym

from autotts_gym.engine import PUBLIC_ACTIONS, PUBLIC_VIEWS, BudgetExceeded, Episode, EpisodeResult, InvalidAction
from autotts_gym.envs.spaces import BRANCH, READ_WHOLE, encode_action

# Episode attributes an EnvEpisode reads through (read-only): the engine's public views,
# plus the data trusted code may read; its actions (PUBLIC_ACTIONS) go through env.step.
# Together they cover every public attribute of Episode.
VIEWS = (*PUBLIC_VIEWS, "question", "order", "result", "trace")
ACTIONS = PUBLIC_ACTIONS


class EnvEpisode:
    """The env's current episode, seen through the Episode API a controller uses.

    Views (``depth``, ``is_active``, ``finished_answers``, ``tokens``, ...) read the
    env's engine episode; actions step the env. Build it after ``env.reset``.

    Args:
        env: an ``AutoTTS-v0`` env (wrapped or not).
    """

    def __init__(self, env: gym.Env) -> None:
        self.env = env
        self._unwrapped = env.unwrapped
        self._n = self._unwrapped.max_branches
        if self._unwrapped.episode is None:
            raise InvalidAction("EnvEpisode needs a running episode: call env.reset() first")

    def __getattr__(self, name: str) -> Any:
        # Only the read-only views pass through: every action must go through step().
        if name in VIEWS:
            return getattr(self._unwrapped.episode, name)
        raise AttributeError(f"EnvEpisode has no attribute {name!r} (views: {', '.join(VIEWS)})")

    @property
    def episode(self) -> Episode:
        """The env's engine episode (read it, do not act on it)."""
        return self._unwrapped.episode

    def _step(self, kind: str, branch: int = -1) -> None:
        self.env.step(encode_action(kind, branch, self._n))

    # ======================================================= primitive actions
    def branch(self) -> int:
        """BRANCH; returns the new branch."""
        self.env.step(BRANCH)
        return self.episode.num_opened - 1

    def continue_branch(self, j: int) -> int:
        """CONTINUE(j); the final answer if this finished the branch, else -1."""
        self._step("CONTINUE", j)
        return self.episode.final_answer(j)

    def probe(self, j: int) -> int:
        """PROBE(j); the revealed answer."""
        self._step("PROBE", j)
        return self.episode.latest_answer(j)

    def prune(self, j: int) -> None:
        """PRUNE(j)."""
        self._step("PRUNE", j)

    def answer(self, answer: int | None = None, reason: str = "answer") -> EpisodeResult:
        """Commit ``answer`` (None: the env's aggregation rule), then ANSWER."""
        self._unwrapped.commit_answer(answer, reason)
        self._step("ANSWER")
        return self.episode.result

    # ============================================================ composites
    def open_and_probe(self) -> tuple[int, int]:
        """BRANCH, then PROBE the new branch unless it finished at once."""
        j = self.branch()
        if not self.episode.is_finished(j):
            self._step("PROBE", j)
        return j, self.episode.latest_answer(j)

    def continue_and_probe(self, j: int) -> int:
        """CONTINUE(j), then PROBE(j) unless the step finished the branch.

        Like the engine, refuses before stepping if CONTINUE and PROBE together do not
        fit the budget.
        """
        episode = self.episode
        if episode.is_active(j) and episode.budget is not None:
            extra = 1 + episode.kappa_probe
            if episode.cost + extra > episode.budget:
                raise BudgetExceeded(
                    f"question {episode.question.index}: CONTINUE+PROBE({j}) exceeds the budget "
                    f"(cost {episode.cost:g} + {extra:g} > {episode.budget:g} intervals)"
                )
        self._step("CONTINUE", j)
        if not episode.is_finished(j):
            self._step("PROBE", j)
        return episode.latest_answer(j)

    def continue_and_probe_many(self, branches: Sequence[int], bursts: Sequence[int] | None = None) -> list[int]:
        """:meth:`continue_and_probe` on each branch in turn (``bursts[i]`` times, cut short
        when the branch finishes); each branch's last revealed answer."""
        out = []
        for i, j in enumerate(branches):
            burst = 1 if bursts is None else bursts[i]
            if burst < 1:
                raise ValueError(f"continue_and_probe_many: burst {burst} for branch {j}; bursts must be >= 1")
            for _ in range(burst):
                answer = self.continue_and_probe(j)
                if not self.episode.is_active(j):
                    break
            out.append(answer)
        return out

    def open_and_probe_many(self, n: int) -> list[int]:
        """:meth:`open_and_probe` ``n`` times; the revealed answers."""
        return [self.open_and_probe()[1] for _ in range(n)]

    def read_whole_many(self, n: int) -> list[int]:
        """:meth:`read_whole` ``n`` times; the final answers."""
        return [self.read_whole()[1] for _ in range(n)]

    def read_whole(self) -> tuple[int, int]:
        """READ_WHOLE: open the next branch and read it to its end."""
        self.env.step(READ_WHOLE)
        j = self.episode.num_opened - 1
        return j, self.episode.final_answer(j)


def run_controller_in_env(
    controller: Any, env: gym.Env, question: int, order_seed: int, split: str | None = None
) -> EpisodeResult:
    """Reset ``env`` to ``(split, question, order_seed)`` and let ``controller`` play the
    episode through ``env.step``; its result (identical to running the controller on an
    engine Episode with the same question and branch order)."""
    options: dict[str, Any] = {"question": question, "order_seed": order_seed}
    if split is not None:
        options["split"] = split
    env.reset(options=options)
    return controller(EnvEpisode(env))
