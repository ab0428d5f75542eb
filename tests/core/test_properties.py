"""Property tests: random masked action sequences on AutoTTS-v0 never break the MDP's
invariants, on hypothesis-generated synthetic splits and on a real release split.

Checked after every step, against an oracle computed from the *stored* data (the raw
``(probe_answers, total_tokens, final_answer)`` triples, not the engine's derived tables):

* tokens equal the accounting rule (facts section 4): a branch stepped to depth d with P
  probes is charged ``min(d, P) * Delta`` plus, once ``d > P``, ``max(0, total - P * Delta)``;
  a branch read whole is charged ``total``; a branch is finished iff read whole or ``d > P``;
* every revealed probe ``(j, d, a)`` is the stored probe answer at depth d of the branch's
  pool entry; a finished branch shows its stored final answer;
* the mask equals the set of action indices the engine accepts (each tried on a replayed
  copy of the episode), every masked-out action raises InvalidAction and changes nothing,
  and the observation equals a fresh ``observe(episode)`` (history-independence);
* each reward is ``-cost_weight * tokens charged``, the return is
  ``1{correct} - cost_weight * tokens``, and every episode ends within the number of
  primitive actions the pool allows.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import autotts_gym  # noqa: F401  (registers AutoTTS-v0)
from autotts_gym.data.store import Split, SplitInfo, Store
from autotts_gym.engine import Episode, InvalidAction
from autotts_gym.engine.voting import beta_confidence
from autotts_gym.envs.spaces import ANSWER, READ_WHOLE, ObservationConfig, apply_action, decode_action, observe

REAL_SPLIT = ("Qwen3-8B", "aime24.json")  # under the release folder
ALPHABET = ("1", "2", "3", "ERR")

Raw = list[list[tuple[list[str], int, str]]]  # raw[q][b] = (probe_answers, total_tokens, final_answer)


# ------------------------------------------------------------------- strategies
@st.composite
def synthetic_splits(draw) -> tuple[Split, Raw]:
    """A small split from Split.from_lists with branches that may have no probes, totals
    below or above ``P * Delta``, and a gold answer no branch gives."""
    delta = draw(st.sampled_from([1, 7, 100]))
    raw: Raw = []
    for _ in range(draw(st.integers(1, 2))):
        pool = []
        for _ in range(draw(st.integers(1, 6))):
            probes = draw(st.lists(st.sampled_from(ALPHABET), max_size=5))
            pool.append((probes, draw(st.integers(0, 7 * delta)), draw(st.sampled_from(ALPHABET))))
        raw.append(pool)
    golds = [draw(st.sampled_from((*ALPHABET, "999"))) for _ in raw]
    info = SplitInfo(model="hypothesis", benchmark="b", interval_tokens=delta)
    return Split.from_lists(info, [f"q{i}" for i in range(len(raw))], golds, raw), raw


budgets = st.one_of(
    st.just({}),
    st.builds(lambda b: {"budget_intervals": b}, st.integers(0, 25)),
    st.builds(lambda b: {"budget_tokens": b}, st.integers(0, 3000)),
)
env_settings = st.fixed_dictionaries(
    {
        "shuffle": st.sampled_from(["numpy", "release", "identity"]),
        "kappa_probe": st.sampled_from([0.0, 0.5, 1.0]),
        "cost_weight": st.sampled_from([0.0, 1e-3, 0.5]),
    }
)


# ---------------------------------------------------------------------- oracle
def oracle_tokens(episode: Episode, raw_pool: list, whole: set[int], delta: int) -> int:
    """Tokens by the accounting rule, from the raw data and the branches' depths."""
    tokens = 0
    for j in range(episode.num_opened):
        probes, total, _ = raw_pool[episode.order[j]]
        p, d = len(probes), episode.depth(j)
        finished = j in whole or d > p
        assert episode.is_finished(j) == finished, f"branch {j}: finished flag"
        if j in whole:
            tokens += total
        else:
            tokens += min(d, p) * delta + (max(0, total - p * delta) if d > p else 0)
    return tokens


