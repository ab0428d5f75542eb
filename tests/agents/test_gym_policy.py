"""Controllers run THROUGH AutoTTS-v0 give the same per-episode results as run directly."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import pytest

import autotts_gym  # noqa: F401  (registers AutoTTS-v0)
from agents.base import Controller
from agents.gym_policy import ACTIONS, VIEWS, EnvEpisode, run_controller_in_env
from autotts_gym.data.sources import load_store
from autotts_gym.data.store import Split
from autotts_gym.engine import Episode, EpisodeResult, InvalidAction
from autotts_gym.engine.voting import majority, vote_confidence
from autotts_gym.evaluation.orders import branch_order

REAL_SPLIT = ("Qwen3-4B", "aime25.json")  # under the release folder
PAIRS = [(0, 0), (3, 7), (11, 42), (17, 99), (29, 5)]


@dataclass(frozen=True)
class ReadUntilConfident(Controller):
    """Read branches whole until the Beta confidence of their finals passes a threshold."""

    name = "read-until-confident"
    threshold: float = 0.9
    most: int = 20

    def run(self, episode: Episode) -> EpisodeResult:
        finals: list[int] = []
        while len(finals) < min(self.most, episode.num_available):
            finals.append(episode.read_whole()[1])
            winner, _, _, conf = vote_confidence(finals)
            if len(finals) > 1 and conf > self.threshold:
                return episode.answer(winner, reason="confident")
        return episode.answer(majority(finals)[0], reason="most")


@dataclass(frozen=True)
class ProbeAndPrune(Controller):
    """Open a few branches with open_and_probe, grow them with continue_and_probe and the
    primitive continue/probe, prune the ones that disagree with the leader; answer with
    the engine's aggregation rule (no explicit answer)."""

    name = "probe-and-prune"
    width: int = 4
    rounds: int = 30
    patience: int = 3

    def run(self, episode: Episode) -> EpisodeResult:
        latest = [episode.open_and_probe()[1] for _ in range(min(self.width, episode.num_available))]
        off = [0] * len(latest)
        for step in range(self.rounds):
            active = episode.active_branches
            if not active:
                break
            for j, answer in zip(active[::2], episode.continue_and_probe_many(active[::2])):
                latest[j] = answer
            for j in active[1::2]:  # the primitive way
                final = episode.continue_branch(j)
                latest[j] = final if final >= 0 else episode.probe(j)
            leader = majority([latest[j] for j in range(len(latest)) if not episode.is_pruned(j)])[0]
            for j in episode.active_branches:
                off[j] = off[j] + 1 if latest[j] != leader else 0
                if off[j] >= self.patience and len(episode.active_branches) > 1:
                    episode.prune(j)
            if step == 5 and episode.can_branch:
                j = episode.branch()
                latest.append(episode.latest_answer(j))
                off.append(0)
        return episode.answer(reason="aggregate")


def direct(
    controller: Controller, split: Split, question: int, seed: int, shuffle: str, subsample: int | None = 64
) -> EpisodeResult:
    """The controller on an engine Episode of the env's order (the pool cut to 64), or of
    the whole pool (``subsample=None``, as the evaluator runs it)."""
    data = split.question(question)
    return controller(Episode(data, branch_order(data.num_branches, seed, question, shuffle, subsample)))


def assert_same(controller: Controller, env: gym.Env, pairs, shuffle: str, subsample: int | None = 64) -> None:
    split = env.unwrapped.splits[0]
    for question, seed in pairs:
        through_env = run_controller_in_env(controller, env, question, seed, split=split.name)
        assert through_env == direct(controller, split, question, seed, shuffle, subsample), (question, seed)


@pytest.mark.parametrize("controller", [ReadUntilConfident(), ReadUntilConfident(0.99, 64), ProbeAndPrune()])
def test_small_controllers_on_the_default_store(controller):
    env = gym.make("AutoTTS-v0", split="synthetic/search", shuffle="numpy")
    assert_same(controller, env, PAIRS, "numpy")


@pytest.mark.parametrize("controller", [ReadUntilConfident(), ProbeAndPrune(), ProbeAndPrune(width=64, rounds=60)])
def test_small_controllers_on_a_real_split(release, controller):
    env = gym.make("AutoTTS-v0", store=str(release.joinpath(*REAL_SPLIT)), shuffle="release")
    assert_same(controller, env, PAIRS, "release")


@pytest.mark.parametrize("method", ["sc", "asc", "esc", "parallel-probe", "cmc"])
def test_registry_methods_through_the_env(release, method):
    registry = pytest.importorskip("agents.registry")
    controller = registry.make_controller(method)
    env = gym.make("AutoTTS-v0", store=str(release.joinpath(*REAL_SPLIT)), shuffle="release")
    # These methods open at most 64 branches, so the evaluator's full-pool episodes agree too.
    assert_same(controller, env, PAIRS[:3], "release", subsample=None)


def test_budget_errors_match_the_engine():
    """Under a budget, a composite that does not fit fails the same way through both doors,
    and what the episode did before the failure is the same."""
    env = gym.make("AutoTTS-v0", split="synthetic/search", budget_intervals=6)
    split = env.unwrapped.splits[0]
    data = split.question(2)
    engine = Episode(data, branch_order(data.num_branches, 1, 2, "numpy"), budget_intervals=6)
    env.reset(options={"question": 2, "order_seed": 1})
    facade = EnvEpisode(env)
    for episode in (engine, facade):
        with pytest.raises(InvalidAction, match="exceeds the budget"):
            for _ in range(10):
                j = episode.open_and_probe()[0]
                while episode.is_active(j):
                    episode.continue_and_probe(j)
    assert (facade.cost, facade.tokens, facade.num_actions, facade.revealed_probes) == (
        engine.cost,
        engine.tokens,
        engine.num_actions,
        engine.revealed_probes,
    )


def test_facade_refuses_unrevealed_answers_and_hides_engine_internals():
    env = gym.make("AutoTTS-v0", split="synthetic/search")
    env.reset(options={"question": 0, "order_seed": 0})
    facade = EnvEpisode(env)
    gold = facade.question.gold_id
    with pytest.raises(InvalidAction, match="not revealed"):
        facade.answer(gold if gold >= 0 else 0)
    private = next(name for name in Episode.__slots__ if name.startswith("_"))
    with pytest.raises(AttributeError, match=private):
        getattr(facade, private)  # the engine's state is not reachable through the facade
    j, answer = facade.read_whole()
    assert facade.answer(answer).answer == answer and facade.done


def test_views_and_actions_cover_the_episode_api():
    public = {name for name in dir(Episode) if not name.startswith("_")}
    assert set(ACTIONS) <= public
    unclassified = public - set(ACTIONS) - set(VIEWS)
    assert not unclassified, f"classify these Episode attributes as a view or an action: {unclassified}"
    assert all(callable(getattr(EnvEpisode, name)) for name in ACTIONS)


def test_run_controller_in_env_picks_the_split():
    store = load_store(None)
    env = gym.make("AutoTTS-v0", store=store, shuffle="release")
    controller = ReadUntilConfident()
    held_out = store.split("synthetic/heldout")
    result = run_controller_in_env(controller, env, 4, 3, split="synthetic/heldout")
    assert env.unwrapped.split is held_out
    assert result == direct(controller, held_out, 4, 3, "release")
