"""The configuration of a PPO run: what made a model, saved next to it as JSON."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotts_gym.envs.spaces import ObservationConfig

ALGOS = ("maskable", "ppo")
VEC_ENVS = ("dummy", "subproc")
CONFIG_NAME = "config.json"


@dataclass
class TrainConfig:
    """Everything a training run depends on (defaults: the CPU-sized default run).

    Attributes:
        store: store folder, release JSON file or folder, or None for the embedded
            synthetic store.
        splits: training splits (``model/benchmark`` patterns); None: all.
        eval_splits: splits of the training-time evaluation; None: the training splits
            (with the release's branch orders, which training never uses).
        algo: ``"maskable"`` (sb3-contrib MaskablePPO with the env's masks) or ``"ppo"``
            (plain SB3 PPO through :class:`agents.ppo.wrappers.AdmissibleActionWrapper`).
        total_timesteps: environment steps to train for.
        cost_weight: reward per token charged; the return is
            ``1{correct} - cost_weight * tokens``.
        budget_tokens: per-episode token budget (None: unlimited).
        max_branches: N, branches the policy can open (the observation covers N).
        kappa_probe: cost of one PROBE in intervals.
        n_envs: parallel environments.
        vec_env: ``"dummy"`` (one process) or ``"subproc"`` (one process per env).
        seed: seeds the model, the envs and their episode draws.
        learning_rate, n_steps, batch_size, n_epochs, gamma, gae_lambda, clip_range,
        ent_coef, vf_coef, max_grad_norm: PPO hyper-parameters (``n_steps`` per env).
        net_arch: hidden layer sizes of the policy and value networks.
        eval_freq: timesteps between training-time evaluations (0: none).
        eval_seeds: branch-order seeds per question in those evaluations.
        checkpoint_freq: timesteps between checkpoints (0: none).
        tensorboard: TensorBoard log folder (None: no TensorBoard).
        run_name: name of the run (TensorBoard sub-folder); None: derived.
        out: folder of the model, its config, checkpoints and the evaluation log.
        depth_scale: depth in intervals that maps to 1.0 in the observation; None: the
            longest branch of the training splits (filled in by ``train``).
        cost_scale: cost in intervals that maps to 1.0 without a budget (None: N x
            depth_scale).
    """

    store: str | None = None
    splits: list[str] | None = None
    eval_splits: list[str] | None = None
    algo: str = "maskable"
    total_timesteps: int = 1_000_000
    cost_weight: float = 1e-6
    budget_tokens: float | None = None
    max_branches: int = 64
    kappa_probe: float = 0.0
    n_envs: int = 8
    vec_env: str = "dummy"
    seed: int = 0
    learning_rate: float = 3e-4
    n_steps: int = 256
    batch_size: int = 256
    n_epochs: int = 4
    gamma: float = 1.0
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    net_arch: list[int] = field(default_factory=lambda: [128, 128])
    eval_freq: int = 100_000
    eval_seeds: int = 2
    checkpoint_freq: int = 250_000
    tensorboard: str | None = None
    run_name: str | None = None
    out: str = "runs/ppo"
    depth_scale: float | None = None
    cost_scale: float | None = None

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {', '.join(ALGOS)}, got {self.algo!r}")
        if self.vec_env not in VEC_ENVS:
            raise ValueError(f"vec_env must be one of {', '.join(VEC_ENVS)}, got {self.vec_env!r}")
        for name in ("total_timesteps", "n_envs", "max_branches", "n_steps", "batch_size", "n_epochs", "eval_seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.cost_weight < 0:
            raise ValueError(f"cost_weight must be >= 0, got {self.cost_weight}")
        if self.budget_tokens is not None and self.budget_tokens <= 0:
            raise ValueError(f"budget_tokens must be > 0, got {self.budget_tokens}")

    # ------------------------------------------------------------ derived
    def observation_config(self) -> ObservationConfig:
        """The observation layout the policy was (or will be) trained on."""
        if self.depth_scale is None:
            raise ValueError("depth_scale is not set: train() fills it in from the training splits")
        return ObservationConfig(self.max_branches, float(self.depth_scale), self.cost_scale)

    def env_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``gym.make("AutoTTS-v0", ...)`` (store and split aside)."""
        return {
            "cost_weight": self.cost_weight,
            "budget_tokens": self.budget_tokens,
            "kappa_probe": self.kappa_probe,
            "max_branches": self.max_branches,
            "depth_scale": self.depth_scale,
        }

    def default_run_name(self) -> str:
        """``<algo>_w<cost_weight>_s<seed>``."""
        return f"{self.algo}_w{self.cost_weight:g}_s{self.seed}"

    # --------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return dataclasses.asdict(self)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the config as JSON (atomically)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        """A config from a dict; unknown keys are an error naming ``source``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown TrainConfig field(s) {unknown}")
        return cls(**data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrainConfig:
        """Read a config JSON written by :meth:`save`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        return cls.from_dict(data, str(path))


def config_path_for(model_path: str | os.PathLike) -> Path:
    """The config JSON of a saved model: ``<model>.json`` if present, else ``config.json``
    in the model's folder, else in its parent (checkpoints live in ``<out>/checkpoints``)."""
    model = Path(model_path)
    candidates = [model.with_suffix(".json"), model.parent / CONFIG_NAME, model.parent.parent / CONFIG_NAME]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{model}: no training config found (looked for {', '.join(str(c) for c in candidates)}); "
        "models saved by agents.ppo.train have one next to them"
    )
