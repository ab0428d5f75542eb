"""Training speed of PPO on AutoTTS-v0, and where the time goes (env against network).

    OMP_NUM_THREADS=1 python benchmarks/bench_ppo.py [--timesteps 40960] [--algo maskable]
        [--store PATH] [--splits '*/aime24'] [--n-envs 8] [--cost-weight 1e-6]

One training run with the default config's hyper-parameters (no evaluation, no
checkpoints), timed by parts:

* env: ``reset`` and ``step`` of the training envs (a timing wrapper outside
  ``Monitor``, so Gymnasium's wrappers are included);
* masks: MaskablePPO's ``get_action_masks`` (one ``action_masks()`` call per env per step);
* rollout network: the rest of ``collect_rollouts``: the policy's forward pass,
  sampling, the rollout buffer, GAE;
* update: ``train()``, the PPO epochs (forward and backward over minibatches, Adam);
* other: the rest of ``learn`` (logging, callbacks).

Times are CPU time of this (single) thread, ``time.thread_time``, so other processes on a
busy machine do not inflate them; steps/s are reported on CPU time and on wall time.
Then the trained policy as a controller in the evaluator (one observation at a time):
actions/s and the share of its time in the network. Figures are printed, never asserted.
Default store: the release's AIME24 splits if ``../shared`` is there, else the embedded
synthetic store.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym

from agents.ppo.config import TrainConfig
from agents.ppo.policy import PPOController
from agents.ppo.train import build_model, make_env_fn, prepare
from autotts_gym.evaluation.evaluate import evaluate_many, make_options

RELEASE = Path(__file__).resolve().parents[1].parent / "shared" / "replay" / "autotts-release"


class Stopwatch:
    """Accumulated thread CPU seconds per named part."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` that adds its CPU time to ``part``."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[part] = self.seconds.get(part, 0.0) + time.thread_time() - t0

        return timed


class TimedEnv(gym.Wrapper):
    """Adds the CPU time of ``reset`` and ``step`` to a stopwatch's ``env`` part."""

    def __init__(self, env: gym.Env, watch: Stopwatch) -> None:
        super().__init__(env)
        self.reset = watch.wrap("env", env.reset)
        self.step = watch.wrap("env", env.step)


def timed_training(config: TrainConfig) -> tuple[Any, dict[str, float], float]:
    """Train with timers; the model, CPU seconds per part, wall seconds."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    config, store = prepare(config)
    watch = Stopwatch()
    fns = [make_env_fn(config, store, rank) for rank in range(config.n_envs)]
    env = DummyVecEnv([lambda fn=fn: TimedEnv(fn(), watch) for fn in fns])
    model = build_model(config, env)
    if config.algo == "maskable":
        import sb3_contrib.ppo_mask.ppo_mask as ppo_mask

        ppo_mask.get_action_masks = watch.wrap("masks", ppo_mask.get_action_masks)
    model.collect_rollouts = watch.wrap("rollout", model.collect_rollouts)
    model.train = watch.wrap("update", model.train)
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    model.learn(config.total_timesteps)
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    parts = dict(watch.seconds)
    parts["rollout network"] = parts.pop("rollout") - parts["env"] - parts.get("masks", 0.0)
    parts["other"] = cpu - parts["rollout network"] - parts["env"] - parts.get("masks", 0.0) - parts["update"]
    parts["total"] = cpu
    return model, parts, wall


def controller_speed(model: Any, config: TrainConfig, seeds: int) -> tuple[float, float, float]:
    """The trained policy in the evaluator (this process): actions/s, and the network's
    share of that time (timed around the logits function)."""
    config, store = prepare(config)
    controller = PPOController.from_model(model, config)
    watch = Stopwatch()
    controller._logits = watch.wrap("network", controller._logits)
    splits = store.select(config.eval_splits or config.splits)
    t0 = time.thread_time()
    evaluations = evaluate_many([(controller, s) for s in splits], make_options(seeds), workers=1)
    cpu = time.thread_time() - t0
    actions = sum(int(ev.records["actions"].sum()) for ev in evaluations)
    episodes = sum(len(ev.records["actions"]) for ev in evaluations)
    return actions / cpu, watch.seconds.get("network", 0.0) / cpu, episodes / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=40_960)
    parser.add_argument("--algo", choices=("maskable", "ppo"), default="maskable")
    parser.add_argument("--store", default=str(RELEASE) if RELEASE.is_dir() else None)
    parser.add_argument("--splits", nargs="+", default=None, help="default: */aime24 of the release, else all")
    parser.add_argument("--n-envs", type=int, default=TrainConfig.n_envs)
    parser.add_argument("--cost-weight", type=float, default=1e-6)
    parser.add_argument("--eval-seeds", type=int, default=5)
    args = parser.parse_args()
    splits = args.splits or (["*/aime24"] if args.store else None)
    config = TrainConfig(
        store=args.store,
        splits=splits,
        algo=args.algo,
        total_timesteps=args.timesteps,
        cost_weight=args.cost_weight,
        n_envs=args.n_envs,
        eval_freq=0,
        checkpoint_freq=0,
        out="/dev/null",
    )
    model, parts, wall = timed_training(config)
    steps = model.num_timesteps
    print(f"PPO training ({args.algo}, {args.n_envs} envs, store {args.store or 'default'}, splits {splits or 'all'})")
    print(f"  {steps} steps: {steps / parts['total']:.0f} steps/s on CPU time, {steps / wall:.0f} steps/s wall")
    print(f"  {'part':<16}{'CPU s':>8}{'share':>8}{'us/step':>9}")
    for part in ("env", "masks", "rollout network", "update", "other"):
        if part in parts:
            s = parts[part]
            print(f"  {part:<16}{s:8.2f}{s / parts['total']:8.1%}{1e6 * s / steps:9.1f}")
    per_second, network_share, episodes_per_second = controller_speed(model, config, args.eval_seeds)
    print(
        f"PPOController in the evaluator: {per_second:.0f} actions/s, {episodes_per_second:.0f} episodes/s, "
        f"{network_share:.0%} of its time in the network"
    )


if __name__ == "__main__":
    main()
