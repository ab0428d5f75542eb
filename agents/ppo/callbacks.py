"""Training-time callbacks: held-out evaluation with the real evaluator, episode statistics.

Both follow stable-baselines3's callback contract (``BaseCallback``): they only read the
model and the rollout, and write scalars through the model's logger, so they land in
the same TensorBoard run as SB3's own curves.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.ppo.config import TrainConfig
from agents.ppo.policy import PPOController
from autotts_gym.data.store import Split
from autotts_gym.evaluation.evaluate import EpisodeOptions, Evaluation, evaluate_many

EVAL_FIELDS = ("timesteps", "split", "accuracy", "tokens", "reward", "branches_opened", "episodes")


def eval_metrics(evaluations: Sequence[Evaluation], cost_weight: float) -> dict[str, dict[str, float]]:
    """Per split and ``"all"``: accuracy (%), mean tokens, mean reward, branches opened,
    episodes. The reward is the env's return, ``1{correct} - cost_weight * tokens``."""
    out: dict[str, dict[str, float]] = {}
    columns: dict[str, list[np.ndarray]] = {"correct": [], "tokens": [], "branches_opened": []}
    for ev in evaluations:
        out[ev.split.name] = _metrics(ev.records, cost_weight)
        for key in columns:
            columns[key].append(ev.records[key])
    out["all"] = _metrics({k: np.concatenate(v) for k, v in columns.items()}, cost_weight)
    return out


def _metrics(records: dict[str, np.ndarray], cost_weight: float) -> dict[str, float]:
    correct = records["correct"].astype(float)
    tokens = records["tokens"].astype(float)
    return {
        "accuracy": float(correct.mean() * 100.0),
        "tokens": float(tokens.mean()),
        "reward": float((correct - cost_weight * tokens).mean()),
        "branches_opened": float(records["branches_opened"].mean()),
        "episodes": float(len(correct)),
    }


class HeldOutEvalCallback(BaseCallback):
    """Every ``eval_freq`` timesteps (and at the end), evaluate the current policy with
    :func:`autotts_gym.evaluation.evaluate.evaluate_many` under ``options`` (release branch
    orders, fixed seeds) on ``splits``, in this process.

    Logs ``eval/accuracy``, ``eval/tokens``, ``eval/reward``, ``eval/branches_opened``
    over all splits and ``eval/<split>/<metric>`` per split, and appends one row per
    split to ``log_path`` (CSV). The policy acts exactly as :class:`PPOController` acts
    in the evaluator after training. The numbers are for watching only: the saved model
    is always the last one, never one picked by them.
    """

    def __init__(
        self,
        config: TrainConfig,
        splits: Sequence[Split],
        options: EpisodeOptions,
        eval_freq: int,
        log_path: str | os.PathLike | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.config = config
        self.splits = list(splits)
        self.options = options
        self.eval_freq = int(eval_freq)
        self.log_path = None if log_path is None else Path(log_path)
        self.last: dict[str, dict[str, float]] = {}
        self._next = self.eval_freq
        self._last_timesteps = -1

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.num_timesteps >= self._next:
            while self._next <= self.num_timesteps:
                self._next += self.eval_freq
            self.evaluate()
        return True

    def _on_training_end(self) -> None:
        if self._last_timesteps != self.num_timesteps:
            self.evaluate()

    def evaluate(self) -> dict[str, dict[str, float]]:
        """Evaluate now, log the scalars, return them (per split and ``"all"``)."""
        controller = PPOController.from_model(self.model, self.config)
        evaluations = evaluate_many([(controller, s) for s in self.splits], self.options, workers=1)
        self.model.policy.set_training_mode(False)
        self.last = metrics = eval_metrics(evaluations, self.config.cost_weight)
        for split, values in metrics.items():
            prefix = "eval" if split == "all" else f"eval/{split}"
            for key in ("accuracy", "tokens", "reward", "branches_opened"):
                self.logger.record(f"{prefix}/{key}", values[key])
        self.logger.dump(self.num_timesteps)
        self._write_rows(metrics)
        self._last_timesteps = self.num_timesteps
        if self.verbose:
            m = metrics["all"]
            print(
                f"eval at {self.num_timesteps} steps: accuracy {m['accuracy']:.1f}%, "
                f"tokens {m['tokens']:.0f}, reward {m['reward']:.4f}"
            )
        return metrics

    def _write_rows(self, metrics: dict[str, dict[str, float]]) -> None:
        if self.log_path is None:
            return
        new = not self.log_path.exists()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=EVAL_FIELDS)
            if new:
                writer.writeheader()
            for split, values in metrics.items():
                writer.writerow({"timesteps": self.num_timesteps, "split": split, **values})


class EpisodeStatsCallback(BaseCallback):
    """Accuracy, tokens and branches of the training episodes that ended in each rollout
    (``rollout/accuracy``, ``rollout/tokens``, ``rollout/branches_opened``), and, for
    plain PPO, the share of steps whose action was replaced by the fallback
    (``rollout/fallback_rate``)."""

    def __init__(self, verbose: int = 0) -> None:
        super().__init__(verbose)
        self._results: list[Any] = []
        self._fallbacks = 0
        self._steps = 0  # steps that reported whether they fell back (plain PPO only)

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            result = info.get("result")
            if result is not None:
                self._results.append(result)
            if "fallback" in info:
                self._fallbacks += info["fallback"]
                self._steps += 1
        return True

    def _on_rollout_end(self) -> None:
        if self._results:
            self.logger.record("rollout/accuracy", 100.0 * float(np.mean([r.correct for r in self._results])))
            self.logger.record("rollout/tokens", float(np.mean([r.tokens for r in self._results])))
            self.logger.record("rollout/branches_opened", float(np.mean([r.branches_opened for r in self._results])))
        if self._steps:
            self.logger.record("rollout/fallback_rate", self._fallbacks / self._steps)
        self._results.clear()
        self._fallbacks = self._steps = 0


class ProgressCallback(BaseCallback):
    """A tqdm bar over environment steps on stderr (see :mod:`autotts_gym.utils.progress`),
    with the last training-time evaluation's accuracy and tokens in its postfix.

    Args:
        total_timesteps: the run's steps (the bar's 100%).
        evaluator: the run's :class:`HeldOutEvalCallback`, if any.
        enabled: False: no bar.
    """

    def __init__(self, total_timesteps: int, evaluator: HeldOutEvalCallback | None = None, enabled: bool = True):
        super().__init__()
        self.total_timesteps = int(total_timesteps)
        self.evaluator = evaluator
        self.enabled = enabled
        self.bar: Any = None
        self._shown: dict[str, float] | None = None

    def _on_training_start(self) -> None:
        from autotts_gym.utils.progress import progress_bar

        self.bar = progress_bar(self.total_timesteps, desc="train", unit="step", enabled=self.enabled)

    def _on_step(self) -> bool:
        # SB3 finishes its last rollout past total_timesteps: the bar stops at 100%.
        self.bar.update(min(self.num_timesteps, self.total_timesteps) - self.bar.n)
        last = (self.evaluator.last or {}).get("all") if self.evaluator else None
        if last is not None and last is not self._shown:
            self._shown = last
            self.bar.set_postfix_str(f"eval {last['accuracy']:.1f}% at {last['tokens'] / 1000:.0f}k tokens", refresh=False)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()
