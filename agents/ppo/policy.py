"""Trained policies as controllers: the evaluator scores them like any hand-made method.

:class:`PolicyController` acts greedily with any function from an observation to action
logits, on a bare :class:`~autotts_gym.engine.Episode`, through the env's own spaces
(:class:`~autotts_gym.envs.spaces.EpisodeObserver`, the incremental form of
``spaces.observe``/``spaces.action_mask``, and ``spaces.apply_action``). So the policy
sees exactly the observations and masks it saw in ``AutoTTS-v0`` and gives the same
per-episode results through either door.

:class:`PPOController` loads a ``model.zip`` written by :mod:`agents.ppo.train` with the
config saved next to it::

    controller = PPOController.load("runs/ppo/model.zip")
    evaluate(controller, "path/to/store", splits=["*/aime25"])      # or, from the shell:
    # autotts evaluate STORE --method ppo:runs/ppo/model.zip

Torch runs on one thread (``torch.set_num_threads(1)``): one observation at a time gains
nothing from more, and a single-threaded torch is safe in the evaluator's forked workers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from agents.base import Controller
from agents.ppo.config import TrainConfig, config_path_for
from agents.ppo.wrappers import admissible_or_fallback
from autotts_gym.engine import Episode, EpisodeResult
from autotts_gym.envs.spaces import EpisodeObserver, ObservationConfig, apply_action

Logits = Callable[[np.ndarray], np.ndarray]


def configure_torch() -> None:
    """One torch thread: small networks, one observation at a time, fork-safe."""
    torch.set_num_threads(1)


def sb3_logits(policy: Any) -> Logits:
    """The action logits of an SB3 (or sb3-contrib) MLP actor-critic policy, as a function
    of one observation.

    It runs the same torch operations as ``policy.predict`` (flatten, the actor's MLP,
    the action head; the value head is skipped) with the module-call overhead removed:
    about 3x faster for one observation, and bit-identical logits. A policy with layers
    other than Linear/Tanh/ReLU falls back to calling its modules.
    """
    from stable_baselines3.common.torch_layers import FlattenExtractor

    policy.set_training_mode(False)
    if isinstance(policy.pi_features_extractor, FlattenExtractor):
        # Flattening one float32 observation is a reshape.
        layers = [_fast_layer(m) for m in [*policy.mlp_extractor.policy_net, policy.action_net]]
    else:
        layers = [
            lambda x: policy.extract_features(x, policy.pi_features_extractor),
            policy.mlp_extractor.forward_actor,
            policy.action_net,
        ]

    def logits(observation: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(observation).reshape(1, -1)
            for layer in layers:
                x = layer(x)
            return x[0].numpy()

    return logits


def _fast_layer(module: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The module's forward as a plain function (what its ``forward`` calls)."""
    if isinstance(module, torch.nn.Linear):
        weight, bias = module.weight, module.bias
        return lambda x: F.linear(x, weight, bias)
    if isinstance(module, torch.nn.Tanh):
        return torch.tanh
    if isinstance(module, torch.nn.ReLU):
        return torch.relu
    return module


