"""The Gymnasium environment ``AutoTTS-v0``: a thin door onto the replay engine."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from autotts_gym.data.sources import load_store
from autotts_gym.data.store import Split, Store
from autotts_gym.engine import FINISHED, PRUNED, Aggregator, BudgetExceeded, Episode, InvalidAction
from autotts_gym.engine.recorded import RecordedEpisode, is_recorded
from autotts_gym.envs.spaces import (
    ANSWER,
    OVER_BUDGET,
    EpisodeObserver,
    ObservationConfig,
    apply_action,
    describe_action,
    inadmissible_reason,
)
from autotts_gym.evaluation.orders import SHUFFLES, branch_order
from autotts_gym.utils.arguments import check_budget, check_nonnegative, check_positive_int

_SEED_RANGE = 2**31 - 1
_RESET_OPTIONS = frozenset({"question", "split", "order_seed"})


class AdmissibleDiscrete(spaces.Discrete):
    """``Discrete(n)`` whose ``sample()`` without a mask draws an action admissible in
    the env's current state (uniformly among the mask); with a mask or probabilities it
    behaves exactly like :class:`gymnasium.spaces.Discrete`."""

    def __init__(self, n: int, live_mask: np.ndarray, seed: int | None = None) -> None:
        super().__init__(n, seed=seed)
        self._live_mask = live_mask

    def sample(self, mask: np.ndarray | None = None, probability: np.ndarray | None = None) -> np.int64:
        """A random action; by default one the env accepts now (ANSWER once it ended)."""
        if mask is None and probability is None:
            mask = self._live_mask.view(np.int8)
        return super().sample(mask=mask, probability=probability)


@lru_cache(maxsize=4)
def _load_cached(source: str) -> Store:
    # Stores are immutable, so the envs of one process (e.g. a SyncVectorEnv) share one.
    return load_store(None if source == "default" else source)


def _open_store(store: str | os.PathLike | Store | None) -> Store:
    if isinstance(store, Store):
        return store
    if store is None or os.fspath(store) == "default":
        return _load_cached("default")
    return _load_cached(os.path.abspath(os.fspath(store)))


class AutoTTSEnv(gym.Env):
    """Replayed test-time scaling: spend compute on reasoning branches, then answer.

    ## Description

    Each episode replays one question of a replay store (pre-collected reasoning
    trajectories of a model, facts section 2 of the AutoTTS paper). The agent opens
    branches, decodes them interval by interval (``Delta`` tokens each), probes the
    answer a branch would give at its current depth, prunes branches, and finally
    answers. All semantics and costs are those of :class:`autotts_gym.engine.Episode`;
    the env only translates indices. The episode's branch order is
    ``orders.branch_order(pool, order_seed, question, shuffle)[:max_branches]``.

    ## Action Space

    ``Discrete(3 + 3N)`` with ``N = max_branches`` (default 64, so 195 actions):

    | Index             | Action        | Effect                                                     |
    |-------------------|---------------|------------------------------------------------------------|
    | 0                 | ANSWER        | end the episode with the aggregated (or committed) answer  |
    | 1                 | BRANCH        | open the next branch and decode its first interval         |
    | 2                 | READ_WHOLE    | open the next branch and read it to its end in one go      |
    | 3 .. 3+N-1        | CONTINUE(i)   | decode one more interval of branch i                       |
    | 3+N .. 3+2N-1     | PROBE(i)      | reveal branch i's answer at its current depth              |
    | 3+2N .. 3+3N-1    | PRUNE(i)      | deactivate branch i (what it revealed stays)               |

    Branch ``i`` is the i-th branch opened. Only some actions are admissible in a
    state: ``env.action_masks()`` (the contract of sb3-contrib's ``MaskablePPO``) and
    ``info["action_mask"]`` give a boolean mask that equals exactly what the engine
    accepts, budget included. ANSWER is admissible until the episode ends (then the
    mask is all False). A masked-out action raises
    :class:`autotts_gym.engine.InvalidAction` naming the action, the branch and why.
    ``env.action_space.sample()`` draws uniformly among the admissible actions.

    ## Observation Space

    ``Box(0, 1, (10 N + 12,), float32)``. Per-branch feature ``f`` of branch ``i`` is
    ``obs[f * N + i]`` (zero for branches not opened); then the global features.
    ``autotts_gym.envs.spaces.split_observation(obs, N)`` gives ``(per_branch[N, 10], global[12])``.
    The *vote* is the latest revealed answer of every unpruned branch (finished branches
    vote with their final answer); its *leader* has most votes (ties: smaller answer id).

    | Index       | Feature (per branch i)  | Range  | Meaning                                          |
    |-------------|-------------------------|--------|--------------------------------------------------|
    | 0N + i      | opened                  | {0, 1} | branch i was opened                              |
    | 1N + i      | active                  | {0, 1} | can still be continued, probed, pruned           |
    | 2N + i      | finished                | {0, 1} | reached its end (final answer revealed)          |
    | 3N + i      | pruned                  | {0, 1} | was pruned                                       |
    | 4N + i      | depth                   | [0, 1] | intervals decoded / depth_scale (clipped)        |
    | 5N + i      | probed                  | {0, 1} | probed at its current depth (or finished)        |
    | 6N + i      | revealed                | {0, 1} | has a revealed answer                            |
    | 7N + i      | share                   | [0, 1] | votes for its latest answer / all votes          |
    | 8N + i      | agrees                  | {0, 1} | its latest answer is the vote leader             |
    | 9N + i      | no_answer               | {0, 1} | its latest answer is the no-answer string (ERR)  |

    | Index       | Global feature          | Range  | Meaning                                          |
    |-------------|-------------------------|--------|--------------------------------------------------|
    | 10N + 0     | opened                  | [0, 1] | branches opened / N                              |
    | 10N + 1     | active                  | [0, 1] | active branches / N                              |
    | 10N + 2     | finished                | [0, 1] | finished branches / N                            |
    | 10N + 3     | unopened                | [0, 1] | branches still available to open / N             |
    | 10N + 4     | cost                    | [0, 1] | MDP cost / budget (no budget: / cost_scale)      |
    | 10N + 5     | votes                   | [0, 1] | votes / N                                        |
    | 10N + 6     | leader_share            | [0, 1] | leader's votes / votes                           |
    | 10N + 7     | runner_up_share         | [0, 1] | runner-up's votes / votes                        |
    | 10N + 8     | leader_confidence       | [0, 1] | 1 - BetaCDF(0.5; v1 + 1, v2 + 1) of the vote     |
    | 10N + 9     | distinct_answers        | [0, 1] | distinct answers in the vote / N                 |
    | 10N + 10    | completed_confidence    | [0, 1] | Beta confidence of the finished final answers    |
    | 10N + 11    | completed_agrees        | {0, 1} | the finished answers' leader is the vote leader  |

    ## Rewards

    Each step gives ``-cost_weight * (tokens charged by the step)``; ANSWER adds ``+1``
    if the answer equals the gold answer. The return is therefore
    ``1{correct} - cost_weight * total_tokens``.

    ## Starting State

    A split is drawn uniformly among the selected splits, then a question uniformly
    among the selected questions, and an ``order_seed`` (all with ``self.np_random``),
    unless ``reset(options=...)`` fixes them: ``{"split": "model/benchmark",
    "question": i, "order_seed": s}``. No branch is open; the cost is 0. The info of
    ``reset`` holds ``action_mask``, ``split``, ``question`` and ``order_seed``, enough to
    replay the episode.

    ## Episode End

    Terminated on ANSWER (``info["result"]`` then holds the
    :class:`~autotts_gym.engine.EpisodeResult`; every step's info also has
    ``action_mask`` and ``tokens``, the tokens charged so far). Every episode can end: the pool and
    depths are finite, and once no other action is admissible only ANSWER is. Pass
    ``max_episode_steps`` to ``gym.make`` to truncate longer episodes.

    ## Arguments

    ``gym.make("AutoTTS-v0", ...)`` accepts:

    * ``store``: a store folder, a release JSON file or folder, a ``Store``, or None /
      ``"default"`` (default) for the embedded synthetic store. Stores loaded from a path
      are cached per process (they are immutable), so the envs of a vector env share one.
    * ``split``: ``"model/benchmark"`` (``model/*`` and ``*/benchmark`` work), a list of
      them, or None for every split of the store.
    * ``questions``: question indices to sample from, in every selected split (None: all).
    * ``cost_weight``: reward per token charged (default ``1e-6``).
    * ``budget_tokens`` / ``budget_intervals``: per-episode budget (at most one; None:
      unlimited), masked exactly as the engine admits actions.
    * ``kappa_probe``: cost of one PROBE in intervals (default 0).
    * ``max_branches``: N (default 64).
    * ``shuffle``: branch order, ``"numpy"`` (default) or ``"release"`` (the paper's).
    * ``aggregate``: the answer rule of ANSWER when nothing was committed
      (default: majority of final answers, else of latest answers).
    * ``depth_scale``: depth that maps to 1.0 in the observation (default: the longest
      branch of the selected splits, in intervals).
    * ``render_mode``: None or ``"ansi"``.

    ``env.unwrapped.commit_answer(answer_id)`` makes the next ANSWER give a specific
    answer already revealed in the episode (``-1``: no answer).

    ## Version History

    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        store: str | os.PathLike | Store | None = None,
        split: str | Sequence[str] | None = None,
        questions: Sequence[int] | None = None,
        cost_weight: float = 1e-6,
        budget_tokens: float | None = None,
        budget_intervals: float | None = None,
        kappa_probe: float = 0.0,
        max_branches: int = 64,
        shuffle: str = "numpy",
        aggregate: Aggregator | None = None,
        depth_scale: float | None = None,
        render_mode: str | None = None,
    ) -> None:
        if budget_tokens is not None and budget_intervals is not None:
            raise ValueError("give budget_tokens or budget_intervals, not both")
        budget_tokens = check_budget("budget_tokens", budget_tokens)
        budget_intervals = check_budget("budget_intervals", budget_intervals)
        cost_weight = check_nonnegative("cost_weight", cost_weight)
        kappa_probe = check_nonnegative("kappa_probe", kappa_probe)
        max_branches = check_positive_int("max_branches", max_branches)
        if shuffle not in SHUFFLES:
            raise ValueError(f"unknown shuffle {shuffle!r}; choose one of {', '.join(SHUFFLES)}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.store = _open_store(store)
        self.splits: tuple[Split, ...] = tuple(self.store.select([split] if isinstance(split, str) else split))
        self.questions = None if questions is None else tuple(int(q) for q in questions)
        self._check_questions()
        self.cost_weight = float(cost_weight)
        self.budget_tokens = budget_tokens
        self.budget_intervals = budget_intervals
        self.kappa_probe = float(kappa_probe)
        self.shuffle = shuffle
        self.aggregate = aggregate
        self.render_mode = render_mode
        if depth_scale is None:
            depth_scale = max(int(np.diff(s.probe_offsets).max(initial=0)) + 1 for s in self.splits)
        self.observation_config = ObservationConfig(int(max_branches), float(depth_scale))
        self._observer = EpisodeObserver(self.observation_config)
        self.max_branches = self.observation_config.max_branches
        self._num_actions = self.observation_config.num_actions
        self.action_space = AdmissibleDiscrete(self.observation_config.num_actions, self._observer.mask)
        self.observation_space = spaces.Box(0.0, 1.0, (self.observation_config.observation_size,), np.float32)
        self.episode: Episode | None = None
        self.split: Split | None = None
        self.order_seed: int | None = None
        self._committed: int | None = None
        self._reason = "answer"
        self._tokens = 0

    def _check_questions(self) -> None:
        if self.questions is None:
            return
        if not self.questions:
            raise ValueError("questions is empty; give None for all questions")
        for s in self.splits:
            bad = [q for q in self.questions if not 0 <= q < s.num_questions]
            if bad:
                raise ValueError(f"split {s.name} has {s.num_questions} questions; questions {bad} do not exist")

    # ================================================================ Gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Start an episode; ``options`` may fix ``split``, ``question``, ``order_seed``."""
        super().reset(seed=seed)
        options = options or {}
        if not _RESET_OPTIONS.issuperset(options):
            unknown = sorted(set(options) - _RESET_OPTIONS)
            raise ValueError(f"unknown reset options {unknown}; known: {sorted(_RESET_OPTIONS)}")
        # One draw of three uniforms (split, question, order seed), used or not, so the
        # random stream does not depend on which options are given.
        u_split, u_question, u_seed = self.np_random.random(3).tolist()
        self.split = self._choose_split(options.get("split"), u_split)
        question = self._choose_question(options.get("question"), u_question)
        seed_option = options.get("order_seed")
        self.order_seed = int(u_seed * _SEED_RANGE) if seed_option is None else int(seed_option)
        data = self.split.question(question)
        order = branch_order(data.num_branches, self.order_seed, question, self.shuffle, self.max_branches)
        # A store recorded by a live run stops with a clear error where it holds nothing.
        self.episode = (RecordedEpisode if is_recorded(self.split) else Episode)(
            data,
            order,
            budget_tokens=self.budget_tokens,
            budget_intervals=self.budget_intervals,
            kappa_probe=self.kappa_probe,
            aggregate=self.aggregate,
        )
        self._committed, self._reason, self._tokens = None, "answer", 0
        self._observer.reset(self.episode)
        info = {
            "action_mask": self._observer.mask.copy(),
            "split": self.split.name,
            "question": question,
            "order_seed": self.order_seed,
        }
        return self._observer.observation.copy(), info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Take one action; see the class docstring for indices, rewards and info."""
        episode = self.episode
        if episode is None:
            raise InvalidAction("step() before reset(): call reset() first")
        a = self._action_index(action)
        if not (0 <= a < self._num_actions and self._observer.mask[a]):
            raise self._rejection(a)
        if a == ANSWER:
            episode.answer(self._committed, self._reason)
            touched = -1
        else:
            touched = apply_action(episode, a, self.max_branches)
        tokens = episode.tokens
        reward = -self.cost_weight * (tokens - self._tokens)
        self._tokens = tokens
        self._observer.update(touched)
        info: dict[str, Any] = {"action_mask": self._observer.mask.copy(), "tokens": tokens}
        terminated = episode.result is not None
        if terminated:
            reward += 1.0 if episode.result.correct else 0.0
            info["result"] = episode.result
        return self._observer.observation.copy(), reward, terminated, False, info

    def _action_index(self, action: Any) -> int:
        """The action as an int; a float (1.5), a string or an array of several values is
        an error, not a silent truncation."""
        if isinstance(action, np.ndarray) and action.shape == () or isinstance(action, np.generic):
            action = action.item()
        if isinstance(action, bool) or not isinstance(action, int):
            raise InvalidAction(
                f"action must be an integer in [0, {self._num_actions}) (see the action table), got {action!r} "
                f"of type {type(action).__name__}"
            )
        return action

    def action_masks(self) -> np.ndarray:
        """The admissible actions now (sb3-contrib's ``MaskablePPO`` contract); a copy."""
        return self._observer.mask.copy()

    def render(self) -> str | None:
        """With ``render_mode="ansi"``, the state as text: branches, cost, vote."""
        if self.render_mode != "ansi" or self.episode is None:
            return None
        return _render_text(self.episode, self.split.name if self.split else "")

    # ============================================================ controller
    def commit_answer(self, answer_id: int | None, reason: str = "answer") -> None:
        """Make the next ANSWER give ``answer_id`` (None: the aggregation rule).

        The answer must be ``-1`` (no answer) or one already revealed in this episode
        (a probe, a latest or a final answer). ``reason`` is kept in the result.
        """
        episode = self.episode
        if episode is None or episode.done:
            raise InvalidAction("commit_answer() needs a running episode: call reset() first")
        if answer_id is not None:
            answer_id = int(answer_id)
            revealed = {a for _, _, a in episode.revealed_probes}
            revealed.update(episode.latest_answers)
            if answer_id != -1 and answer_id not in revealed:
                raise InvalidAction(
                    f"question {episode.question.index} of {self.split.name}: commit_answer({answer_id}) names an "
                    f"answer not revealed in this episode (revealed: {sorted(a for a in revealed if a >= 0)})"
                )
        self._committed, self._reason = answer_id, reason

    def _rejection(self, action: int) -> InvalidAction:
        # The engine's own error class, so a controller behaves the same through the env
        # (BudgetExceeded ends its episode with the aggregation rule).
        where = f"question {self.episode.question.index} of {self.split.name}"
        try:
            name = describe_action(action, self.max_branches)
        except InvalidAction as err:
            return InvalidAction(f"{where}: {err}")
        reason = inadmissible_reason(self.episode, action, self.max_branches)
        error = BudgetExceeded if reason and OVER_BUDGET in reason else InvalidAction
        return error(f"{where}: action {action} = {name} is not admissible: {reason or 'masked out'}")

    def _choose_split(self, name: str | None, uniform: float) -> Split:
        if name is None:
            return self.splits[int(uniform * len(self.splits))]
        for s in self.splits:
            if s.name == name:
                return s
        raise ValueError(f"reset option split={name!r} is not one of {', '.join(s.name for s in self.splits)}")

    def _choose_question(self, question: int | None, uniform: float) -> int:
        if question is not None:
            q = int(question)
            if not 0 <= q < self.split.num_questions:
                raise ValueError(
                    f"reset option question={q}: split {self.split.name} has {self.split.num_questions} questions"
                )
            return q
        if self.questions is not None:
            return self.questions[int(uniform * len(self.questions))]
        return int(uniform * self.split.num_questions)


def _render_text(episode: Episode, split_name: str) -> str:
    """A few lines: the question, every opened branch, cost and the default answer."""
    q = episode.question
    status_name = {FINISHED: "finished", PRUNED: "pruned"}
    budget = "" if episode.budget is None else f" / budget {episode.budget:g}"
    lines = [
        f"{split_name} question {q.index}: {episode.num_opened}/{episode.num_available} branches open, "
        f"cost {episode.cost:g} intervals{budget}, {episode.tokens} tokens"
    ]
    for j in range(episode.num_opened):
        state = status_name.get(episode.status(j), "active")
        answer = episode.answer_text(episode.latest_answer(j)) or "-"
        probed = " probed" if episode.is_probed(j) and state == "active" else ""
        lines.append(f"  branch {j:3d}: depth {episode.depth(j):3d} {state:8s}{probed:7s} latest {answer}")
    if episode.done:
        r = episode.result
        lines.append(f"  answered {r.answer_text or '-'} ({'correct' if r.correct else 'wrong'}; gold {q.gold})")
    return "\n".join(lines) + "\n"
