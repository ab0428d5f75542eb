"""Observation, action mask and action decoding of AutoTTS-v0, over a bare Episode.

These are the env's spaces as plain functions of an :class:`~autotts_gym.engine.Episode`,
so a policy trained on the env (e.g. a PPO model) can act on an episode without an env::

    config = env.unwrapped.observation_config          # or ObservationConfig(64, ...)
    while not episode.done:
        obs, mask = observe(episode, config), action_mask(episode, config.max_branches)
        apply_action(episode, policy(obs, mask), config.max_branches)

Actions (``N = max_branches``): ``0`` ANSWER, ``1`` BRANCH, ``2`` READ_WHOLE,
``3 + i`` CONTINUE(i), ``3 + N + i`` PROBE(i), ``3 + 2N + i`` PRUNE(i), for ``i < N``.

Observation: ``BRANCH_FEATURES`` x N per-branch values stored feature-major (value of
feature ``f`` for branch ``i`` at ``obs[f * N + i]``), then ``GLOBAL_FEATURES``. All lie in
[0, 1]. The *vote* is the latest revealed answer of every unpruned opened branch (a
finished branch votes with its final answer; ``ERR`` votes like any answer); its *leader*
is the answer with most votes, ties to the smaller answer id (ids number a question's
answers in the order they first appear in the stored pool; a live question numbers them
as they are revealed, and its recorded store keeps those ids), so the observation
depends on the state only, never on the order in which it was reached. Nothing in it
depends on the size of the question's vocabulary, which a live question grows as
answers appear.

:class:`EpisodeObserver` keeps observation and mask up to date incrementally (one
branch per action, preallocated arrays); the env uses it on its hot path and the pure
functions below build a fresh one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autotts_gym.engine import ACTIVE, FINISHED, PRUNED, Episode, InvalidAction
from autotts_gym.engine.voting import beta_confidence

ANSWER, BRANCH, READ_WHOLE = 0, 1, 2
NUM_FIXED_ACTIONS = 3

BRANCH_FEATURES = (
    "opened",  # 1 once the branch is opened
    "active",  # 1 while it can be continued, probed or pruned
    "finished",  # 1 once it reached its end
    "pruned",  # 1 once pruned
    "depth",  # intervals decoded / depth_scale, clipped to 1
    "probed",  # 1 if probed at its current depth (or finished)
    "revealed",  # 1 if it has a revealed answer
    "share",  # votes for its latest answer / all votes
    "agrees",  # 1 if its latest answer is the vote leader
    "no_answer",  # 1 if its latest answer is the no-answer string (ERR)
)
GLOBAL_FEATURES = (
    "opened",  # branches opened / N
    "active",  # active branches / N
    "finished",  # finished branches / N
    "unopened",  # branches still available to open / N
    "cost",  # MDP cost / budget (no budget: / cost_scale), clipped to 1
    "votes",  # number of votes / N
    "leader_share",  # leader's votes / all votes
    "runner_up_share",  # runner-up's votes / all votes
    "leader_confidence",  # Beta confidence of the vote's top two
    "distinct_answers",  # distinct answers in the vote / N
    "completed_confidence",  # Beta confidence of the finished branches' final answers
    "completed_agrees",  # 1 if the completed pool's leader is the vote leader
)
(_OPENED, _ACTIVE, _FINISHED, _PRUNED, _DEPTH, _PROBED, _REVEALED, _SHARE, _AGREES, _NO_ANSWER) = range(
    len(BRANCH_FEATURES)
)
(
    _G_OPENED,
    _G_ACTIVE,
    _G_FINISHED,
    _G_UNOPENED,
    _G_COST,
    _G_VOTES,
    _G_V1,
    _G_V2,
    _G_CONF,
    _G_DISTINCT,
    _G_COMPLETED_CONF,
    _G_COMPLETED_AGREES,
) = range(len(GLOBAL_FEATURES))


@dataclass(frozen=True)
class ObservationConfig:
    """What fixes the observation's size and scales; save it with a trained policy.

    Attributes:
        max_branches: N, branches the observation and the action space cover.
        depth_scale: depth (in intervals) that maps to 1.0 (the env uses the longest
            branch of its store, ``max(num_probes) + 1``).
        cost_scale: cost (in intervals) that maps to 1.0 when the episode has no
            budget; None: ``max_branches * depth_scale``.
    """

    max_branches: int = 64
    depth_scale: float = 81.0
    cost_scale: float | None = None

    def __post_init__(self) -> None:
        if self.max_branches < 1:
            raise ValueError(f"max_branches must be >= 1, got {self.max_branches}")
        if self.depth_scale <= 0:
            raise ValueError(f"depth_scale must be > 0, got {self.depth_scale}")
        if self.cost_scale is not None and self.cost_scale <= 0:
            raise ValueError(f"cost_scale must be > 0, got {self.cost_scale}")

    @property
    def num_actions(self) -> int:
        """Size of the Discrete action space, ``3 + 3N``."""
        return NUM_FIXED_ACTIONS + 3 * self.max_branches

    @property
    def observation_size(self) -> int:
        """Length of the observation vector."""
        return len(BRANCH_FEATURES) * self.max_branches + len(GLOBAL_FEATURES)


# ================================================================== actions
def num_actions(max_branches: int) -> int:
    """Size of the action space for ``max_branches`` branches."""
    return NUM_FIXED_ACTIONS + 3 * max_branches


def decode_action(action: int, max_branches: int) -> tuple[str, int]:
    """``(kind, branch)`` of an action index; branch is -1 for ANSWER, BRANCH, READ_WHOLE.

    Raises InvalidAction for an index outside the action space.
    """
    a = int(action)
    if a == ANSWER:
        return "ANSWER", -1
    if a == BRANCH:
        return "BRANCH", -1
    if a == READ_WHOLE:
        return "READ_WHOLE", -1
    k, j = divmod(a - NUM_FIXED_ACTIONS, max_branches)
    if a < 0 or k > 2:
        raise InvalidAction(f"action {a} is outside the action space Discrete({num_actions(max_branches)})")
    return ("CONTINUE", "PROBE", "PRUNE")[k], j


def describe_action(action: int, max_branches: int) -> str:
    """Readable name of an action index: ``"BRANCH"``, ``"PROBE(3)"``, ..."""
    kind, j = decode_action(action, max_branches)
    return kind if j < 0 else f"{kind}({j})"


def encode_action(kind: str, branch: int = -1, max_branches: int = 64) -> int:
    """The action index of ``kind`` (``"ANSWER"``, ``"CONTINUE"``, ...) on ``branch``."""
    fixed = {"ANSWER": ANSWER, "BRANCH": BRANCH, "READ_WHOLE": READ_WHOLE}
    if kind in fixed:
        return fixed[kind]
    per_branch = ("CONTINUE", "PROBE", "PRUNE")
    if kind not in per_branch:
        raise ValueError(f"unknown action kind {kind!r}; choose one of {', '.join([*fixed, *per_branch])}")
    if not 0 <= branch < max_branches:
        raise InvalidAction(f"{kind}({branch}): the branch must lie in 0..{max_branches - 1}")
    return NUM_FIXED_ACTIONS + per_branch.index(kind) * max_branches + branch


def apply_action(
    episode: Episode, action: int, max_branches: int, answer: int | None = None, reason: str = "answer"
) -> int:
    """Take one action on the episode through the engine.

    The engine checks admissibility and raises InvalidAction itself. ANSWER gives
    ``answer`` (None: the episode's aggregation rule) with ``reason``.

    Returns the branch the action touched (-1 for ANSWER).
    """
    a = int(action)
    if a >= NUM_FIXED_ACTIONS:  # the common case first: CONTINUE, PROBE, PRUNE
        k, j = divmod(a - NUM_FIXED_ACTIONS, max_branches)
        if k == 0:
            episode.continue_branch(j)
        elif k == 1:
            episode.probe(j)
        elif k == 2:
            episode.prune(j)
        else:
            decode_action(a, max_branches)  # raises: outside the action space
        return j
    if a == BRANCH:
        return episode.branch()
    if a == READ_WHOLE:
        return episode.read_whole()[0]
    if a == ANSWER:
        episode.answer(answer, reason)
        return -1
    decode_action(a, max_branches)  # raises: negative index
    raise AssertionError("unreachable")


def inadmissible_reason(episode: Episode, action: int, max_branches: int) -> str | None:
    """Why the engine would refuse ``action`` now, as a phrase; None if it accepts it."""
    kind, j = decode_action(action, max_branches)
    if episode.done:
        return "the episode has ended (ANSWER was taken); call reset()"
    if kind == "ANSWER":
        return None
    if kind in ("BRANCH", "READ_WHOLE"):
        if episode.num_opened >= episode.num_available:
            return f"all {episode.num_available} branches of this episode are open"
        return _over_budget(episode, _open_cost(episode, kind))
    if j >= episode.num_opened:
        return f"branch {j} is not open ({episode.num_opened} opened)"
    if episode.is_finished(j):
        return f"branch {j} is finished"
    if episode.is_pruned(j):
        return f"branch {j} is pruned"
    if kind == "CONTINUE":
        return _over_budget(episode, 1)
    if kind == "PROBE":
        if episode.is_probed(j):
            return f"branch {j} was already probed at depth {episode.depth(j)}"
        return _over_budget(episode, episode.kappa_probe)
    return None


def _open_cost(episode: Episode, kind: str) -> int:
    """Intervals that BRANCH or READ_WHOLE adds (READ_WHOLE counts the whole branch)."""
    if kind == "BRANCH":
        return 1
    return episode.question.num_probes[episode.order[episode.num_opened]] + 1


def _fits(episode: Episode, extra: float) -> bool:
    # The engine's own admissibility test: cost + extra <= budget.
    budget = episode.budget
    return budget is None or episode.cost + extra <= budget


OVER_BUDGET = "exceeds the budget"


def _over_budget(episode: Episode, extra: float) -> str | None:
    if _fits(episode, extra):
        return None
    return f"it {OVER_BUDGET} (cost {episode.cost:g} + {extra:g} > {episode.budget:g} intervals)"


# ============================================================= observation
class EpisodeObserver:
    """Observation and action mask of one episode, updated incrementally.

    Call :meth:`reset` with an episode, then :meth:`update` with the branch each action
    touched (-1 for none). :attr:`observation` and :attr:`mask` are preallocated buffers
    that change in place: copy them before handing them out. Scalars are written through
    memoryviews (about half the cost of numpy item assignment) and the per-branch vote
    features through a few whole-row numpy operations.
    """

    def __init__(self, config: ObservationConfig) -> None:
        n = config.max_branches
        self.config = config
        self.observation = np.zeros(config.observation_size, np.float32)
        self.mask = np.zeros(config.num_actions, bool)
        rows = self.observation[: len(BRANCH_FEATURES) * n].reshape(len(BRANCH_FEATURES), n)
        self._share_row, self._agrees_row = rows[_SHARE], rows[_AGREES]
        self._obs = memoryview(self.observation)
        self._mask = memoryview(self.mask)
        self._g = len(BRANCH_FEATURES) * n  # offset of the global features
        self._continue = self.mask[NUM_FIXED_ACTIONS : NUM_FIXED_ACTIONS + n]
        self._probe = self.mask[NUM_FIXED_ACTIONS + n : NUM_FIXED_ACTIONS + 2 * n]
        self._active = np.zeros(n, bool)
        self._unprobed = np.zeros(n, bool)  # active and not probed at the current depth
        self._latest = np.zeros(n, np.intp)  # latest answer, or the sentinel slot
        self._n = n
        self._inv_n = 1.0 / n
        self._inv_depth = 1.0 / config.depth_scale
        self._episode: Episode | None = None

    def reset(self, episode: Episode) -> None:
        """Start observing ``episode`` (its branches so far included).

        The episode's order may hold at most ``max_branches`` branches (the env cuts it
        there), so every branch it can open has a slot in the observation and the mask.
        """
        cfg = self.config
        if episode.num_available > cfg.max_branches:
            raise ValueError(
                f"question {episode.question.index}: the episode can open {episode.num_available} branches but the "
                f"observation covers max_branches={cfg.max_branches}; cut its order to max_branches"
            )
        self._episode = episode
        self.observation.fill(0.0)
        self.mask.fill(False)
        self._active.fill(False)
        self._unprobed.fill(False)
        # Per-answer arrays: one slot per answer id, then a last slot that stays 0 (the
        # sentinel, -1: "no answer", reached by the gathers' wrap mode). Sized by the
        # vocabulary known at reset; a live question interns answers as they appear, so
        # they grow when a larger id shows up (_grow), which never changes a value.
        vocab_size = len(episode.question.vocab)
        self._latest.fill(-1)
        self._counts_np = np.zeros(vocab_size + 1, np.float32)  # votes per answer id
        self._is_leader = np.zeros(vocab_size + 1, np.float32)  # 1 at the leader's id
        self._num_ids = vocab_size  # ids with a slot
        self._counts: dict[int, int] = {}  # the vote: answer -> votes
        self._total = 0
        self._leader = -1
        self._final_counts: dict[int, int] = {}  # the completed pool
        self._vote_of: list[int] = []  # answer each branch votes with, -1 if none
        self._answer_of: list[int] = []  # latest answer of each branch, -1 if none
        self._status_of: list[int] = []  # status seen at the last update
        self._n_active = self._n_finished = 0
        self._no_answer = episode.question.no_answer_id
        self._budgeted = episode.budget is not None
        self._available = episode.num_available  # fixed by the order
        # Budget flags first: branch updates write the mask with them.
        self._fits_step, self._fits_probe = _fits(episode, 1), _fits(episode, episode.kappa_probe)
        self._vote_dirty = self._finals_dirty = False
        scale = episode.budget if episode.budget else cfg.cost_scale or cfg.max_branches * cfg.depth_scale
        self._inv_cost = 1.0 / scale
        for j in range(episode.num_opened):
            self._update_branch(j)
        self._update_globals()

    def update(self, branch: int) -> None:
        """Bring observation and mask up to date after an action on ``branch`` (-1: none)."""
        if branch >= 0:
            self._update_branch(branch)
        if self._budgeted:
            self._update_budget()
        self._update_globals()

    # ------------------------------------------------------------ branches
    def _update_branch(self, j: int) -> None:
        ep = self._episode
        obs, n = self._obs, self._n
        if j == len(self._status_of):  # newly opened
            self._status_of.append(-1)
            self._vote_of.append(-1)
            self._answer_of.append(-1)
            obs[_OPENED * n + j] = 1.0
        status = ep.status(j)
        answer = ep.latest_answer(j)
        active = status == ACTIVE
        if status != self._status_of[j]:
            self._status_changed(j, status, answer)
        probed = ep.is_probed(j)
        depth = ep.depth(j) * self._inv_depth
        obs[_DEPTH * n + j] = depth if depth < 1.0 else 1.0
        obs[_PROBED * n + j] = probed
        unprobed = active and not probed
        self._unprobed[j] = unprobed
        mask = self._mask
        mask[NUM_FIXED_ACTIONS + j] = active and self._fits_step
        mask[NUM_FIXED_ACTIONS + n + j] = unprobed and self._fits_probe
        vote = answer if status != PRUNED else -1
        if answer != self._answer_of[j]:
            self._answer_of[j] = answer
            obs[_REVEALED * n + j] = answer >= 0
            obs[_NO_ANSWER * n + j] = answer >= 0 and answer == self._no_answer
            if answer >= self._num_ids:
                self._grow(answer)
            self._latest[j] = answer
        if vote != self._vote_of[j]:
            self._recount(j, vote)

    def _grow(self, answer: int) -> None:
        """Give answer ids up to ``answer`` a slot (a live question's vocabulary grows)."""
        size = max(answer + 1, 2 * self._num_ids)
        for name in ("_counts_np", "_is_leader"):
            old = getattr(self, name)
            new = np.zeros(size + 1, np.float32)
            new[: self._num_ids] = old[: self._num_ids]
            setattr(self, name, new)
        self._num_ids = size

    def _status_changed(self, j: int, status: int, answer: int) -> None:
        obs, n = self._obs, self._n
        previous = self._status_of[j]
        self._status_of[j] = status
        active = status == ACTIVE
        self._n_active += active - (previous == ACTIVE)
        obs[_ACTIVE * n + j] = active
        obs[_FINISHED * n + j] = status == FINISHED
        obs[_PRUNED * n + j] = status == PRUNED
        self._active[j] = active
        self._mask[NUM_FIXED_ACTIONS + 2 * n + j] = active
        if status == FINISHED:
            self._n_finished += 1
            self._final_counts[answer] = self._final_counts.get(answer, 0) + 1
            self._finals_dirty = True

    def _recount(self, j: int, vote: int) -> None:
        """Move branch j's vote to ``vote`` (-1: none); the vote rows are redone once per update."""
        old = self._vote_of[j]
        counts = self._counts
        if old >= 0:
            left = counts[old] - 1
            if left:
                counts[old] = left
            else:
                del counts[old]
            self._counts_np[old] = left
            self._total -= 1
        if vote >= 0:
            counts[vote] = c = counts.get(vote, 0) + 1
            self._counts_np[vote] = c
            self._total += 1
        self._vote_of[j] = vote
        self._vote_dirty = True

    # -------------------------------------------------------------- global
    def _update_budget(self) -> None:
        ep = self._episode
        fits_step, fits_probe = _fits(ep, 1), _fits(ep, ep.kappa_probe)
        if fits_step != self._fits_step or fits_probe != self._fits_probe:
            self._fits_step, self._fits_probe = fits_step, fits_probe
            np.logical_and(self._active, fits_step, out=self._continue)
            np.logical_and(self._unprobed, fits_probe, out=self._probe)

    def _update_globals(self) -> None:
        ep = self._episode
        obs, g, inv_n = self._obs, self._g, self._inv_n
        opened = ep.num_opened
        if ep.done:
            self.mask.fill(False)
        else:
            mask = self._mask
            mask[ANSWER] = True
            can_open = opened < self._available
            mask[BRANCH] = can_open and self._fits_step
            mask[READ_WHOLE] = can_open and (not self._budgeted or _fits(ep, _open_cost(ep, "READ_WHOLE")))
        obs[g + _G_OPENED] = opened * inv_n
        obs[g + _G_ACTIVE] = self._n_active * inv_n
        obs[g + _G_FINISHED] = self._n_finished * inv_n
        obs[g + _G_UNOPENED] = (self._available - opened) * inv_n
        cost = ep.cost * self._inv_cost
        obs[g + _G_COST] = cost if cost < 1.0 else 1.0
        if self._vote_dirty:
            self._update_vote()
        if self._finals_dirty:
            self._update_completed()

    def _update_vote(self) -> None:
        self._vote_dirty = False
        obs, g = self._obs, self._g
        leader, v1, v2 = _top_two(self._counts)
        total = self._total
        inv_total = 1.0 / total if total else 0.0
        obs[g + _G_VOTES] = min(1.0, total * self._inv_n)
        obs[g + _G_V1] = v1 * inv_total
        obs[g + _G_V2] = v2 * inv_total
        obs[g + _G_CONF] = beta_confidence(v1, v2)
        obs[g + _G_DISTINCT] = min(1.0, len(self._counts) * self._inv_n)
        # Gathers by answer id (the sentinel slot is 0): cheaper than ufuncs on the rows.
        self._counts_np.take(self._latest, out=self._share_row, mode="wrap")
        self._share_row *= inv_total
        if leader != self._leader:
            self._is_leader[self._leader] = 0.0  # index -1 is the sentinel slot: stays 0
            self._is_leader[leader] = 1.0 if leader >= 0 else 0.0
            self._leader = leader
            self._finals_dirty = True  # completed_agrees compares with the new leader
        self._is_leader.take(self._latest, out=self._agrees_row, mode="wrap")

    def _update_completed(self) -> None:
        self._finals_dirty = False
        winner, v1, v2 = _top_two(self._final_counts)
        self._obs[self._g + _G_COMPLETED_CONF] = beta_confidence(v1, v2)
        self._obs[self._g + _G_COMPLETED_AGREES] = winner >= 0 and winner == self._leader


def _top_two(counts: dict[int, int]) -> tuple[int, int, int]:
    """``(leader, v1, v2)``; ties go to the smaller answer id; ``(-1, 0, 0)`` if empty."""
    leader, v1, v2 = -1, 0, 0
    for answer, c in counts.items():
        if c > v1 or (c == v1 and answer < leader):
            if leader >= 0:
                v2 = max(v2, v1)
            leader, v1 = answer, c
        elif c > v2:
            v2 = c
    return leader, v1, v2


def observe(episode: Episode, config: ObservationConfig) -> np.ndarray:
    """The observation of ``episode`` (a fresh float32 array)."""
    observer = EpisodeObserver(config)
    observer.reset(episode)
    return observer.observation


def action_mask(episode: Episode, max_branches: int) -> np.ndarray:
    """Boolean mask of the actions the engine accepts now (a fresh array)."""
    observer = EpisodeObserver(ObservationConfig(max_branches))
    observer.reset(episode)
    return observer.mask


def split_observation(observation: np.ndarray, max_branches: int) -> tuple[np.ndarray, np.ndarray]:
    """``(per_branch, global)`` views: ``per_branch[i, f]`` is feature f of branch i."""
    n_branch = len(BRANCH_FEATURES) * max_branches
    per_branch = observation[..., :n_branch].reshape(*observation.shape[:-1], len(BRANCH_FEATURES), max_branches)
    return np.swapaxes(per_branch, -1, -2), observation[..., n_branch:]