def check_revealed(episode: Episode, raw_pool: list) -> None:
    vocab = episode.question.vocab
    for j, d, a in episode.revealed_probes:
        probes = raw_pool[episode.order[j]][0]
        assert 1 <= d <= len(probes) and vocab[a] == probes[d - 1], f"probe of branch {j} at depth {d}"
    for j in episode.finished_branches:
        assert vocab[episode.final_answer(j)] == raw_pool[episode.order[j]][2], f"final answer of branch {j}"


def _leader_and_top_two(counts: Counter) -> tuple[int, int, int]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))  # ties: smaller id
    leader, v1 = ranked[0] if ranked else (-1, 0)
    return leader, v1, ranked[1][1] if len(ranked) > 1 else 0


def expected_observation(episode: Episode, config: ObservationConfig) -> np.ndarray:
    """The observation as the env's docstring defines it, computed the slow way."""
    n = config.max_branches
    latest = episode.latest_answers
    vote = Counter(a for j, a in enumerate(latest) if a >= 0 and not episode.is_pruned(j))
    total = sum(vote.values())
    leader, v1, v2 = _leader_and_top_two(vote)
    per_branch = np.zeros((10, n))
    for j, a in enumerate(latest):
        per_branch[:, j] = [
            1,
            episode.is_active(j),
            episode.is_finished(j),
            episode.is_pruned(j),
            min(1.0, episode.depth(j) / config.depth_scale),
            episode.is_probed(j),
            a >= 0,
            vote[a] / total if a >= 0 and total else 0.0,
            a >= 0 and a == leader,
            a >= 0 and a == episode.question.no_answer_id,
        ]
    completed_leader, f1, f2 = _leader_and_top_two(Counter(episode.finished_answers))
    scale = episode.budget or config.cost_scale or n * config.depth_scale
    glob = [
        episode.num_opened / n,
        len(episode.active_branches) / n,
        len(episode.finished_branches) / n,
        (episode.num_available - episode.num_opened) / n,
        min(1.0, episode.cost / scale),
        min(1.0, total / n),
        v1 / total if total else 0.0,
        v2 / total if total else 0.0,
        beta_confidence(v1, v2),
        min(1.0, len(vote) / n),
        beta_confidence(f1, f2),
        completed_leader >= 0 and completed_leader == leader,
    ]
    return np.concatenate([per_branch.ravel(), glob])


def engine_acceptance(env: gym.Env, history: list[int]) -> list[bool]:
    """For every action index: does the engine accept it after ``history``? Each is
    tried on a fresh episode replaying the history (same question, order and budget)."""
    u = env.unwrapped
    live = u.episode

    def replay() -> Episode:
        ep = Episode(live.question, live.order, budget_intervals=live.budget, kappa_probe=live.kappa_probe)
        for a in history:
            apply_action(ep, a, u.max_branches)
        return ep

    accepted = []
    for a in range(u.action_space.n):
        try:
            apply_action(replay(), a, u.max_branches)
            accepted.append(True)
        except InvalidAction:
            accepted.append(False)
    return accepted


