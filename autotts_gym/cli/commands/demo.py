"""``autotts demo``: a few simple policies played through AutoTTS-v0, as a table.

The README's first command. It needs nothing but the package: the default store is the
embedded synthetic one. Every policy plays the same (split, question, order seed)
episodes through ``gym.make("AutoTTS-v0")``; controllers go through the env with
:func:`agents.gym_policy.run_controller_in_env`, the random policy samples the action
mask.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from autotts_gym.cli.commands._args import nonnegative_float, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autotts demo``."""
    parser.add_argument("--store", default="default", help="store folder, release JSON file/folder, or 'default'")
    parser.add_argument("--seeds", type=positive_int, default=5, help="order seeds per question (default 5)")
    parser.add_argument("--cost-weight", type=nonnegative_float, default=1e-6, help="reward per token charged")
    parser.add_argument("--shuffle", default="numpy", choices=["numpy", "release"], help="branch order")


def random_masked_episode(env: gym.Env, options: dict[str, Any], rng: np.random.Generator) -> tuple[Any, float]:
    """One episode of the uniformly random admissible policy; ``(result, return)``."""
    _, info = env.reset(options=options)
    total, done = 0.0, False
    while not done:
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        _, reward, done, _, info = env.step(action)
        total += reward
    return info["result"], total


def controller_episode(controller: Any) -> Callable[[gym.Env, dict[str, Any], np.random.Generator], tuple[Any, float]]:
    """An episode runner that plays ``controller`` through the env."""
    from agents.gym_policy import run_controller_in_env

    def play(env: gym.Env, options: dict[str, Any], rng: np.random.Generator) -> tuple[Any, float]:
        result = run_controller_in_env(controller, env, split=options["split"], question=options["question"], order_seed=options["order_seed"])
        return result, float(result.correct) - env.unwrapped.cost_weight * result.tokens

    return play


def run(args: argparse.Namespace) -> int:
    """Play every policy on every (split, question, seed) and print the table."""
    import autotts_gym  # noqa: F401  (registers AutoTTS-v0)
    from agents.registry import make_controller
    from autotts_gym.data.sources import load_store

    store = load_store(args.store)
    env = gym.make("AutoTTS-v0", store=store, cost_weight=args.cost_weight, shuffle=args.shuffle)
    policies = {
        "random (masked)": random_masked_episode,
        "SC@1": controller_episode(make_controller("sc", overrides={"k": 1})),
        "SC@8": controller_episode(make_controller("sc", overrides={"k": 8})),
        "SC@64": controller_episode(make_controller("sc")),
        "CMC beta=0.5": controller_episode(make_controller("cmc", beta=0.5)),
    }
    episodes = [
        {"split": s.name, "question": q, "order_seed": seed}
        for s in store.splits
        for q in range(s.num_questions)
        for seed in range(args.seeds)
    ]
    print(f"store: {store.path or args.store}  splits: {', '.join(s.name for s in store.splits)}  "
          f"episodes per policy: {len(episodes)}  cost_weight: {args.cost_weight:g}")
    print(f"{'policy':18s} {'accuracy %':>10s} {'tokens':>10s} {'seq tokens':>10s} {'return':>8s} {'ep/s':>8s}")
    for name, play in policies.items():
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        results = [play(env, options, rng) for options in episodes]
        dt = time.perf_counter() - t0
        correct = np.mean([r.correct for r, _ in results]) * 100
        tokens = np.mean([r.tokens for r, _ in results])
        seq = np.mean([r.sequential_tokens for r, _ in results])
        ret = np.mean([g for _, g in results])
        print(f"{name:18s} {correct:10.1f} {tokens:10.0f} {seq:10.0f} {ret:8.3f} {len(results) / dt:8.0f}")
    return 0
