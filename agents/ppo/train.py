"""Train PPO on AutoTTS-v0: ``train(TrainConfig(...))`` returns where everything went.

* ``algo="maskable"``: sb3-contrib's ``MaskablePPO``; it reads ``env.action_masks()``
  (the env implements that contract) and never samples an inadmissible action.
* ``algo="ppo"``: stable-baselines3's ``PPO`` on the env wrapped in
  :class:`agents.ppo.wrappers.AdmissibleActionWrapper` (an inadmissible choice becomes
  ANSWER; see that module for why this design).

Vector envs (``DummyVecEnv`` or ``SubprocVecEnv``, each env seeded ``seed + rank`` by
SB3), checkpoints (``CheckpointCallback``), the final model with its config, TensorBoard
(SB3's curves plus :class:`~agents.ppo.callbacks.HeldOutEvalCallback` and
:class:`~agents.ppo.callbacks.EpisodeStatsCallback`). Layout of ``config.out``::

    model.zip            the final model (PPOController.load / --method ppo:...)
    config.json          the TrainConfig that made it (depth_scale filled in)
    checkpoints/         model_<steps>_steps.zip every checkpoint_freq timesteps
    eval.csv             the training-time evaluations, one row per split
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import autotts_gym  # noqa: F401  (registers AutoTTS-v0)
from agents.ppo.callbacks import EpisodeStatsCallback, HeldOutEvalCallback, ProgressCallback
from agents.ppo.config import CONFIG_NAME, TrainConfig
from agents.ppo.policy import configure_torch
from agents.ppo.wrappers import AdmissibleActionWrapper
from autotts_gym.data.sources import load_store
from autotts_gym.data.store import Split, Store
from autotts_gym.evaluation.evaluate import EpisodeOptions


@dataclass(frozen=True)
class TrainResult:
    """Where a training run wrote its artifacts, and how fast it ran.

    Attributes:
        model: the final ``model.zip``.
        config: its ``config.json``.
        checkpoints: the checkpoint folder.
        tensorboard: the TensorBoard run folder (None without TensorBoard).
        eval_log: the training-time evaluation CSV (None without evaluations).
        seconds: wall-clock time of ``learn``.
        timesteps: environment steps taken.
        final_eval: the last training-time evaluation (per split and ``"all"``).
    """

    model: Path
    config: Path
    checkpoints: Path
    tensorboard: Path | None
    eval_log: Path | None
    seconds: float
    timesteps: int
    final_eval: dict[str, dict[str, float]]

    @property
    def steps_per_second(self) -> float:
        """Training throughput, environment steps per wall-clock second."""
        return self.timesteps / self.seconds if self.seconds else float("nan")


def depth_scale_of(splits: list[Split]) -> float:
    """The env's default depth scale: the longest branch of the splits, in intervals."""
    return float(max(int(np.diff(s.probe_offsets).max(initial=0)) + 1 for s in splits))


def make_env_fn(config: TrainConfig, store: Store | str | None, rank: int) -> Callable[[], gym.Env]:
    """A thunk building one training env (wrapped for plain PPO, then ``Monitor``)."""
    from stable_baselines3.common.monitor import Monitor

    def thunk() -> gym.Env:
        env = gym.make("AutoTTS-v0", store=store, split=config.splits, disable_env_checker=True, **config.env_kwargs())
        if config.algo == "ppo":
            env = AdmissibleActionWrapper(env)
        return Monitor(env)

    thunk.__name__ = f"autotts_env_{rank}"
    return thunk