def play(
    env: gym.Env, obs: np.ndarray, raw_pool: list, data: st.DataObject, exhaust: bool, engine_check_every: int
) -> None:
    """One episode from the observation ``obs`` of a reset: random admissible actions
    (sometimes an inadmissible one, which must be refused), checking the invariants after
    every step. ``exhaust``: answer only when nothing else is admissible. Kinds of action
    drawn into ``avoid`` are taken only when nothing else is admissible, so that some
    episodes go deep (no PRUNE or READ_WHOLE) and others wide."""
    avoid = data.draw(
        st.sampled_from([(), ("PRUNE", "READ_WHOLE", "BRANCH"), ("PRUNE", "READ_WHOLE"), ("CONTINUE", "PROBE")]),
        label="avoid",
    )
    u = env.unwrapped
    episode = u.episode
    delta = episode.question.interval_tokens
    bound = sum(2 * len(raw_pool[b][0]) + 3 for b in episode.order) + 1
    history: list[int] = []
    whole: set[int] = set()
    ret, tokens = 0.0, 0
    for step in range(bound + 1):
        mask = u.action_masks()
        assert mask[ANSWER]
        assert np.array_equal(obs, observe(episode, u.observation_config))
        assert np.allclose(obs, expected_observation(episode, u.observation_config), atol=1e-6)
        assert env.observation_space.contains(obs)
        if step % engine_check_every == 0:
            assert mask.tolist() == engine_acceptance(env, history), f"mask != engine after {history}"
        refused = np.flatnonzero(~mask)
        if refused.size and data.draw(st.integers(0, 3)) == 0:
            bad = int(data.draw(st.sampled_from(refused.tolist())))
            with pytest.raises(InvalidAction, match=decode_action(bad, u.max_branches)[0]):
                env.step(bad)
            assert episode.num_actions == len(history) and episode.tokens == tokens
        choices = np.flatnonzero(mask[1:]) + 1
        preferred = [a for a in choices.tolist() if decode_action(a, u.max_branches)[0] not in avoid]
        choices = np.array(preferred) if preferred else choices
        answer_now = not choices.size or (not exhaust and data.draw(st.integers(0, 5)) == 0)
        action = ANSWER if answer_now else int(data.draw(st.sampled_from(choices.tolist())))
        opened = episode.num_opened
        obs, reward, terminated, truncated, info = env.step(action)
        if action == READ_WHOLE:
            whole.add(opened)
        history.append(action)
        ret += reward
        new_tokens = oracle_tokens(episode, raw_pool, whole, delta)
        assert episode.tokens == info["tokens"] == new_tokens
        bonus = 1.0 if terminated and episode.result.correct else 0.0
        assert reward == pytest.approx(bonus - u.cost_weight * (new_tokens - tokens))
        tokens = new_tokens
        check_revealed(episode, raw_pool)
        assert not truncated
        if terminated:
            result = info["result"]
            assert result.correct == (result.answer_text == episode.question.gold)
            assert ret == pytest.approx(float(result.correct) - u.cost_weight * result.tokens)
            assert result.actions == len(history)
            assert not u.action_masks().any()
            return
    pytest.fail(f"the episode did not end within {bound} actions")


# ------------------------------------------------------------------------ tests
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    split_raw=synthetic_splits(),
    options=env_settings,
    budget=budgets,
    max_branches=st.integers(1, 7),
    order_seed=st.integers(0, 10_000),
    exhaust=st.booleans(),
    data=st.data(),
)
def test_synthetic_random_episodes_keep_invariants(split_raw, options, budget, max_branches, order_seed, exhaust, data):
    split, raw = split_raw
    env = gym.make("AutoTTS-v0", store=Store([split]), max_branches=max_branches, **options, **budget)
    question = data.draw(st.integers(0, split.num_questions - 1))
    obs, _ = env.reset(seed=order_seed, options={"question": question, "order_seed": order_seed})
    play(env, obs, raw[question], data, exhaust, engine_check_every=1)


@lru_cache(maxsize=1)
def real_split(path: Path) -> tuple[Store, Raw]:
    from autotts_gym.data.release import import_release

    items = json.loads(path.read_text())
    raw = [[(list(b[0]), int(b[1]), b[2]) for b in item["each_branch"]] for item in items]
    return import_release([path]), raw


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    question=st.integers(0, 29),
    options=env_settings,
    budget=st.one_of(st.just({}), st.builds(lambda b: {"budget_intervals": b}, st.integers(0, 150))),
    max_branches=st.integers(1, 4),
    order_seed=st.integers(0, 99),
    exhaust=st.booleans(),
    data=st.data(),
)
def test_real_split_random_episodes_keep_invariants(release, question, options, budget, max_branches, order_seed, exhaust, data):
    store, raw = real_split(release.joinpath(*REAL_SPLIT))
    env = gym.make("AutoTTS-v0", store=store, max_branches=max_branches, **options, **budget)
    obs, _ = env.reset(options={"question": question, "order_seed": order_seed})
    play(env, obs, raw[question], data, exhaust, engine_check_every=25)
