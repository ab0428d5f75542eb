"""AutoTTS-v0: Gymnasium API, vector envs, reset options, masks, budgets, errors, answers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import autotts_gym  # noqa: F401  (registers AutoTTS-v0)
from autotts_gym.data.store import Split, SplitInfo, Store
from autotts_gym.engine import InvalidAction
from autotts_gym.envs.autotts_env import AutoTTSEnv
from autotts_gym.envs.spaces import (
    ANSWER,
    BRANCH,
    BRANCH_FEATURES,
    GLOBAL_FEATURES,
    READ_WHOLE,
    encode_action,
    split_observation,
)
from autotts_gym.evaluation.orders import branch_order


def tiny_store() -> Store:
    """Two questions, Delta = 100. Question 0's branches: a 2-probe branch ending in "7"
    (total 250), a 0-probe branch "7" (total 40), a 3-probe branch "ERR" (total 280)."""
    info = SplitInfo(model="tiny", benchmark="t", interval_tokens=100)
    branches = [
        [(["1", "7"], 250, "7"), ([], 40, "7"), (["2", "2", "ERR"], 280, "ERR")],
        [(["5"], 120, "5"), (["5", "6"], 190, "6")],
    ]
    return Store([Split.from_lists(info, ["q0", "q1"], ["7", "6"], branches)])


def make_tiny(**kwargs) -> gym.Env:
    kwargs.setdefault("max_branches", 4)
    kwargs.setdefault("shuffle", "release")
    return gym.make("AutoTTS-v0", store=tiny_store(), **kwargs)


def step_ok(env: gym.Env, action: int):
    obs, reward, terminated, truncated, info = env.step(action)
    assert env.observation_space.contains(obs)
    return obs, reward, terminated, truncated, info


def reset_identity(env: gym.Env, question: int = 0) -> dict:
    """Reset to ``question`` with order_seed 0 and check the order the env built."""
    _, info = env.reset(seed=0, options={"question": question, "order_seed": 0})
    data = env.unwrapped.split.question(question)
    assert tuple(env.unwrapped.episode.order) == branch_order(data.num_branches, 0, question, "release", 4)
    return info


# ------------------------------------------------------------------ Gymnasium API
def test_default_store_make_and_check_env():
    env = gym.make("AutoTTS-v0")
    assert [s.name for s in env.unwrapped.splits] == ["synthetic/search", "synthetic/heldout"]
    assert env.action_space.n == 3 + 3 * 64
    assert env.observation_space.shape == (len(BRANCH_FEATURES) * 64 + len(GLOBAL_FEATURES),)
    check_env(env.unwrapped)
    assert gym.make("AutoTTS-v0", store="default").unwrapped.store is env.unwrapped.store  # loaded once


def test_store_folder_replays_like_the_store(tmp_path):
    folder = tiny_store().save(tmp_path / "store")
    results = []
    for store in (str(folder), tiny_store()):
        env = gym.make("AutoTTS-v0", store=store, max_branches=4)
        env.reset(options={"question": 0, "order_seed": 3})
        for _ in range(3):
            env.step(READ_WHOLE)
        results.append(env.step(ANSWER)[4]["result"])
    assert results[0] == results[1] and results[0].tokens == 570


@pytest.mark.parametrize(
    "kwargs",
    [{"budget_intervals": 5}, {"budget_tokens": 1000, "kappa_probe": 0.5, "max_branches": 8}, {"max_branches": 1}],
)
def test_check_env_variants(kwargs):
    check_env(gym.make("AutoTTS-v0", render_mode="ansi", **kwargs).unwrapped)


def test_check_env_real_split(release):
    check_env(gym.make("AutoTTS-v0", store=str(release / "Qwen3-8B" / "aime24.json"), shuffle="release").unwrapped)


def _vector_run(vec: gym.vector.VectorEnv, steps: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    obs, infos = vec.reset(seed=seed)
    assert obs.shape == (vec.num_envs, vec.single_observation_space.shape[0])
    for _ in range(steps):
        masks = infos["action_mask"]
        assert masks.shape == (vec.num_envs, vec.single_action_space.n) and masks.dtype == bool
        # A sub-env that just ended has an all-False mask; its next action is ignored (autoreset).
        actions = [rng.choice(np.flatnonzero(m)) if m.any() else ANSWER for m in masks]
        obs, rewards, terminated, truncated, infos = vec.step(np.array(actions))
        assert vec.single_observation_space.contains(obs[0].astype(np.float32))
        assert np.all(rewards <= 1.0)


def test_sync_vector_env():
    vec = gym.vector.SyncVectorEnv([lambda: gym.make("AutoTTS-v0", max_branches=8) for _ in range(3)])
    _vector_run(vec, 40, seed=1)
    vec.close()


def test_async_vector_env():
    vec = gym.vector.AsyncVectorEnv([lambda: gym.make("AutoTTS-v0", max_branches=8) for _ in range(2)])
    _vector_run(vec, 20, seed=2)
    vec.close()


def test_action_space_sample_is_admissible():
    env = gym.make("AutoTTS-v0", max_branches=8, budget_intervals=30)
    env.reset(seed=4)
    env.action_space.seed(4)
    for _ in range(300):
        mask = env.unwrapped.action_masks()
        action = env.action_space.sample()
        assert mask[action]
        _, _, terminated, _, _ = env.step(action)
        if terminated:
            env.reset()
    # With an explicit mask it is plain Discrete sampling.
    only = np.zeros(env.action_space.n, np.int8)
    only[5] = 1
    assert env.action_space.sample(mask=only) == 5


def test_maskable_ppo_reads_the_mask():
    sb3_contrib = pytest.importorskip("sb3_contrib")
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.vec_env import DummyVecEnv

    vec = DummyVecEnv([lambda: gym.make("AutoTTS-v0", max_branches=4)])
    vec.reset()
    masks = get_action_masks(vec)
    assert masks.shape == (1, 15) and masks[0, :3].all() and not masks[0, 3:].any()
    model = sb3_contrib.MaskablePPO("MlpPolicy", vec, n_steps=32, batch_size=32, n_epochs=1, seed=0)
    model.learn(64)  # every sampled action must be admissible, or step() raises


# ------------------------------------------------------------------ reset options
def test_reset_options_fix_split_question_and_order():
    env = gym.make("AutoTTS-v0", max_branches=16)
    _, info = env.reset(options={"split": "synthetic/heldout", "question": 7, "order_seed": 11})
    assert (info["split"], info["question"], info["order_seed"]) == ("synthetic/heldout", 7, 11)
    u = env.unwrapped
    assert u.split.name == "synthetic/heldout" and u.episode.question.index == 7
    assert tuple(u.episode.order) == branch_order(u.split.num_branches(7), 11, 7, "numpy", 16)
    assert info["action_mask"].tolist() == u.action_masks().tolist()


def test_reset_seed_determinism_and_sampling():
    env = gym.make("AutoTTS-v0", questions=[2, 5])
    first = [env.reset(seed=9)[1] for _ in range(2)]
    assert {k: first[0][k] for k in ("split", "question", "order_seed")} == {
        k: first[1][k] for k in ("split", "question", "order_seed")
    }
    seen = {(info["split"], info["question"]) for info in (env.reset(seed=s)[1] for s in range(60))}
    assert {q for _, q in seen} == {2, 5}
    assert {s for s, _ in seen} == {"synthetic/search", "synthetic/heldout"}


def test_reset_option_errors():
    env = gym.make("AutoTTS-v0")
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"qestion": 1})
    with pytest.raises(ValueError, match="has 30 questions"):
        env.reset(options={"question": 30, "split": "synthetic/search"})
    with pytest.raises(ValueError, match="is not one of"):
        env.reset(options={"split": "nope/none"})


def test_constructor_errors():
    with pytest.raises(ValueError, match="not both"):
        AutoTTSEnv(budget_tokens=10, budget_intervals=1)
    with pytest.raises(ValueError, match="unknown shuffle"):
        AutoTTSEnv(shuffle="sorted")
    with pytest.raises(ValueError, match="questions \\[99\\] do not exist"):
        AutoTTSEnv(questions=[1, 99])
    with pytest.raises(KeyError, match="no split matches"):
        AutoTTSEnv(split="synthetic/nothing")
    with pytest.raises(ValueError, match="render_mode"):
        AutoTTSEnv(render_mode="human")


# ------------------------------------------------------------- masks and errors
def test_initial_mask_and_invalid_action_message():
    env = make_tiny()
    info = reset_identity(env)
    assert np.flatnonzero(info["action_mask"]).tolist() == [ANSWER, BRANCH, READ_WHOLE]
    probe2 = encode_action("PROBE", 2, 4)
    before = env.unwrapped.episode.num_actions
    with pytest.raises(InvalidAction, match=r"question 0 of tiny/t: action 9 = PROBE\(2\) .*branch 2 is not open"):
        env.step(probe2)
    with pytest.raises(InvalidAction, match="outside the action space Discrete\\(15\\)"):
        env.step(15)
    assert env.unwrapped.episode.num_actions == before  # nothing happened


def test_mask_follows_branch_states():
    env = make_tiny()
    reset_identity(env)
    episode = env.unwrapped.episode
    _, _, _, _, info = step_ok(env, BRANCH)
    mask = info["action_mask"]
    if episode.is_active(0):
        assert mask[encode_action("CONTINUE", 0, 4)] and mask[encode_action("PROBE", 0, 4)]
        step_ok(env, encode_action("PROBE", 0, 4))
        with pytest.raises(InvalidAction, match=r"PROBE\(0\).*already probed at depth 1"):
            env.step(encode_action("PROBE", 0, 4))
        _, _, _, _, info = step_ok(env, encode_action("PRUNE", 0, 4))
        with pytest.raises(InvalidAction, match=r"CONTINUE\(0\).*branch 0 is pruned"):
            env.step(encode_action("CONTINUE", 0, 4))
    else:
        with pytest.raises(InvalidAction, match="branch 0 is finished"):
            env.step(encode_action("CONTINUE", 0, 4))
    for kind in ("CONTINUE", "PROBE", "PRUNE"):
        assert not info["action_mask"][encode_action(kind, 0, 4)]


def test_budget_masks_exactly_what_the_engine_refuses():
    env = make_tiny(budget_intervals=2)
    reset_identity(env)
    step_ok(env, BRANCH)
    _, _, _, _, info = step_ok(env, BRANCH)  # cost 2 = budget
    episode = env.unwrapped.episode
    assert episode.cost == 2
    assert not info["action_mask"][BRANCH] and not info["action_mask"][READ_WHOLE]
    active = episode.active_branches
    assert active, "the tiny pool has at most one branch that finishes at once"
    for j in active:
        assert not info["action_mask"][encode_action("CONTINUE", j, 4)]
        assert info["action_mask"][encode_action("PROBE", j, 4)]  # kappa_probe = 0 fits
    with pytest.raises(InvalidAction, match="exceeds the budget"):
        env.step(encode_action("CONTINUE", active[0], 4))
    with pytest.raises(InvalidAction, match="exceeds the budget"):
        env.step(BRANCH)


def test_budget_with_probe_cost_and_read_whole():
    env = make_tiny(budget_intervals=3, kappa_probe=1.0)
    reset_identity(env)
    episode = env.unwrapped.episode
    first = episode.order[0]
    needed = episode.question.num_probes[first] + 1
    assert env.unwrapped.action_masks()[READ_WHOLE] == (needed <= 3)
    step_ok(env, BRANCH)
    if episode.is_active(0):
        _, _, _, _, info = step_ok(env, encode_action("PROBE", 0, 4))
        assert episode.cost == 2
        _, _, _, _, info = step_ok(env, encode_action("CONTINUE", 0, 4))
        if episode.is_active(0):  # cost 3: PROBE would need 4
            assert not info["action_mask"][encode_action("PROBE", 0, 4)]
            with pytest.raises(InvalidAction, match=r"PROBE\(0\).*exceeds the budget"):
                env.step(encode_action("PROBE", 0, 4))


def test_budget_tokens_are_converted_to_intervals():
    env = make_tiny(budget_tokens=250)  # floor(250 / 100) = 2 intervals
    reset_identity(env)
    assert env.unwrapped.episode.budget == 2


# --------------------------------------------------------------- answers, rewards
def test_read_whole_answer_reward_and_result():
    env = make_tiny(cost_weight=1e-3)
    reset_identity(env)
    total = 0.0
    for _ in range(3):
        _, r, terminated, _, info = step_ok(env, READ_WHOLE)
        total += r
        assert not terminated
    assert not info["action_mask"][READ_WHOLE] and not info["action_mask"][BRANCH]  # pool exhausted
    assert info["tokens"] == 250 + 40 + 280
    _, r, terminated, truncated, info = step_ok(env, ANSWER)
    total += r
    result = info["result"]
    assert terminated and not truncated and result.answer_text == "7" and result.correct
    assert total == pytest.approx(1.0 - 1e-3 * 570)
    assert not info["action_mask"].any()
    with pytest.raises(InvalidAction, match="the episode has ended"):
        env.step(ANSWER)


def test_commit_answer():
    env = make_tiny()
    reset_identity(env)
    u = env.unwrapped
    vocab = u.episode.question.vocab
    with pytest.raises(InvalidAction, match="not revealed in this episode"):
        u.commit_answer(vocab.index("7"))
    order = u.episode.order
    while vocab[u.episode.question.final_answer[order[u.episode.num_opened]]] != "ERR":
        step_ok(env, READ_WHOLE)
    step_ok(env, READ_WHOLE)  # reveals "ERR"
    u.commit_answer(vocab.index("ERR"), reason="chosen")
    _, reward, terminated, _, info = step_ok(env, ANSWER)
    assert terminated and reward == 0.0  # ANSWER charges nothing; "ERR" is wrong
    assert info["result"].answer_text == "ERR" and info["result"].stop_reason == "chosen"
    reset_identity(env)
    u.commit_answer(-1)
    _, _, _, _, info = step_ok(env, ANSWER)
    assert info["result"].answer == -1 and not info["result"].correct


def test_probe_answer_can_be_committed():
    env = make_tiny()
    reset_identity(env, question=1)
    u = env.unwrapped
    step_ok(env, BRANCH)
    step_ok(env, encode_action("PROBE", 0, 4))
    revealed = u.episode.latest_answer(0)
    u.commit_answer(revealed)
    _, _, _, _, info = step_ok(env, ANSWER)
    assert info["result"].answer == revealed


def test_truncation_through_gym_make():
    env = gym.make("AutoTTS-v0", max_episode_steps=2)
    env.reset(seed=0)
    env.step(BRANCH)
    _, _, terminated, truncated, _ = env.step(BRANCH)
    assert truncated and not terminated


# ------------------------------------------------------------------- observation
def test_observation_features_after_read_whole_and_branch():
    env = make_tiny()
    reset_identity(env)
    obs, *_ = step_ok(env, READ_WHOLE)
    per_branch, glob = split_observation(obs, 4)
    feature = dict(zip(BRANCH_FEATURES, per_branch[0], strict=True))
    assert feature["opened"] == feature["finished"] == feature["revealed"] == feature["probed"] == 1.0
    assert feature["share"] == feature["agrees"] == 1.0 and feature["active"] == 0.0
    g = dict(zip(GLOBAL_FEATURES, glob, strict=True))
    assert g["opened"] == g["finished"] == g["votes"] == g["distinct_answers"] == 0.25
    assert g["leader_share"] == 1.0 and g["runner_up_share"] == 0.0
    assert g["leader_confidence"] == pytest.approx(0.75) and g["completed_confidence"] == pytest.approx(0.75)
    assert g["completed_agrees"] == 1.0 and g["unopened"] == 0.5
    assert not per_branch[1:].any()


def test_render_ansi():
    env = make_tiny(render_mode="ansi")
    reset_identity(env)
    env.step(READ_WHOLE)
    text = env.render()
    assert "tiny/t question 0: 1/3 branches open" in text and "branch   0" in text and "finished" in text
    env.step(ANSWER)
    assert "answered" in env.render()