def make_vec_env(config: TrainConfig, store: Store) -> Any:
    """``config.n_envs`` training envs in a ``DummyVecEnv`` or ``SubprocVecEnv``."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    if config.vec_env == "subproc":
        # Worker processes load the store themselves (cached per process) from its path.
        fns = [make_env_fn(config, config.store, rank) for rank in range(config.n_envs)]
        return SubprocVecEnv(fns)
    return DummyVecEnv([make_env_fn(config, store, rank) for rank in range(config.n_envs)])


def build_model(config: TrainConfig, env: Any) -> Any:
    """A fresh MaskablePPO or PPO with the config's hyper-parameters (CPU)."""
    kwargs = {
        "learning_rate": config.learning_rate,
        "n_steps": config.n_steps,
        "batch_size": config.batch_size,
        "n_epochs": config.n_epochs,
        "gamma": config.gamma,
        "gae_lambda": config.gae_lambda,
        "clip_range": config.clip_range,
        "ent_coef": config.ent_coef,
        "vf_coef": config.vf_coef,
        "max_grad_norm": config.max_grad_norm,
        "policy_kwargs": {"net_arch": list(config.net_arch)},
        "tensorboard_log": config.tensorboard,
        "seed": config.seed,
        "device": "cpu",
        "verbose": 0,
    }
    if config.algo == "maskable":
        from sb3_contrib import MaskablePPO

        return MaskablePPO("MlpPolicy", env, **kwargs)
    from stable_baselines3 import PPO

    return PPO("MlpPolicy", env, **kwargs)


def prepare(config: TrainConfig) -> tuple[TrainConfig, Store]:
    """Load the store, check the splits, fill in ``depth_scale``."""
    store = load_store(config.store)
    train_splits = store.select(config.splits)
    if config.eval_splits:
        store.select(config.eval_splits)  # fail now, not after training, on a bad name
    if config.depth_scale is None:
        config = replace(config, depth_scale=depth_scale_of(train_splits))
    return config, store


def train(config: TrainConfig, *, verbose: int = 0, progress: bool = False) -> TrainResult:
    """Train a policy as ``config`` says; save the model, its config and checkpoints.

    Args:
        config: the run (see :class:`~agents.ppo.config.TrainConfig`).
        verbose: 1 prints SB3's tables and each evaluation.
        progress: a tqdm bar over steps on stderr (with the last evaluation's figures).

    Returns:
        :class:`TrainResult` with the paths of everything written.
    """
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback

    configure_torch()
    config, store = prepare(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    config_path = config.save(out / CONFIG_NAME)  # before training: checkpoints need it
    checkpoints = out / "checkpoints"

    env = make_vec_env(config, store)
    model = build_model(config, env)
    model.verbose = verbose
    callbacks: list[Any] = [EpisodeStatsCallback()]
    if config.checkpoint_freq:
        callbacks.append(
            CheckpointCallback(max(1, config.checkpoint_freq // config.n_envs), str(checkpoints), name_prefix="model")
        )
    evaluator = None
    if config.eval_freq:
        options = EpisodeOptions(
            seeds=tuple(range(config.eval_seeds)),
            shuffle="release",
            budget_tokens=config.budget_tokens,
            kappa_probe=config.kappa_probe,
        )
        eval_splits = store.select(config.eval_splits or config.splits)
        evaluator = HeldOutEvalCallback(config, eval_splits, options, config.eval_freq, out / "eval.csv", verbose)
        callbacks.append(evaluator)
    callbacks.append(ProgressCallback(config.total_timesteps, evaluator, enabled=progress))

    run_name = config.run_name or config.default_run_name()
    started = time.perf_counter()
    try:
        model.learn(config.total_timesteps, callback=CallbackList(callbacks), tb_log_name=run_name)
    finally:
        env.close()
    seconds = time.perf_counter() - started
    model_path = out / "model.zip"
    model.save(model_path)
    tensorboard = Path(model.logger.get_dir()) if config.tensorboard else None
    return TrainResult(
        model=model_path,
        config=config_path,
        checkpoints=checkpoints,
        tensorboard=tensorboard,
        eval_log=out / "eval.csv" if evaluator else None,
        seconds=seconds,
        timesteps=int(model.num_timesteps),
        final_eval=evaluator.last if evaluator else {},
    )