class PolicyController(Controller):
    """A greedy policy over AutoTTS-v0's actions, run on a bare Episode.

    Args:
        logits: observation -> one logit per action.
        observation_config: the observation layout the policy was trained on.
        masked: True if the policy was trained with masks (argmax over admissible
            actions); False for an unmasked policy (argmax over all actions, an
            inadmissible choice becomes ANSWER as in
            :class:`agents.ppo.wrappers.AdmissibleActionWrapper`).
        budget_intervals_of: Delta -> the episode budget (in intervals) the policy was
            trained with, or None for no budget; checked on every episode because the
            observation's cost feature is scaled by the budget.
        params: what :meth:`params` reports (model file, cost_weight, ...).

    An episode that could open more than ``max_branches`` branches (the evaluator's
    episodes hold the whole pool) has its order cut to the first ``max_branches``
    before the first action, as the env does (``branch_order(..., subsample=N)``): the
    same as evaluating with ``subsample=N``, the branches SC@64 and CMC see at N = 64.
    """

    name: ClassVar[str] = "policy"

    def __init__(
        self,
        logits: Logits,
        observation_config: ObservationConfig,
        *,
        masked: bool = True,
        budget_intervals_of: Callable[[int], float | None] = lambda delta: None,
        params: dict[str, Any] | None = None,
    ) -> None:
        self._logits = logits
        self.observation_config = observation_config
        self.masked = masked
        self._budget_of = budget_intervals_of
        self._params = dict(params or {})

    def params(self) -> dict[str, Any]:
        """What the policy is (model file, cost_weight, ...), for tables."""
        return dict(self._params)

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        """The greedy admissible action for an observation and its mask."""
        logits = self._logits(observation)
        if self.masked:
            return int(np.where(mask, logits, -np.inf).argmax())
        return admissible_or_fallback(int(logits.argmax()), mask)

    def run(self, episode: Episode) -> EpisodeResult:
        """Play the episode to ANSWER with greedy actions."""
        n = self.observation_config.max_branches
        self._check_budget(episode)
        if episode.num_available > n:
            if episode.num_opened:
                raise ValueError(
                    f"question {episode.question.index}: the episode already has {episode.num_opened} branches open "
                    f"and can open {episode.num_available} > max_branches={n}; start the policy on a fresh episode"
                )
            episode.order = episode.order[:n]
        # A live episode decodes what the mask reads before each observation (the next
        # branch's length under a budget), so the policy sees what replay shows it.
        before_mask = getattr(episode, "before_mask", None)
        if before_mask is not None:
            before_mask()
        observer = EpisodeObserver(self.observation_config)
        observer.reset(episode)
        while not episode.done:
            action = self.act(observer.observation, observer.mask)
            touched = apply_action(episode, action, n)
            if before_mask is not None:
                before_mask()
            observer.update(touched)
        return episode.result

    def _check_budget(self, episode: Episode) -> None:
        expected = self._budget_of(episode.question.interval_tokens)
        if episode.budget != expected:
            where = f"{self._params['model']}: " if self._params.get("model") else ""
            raise ValueError(
                f"{where}question {episode.question.index}: the policy was trained with a budget of {expected} "
                f"intervals but the episode has {episode.budget}; evaluate with the training budget (--budget-tokens)"
            )


class PPOController(PolicyController):
    """A PPO model saved by :mod:`agents.ppo.train`, as a controller (deterministic)."""

    name: ClassVar[str] = "ppo"

    @classmethod
    def from_model(cls, model: Any, config: TrainConfig, model_path: str = "") -> PPOController:
        """Wrap a live SB3 model (e.g. during training) with the config that made it."""
        configure_torch()
        budget = config.budget_tokens
        params = {
            "model": model_path,
            "algo": config.algo,
            "cost_weight": config.cost_weight,
            "budget_tokens": budget,
            "max_branches": config.max_branches,
            "total_timesteps": config.total_timesteps,
            "seed": config.seed,
        }
        return cls(
            sb3_logits(model.policy),
            config.observation_config(),
            masked=config.algo == "maskable",
            budget_intervals_of=lambda delta: None if budget is None else math.floor(budget / delta),
            params=params,
        )

    @classmethod
    def load(cls, path: str | os.PathLike, **overrides: Any) -> PPOController:
        """Load ``model.zip`` and its config (``config.json`` next to it).

        ``overrides`` may set ``name`` (the method name in tables, e.g. ``ppo-w1e-6``).
        """
        unknown = sorted(set(overrides) - {"name"})
        if unknown:
            raise ValueError(f"PPOController.load: unknown override(s) {unknown}; the only one is 'name'")
        model_path = Path(path)
        if not model_path.is_file():
            raise FileNotFoundError(f"{model_path}: no such PPO model file")
        config = TrainConfig.load(config_path_for(model_path))
        configure_torch()
        model = load_sb3_model(model_path, config.algo)
        controller = cls.from_model(model, config, str(model_path))
        if "name" in overrides:
            controller.name = str(overrides["name"])
        return controller


def load_sb3_model(path: str | os.PathLike, algo: str) -> Any:
    """Load a saved model with the class that trained it (CPU)."""
    if algo == "maskable":
        from sb3_contrib import MaskablePPO

        return MaskablePPO.load(path, device="cpu")
    from stable_baselines3 import PPO

    return PPO.load(path, device="cpu")
