"""A budget ends an episode gracefully, identically through the engine and the env."""

import gymnasium as gym
import pytest

import autotts_gym  # noqa: F401
from agents.base import Controller
from agents.gym_policy import run_controller_in_env
from agents.registry import METHODS, make_controller
from autotts_gym.data.sources import load_store
from autotts_gym.engine import BudgetExceeded, Episode
from autotts_gym.evaluation.orders import branch_order


@pytest.fixture(scope="module")
def split(release):
    return load_store(release).split("Qwen3-8B/aime25")


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("budget_tokens", [20_000, 150_000])
def test_budget_ends_episode_identically_through_both_doors(split, method, budget_tokens):
    controller = make_controller(method)
    env = gym.make("AutoTTS-v0", store=split_store(split), shuffle="release", budget_tokens=budget_tokens)
    for question, seed in [(0, 1), (7, 4), (21, 9)]:
        data = split.question(question)
        order = branch_order(data.num_branches, seed, question, "release")[:64]
        direct = controller(Episode(data, order, budget_tokens=budget_tokens))
        through_env = run_controller_in_env(controller, env, question, seed)
        assert direct == through_env
        # The MDP cost (intervals) never exceeds the budget.
        assert direct.intervals <= budget_tokens // data.interval_tokens


def split_store(split):
    from autotts_gym.data.store import Store

    return Store([split])


def test_budget_exceeded_is_an_invalid_action_subclass_and_raised_by_engine(split):
    data = split.question(0)
    episode = Episode(data, branch_order(data.num_branches, 0, 0, "release"), budget_intervals=2)
    j = episode.branch()
    episode.continue_branch(j)
    with pytest.raises(BudgetExceeded, match="exceeds the budget"):
        episode.continue_branch(j)
    assert not episode.done


def test_controller_that_ignores_the_budget_gets_the_aggregate_answer(split):
    class Greedy(Controller):
        name = "greedy"

        def run(self, episode):
            while True:
                episode.open_and_probe()

    data = split.question(3)
    episode = Episode(data, branch_order(data.num_branches, 2, 3, "release"), budget_intervals=10)
    result = Greedy()(episode)
    assert result.stop_reason == "budget"
    assert result.branches_opened == 10
    assert result.answer == episode.latest_answers[0] or result.answer in episode.latest_answers
