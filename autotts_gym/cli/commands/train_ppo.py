"""``autotts train-ppo``: train MaskablePPO (or plain PPO) on AutoTTS-v0."""

from __future__ import annotations

import argparse

from agents.ppo.config import ALGOS, VEC_ENVS, TrainConfig
from autotts_gym.cli.commands._args import nonnegative_float, nonnegative_int, positive_float, positive_int
from autotts_gym.utils.progress import add_progress_argument

_DEFAULTS = TrainConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``autotts train-ppo``."""
    d = _DEFAULTS
    parser.add_argument("--store", required=True, help="store folder, release JSON file or folder, or 'default'")
    parser.add_argument("--splits", nargs="+", metavar="SPLIT", help="training splits, e.g. '*/aime24' (default: all)")
    parser.add_argument(
        "--eval-splits", nargs="+", metavar="SPLIT", help="splits of the training-time evaluation (default: --splits)"
    )
    parser.add_argument(
        "--timesteps", type=positive_int, default=d.total_timesteps, help=f"environment steps (default {d.total_timesteps})"
    )
    parser.add_argument(
        "--cost-weight", type=nonnegative_float, required=True, metavar="W", help="reward = 1{correct} - W * tokens"
    )
    parser.add_argument("--budget-tokens", type=positive_float, metavar="B", help="per-episode token budget (default: none)")
    parser.add_argument(
        "--max-branches",
        type=positive_int,
        default=d.max_branches,
        metavar="N",
        help=f"branches the policy can open (default {d.max_branches})",
    )
    parser.add_argument("--n-envs", type=positive_int, default=d.n_envs, metavar="K", help=f"parallel envs (default {d.n_envs})")
    parser.add_argument("--vec-env", choices=VEC_ENVS, default=d.vec_env, help=f"vector env (default {d.vec_env})")
    parser.add_argument("--seed", type=nonnegative_int, default=d.seed, metavar="S", help=f"seed (default {d.seed})")
    parser.add_argument(
        "--algo",
        choices=ALGOS,
        default=d.algo,
        help=f"maskable: MaskablePPO; ppo: plain PPO with the fallback wrapper (default {d.algo})",
    )
    parser.add_argument(
        "--eval-freq",
        type=nonnegative_int,
        default=d.eval_freq,
        metavar="STEPS",
        help=f"timesteps between evaluations, 0: none (default {d.eval_freq})",
    )
    parser.add_argument(
        "--eval-seeds",
        type=positive_int,
        default=d.eval_seeds,
        help=f"branch orders per question in evaluations (default {d.eval_seeds})",
    )
    parser.add_argument(
        "--checkpoint-freq",
        type=nonnegative_int,
        default=d.checkpoint_freq,
        metavar="STEPS",
        help=f"timesteps between checkpoints, 0: none (default {d.checkpoint_freq})",
    )
    parser.add_argument("--learning-rate", type=positive_float, default=d.learning_rate, help=f"default {d.learning_rate}")
    parser.add_argument("--ent-coef", type=nonnegative_float, default=d.ent_coef, help=f"entropy bonus (default {d.ent_coef})")
    parser.add_argument("--run-name", help="TensorBoard run name (default: <algo>_w<cost weight>_s<seed>)")
    parser.add_argument("--tensorboard", required=True, metavar="DIR", help="TensorBoard log folder")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="folder of model.zip, config.json, checkpoints/, eval.csv"
    )
    parser.add_argument("--verbose", action="store_true", help="print SB3's tables and each evaluation")
    add_progress_argument(parser)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` the arguments describe."""
    return TrainConfig(
        store=None if args.store == "default" else args.store,
        splits=args.splits,
        eval_splits=args.eval_splits,
        algo=args.algo,
        total_timesteps=args.timesteps,
        cost_weight=args.cost_weight,
        budget_tokens=args.budget_tokens,
        max_branches=args.max_branches,
        n_envs=args.n_envs,
        vec_env=args.vec_env,
        seed=args.seed,
        learning_rate=args.learning_rate,
        ent_coef=args.ent_coef,
        eval_freq=args.eval_freq,
        eval_seeds=args.eval_seeds,
        checkpoint_freq=args.checkpoint_freq,
        tensorboard=args.tensorboard,
        run_name=args.run_name,
        out=args.out,
    )


def run(args: argparse.Namespace) -> int:
    """Train, then print where the model went, the speed and the last evaluation."""
    from agents.ppo.train import train  # torch and SB3 load only when training

    result = train(config_from_args(args), verbose=int(args.verbose), progress=args.progress)
    print(f"model: {result.model} (config {result.config})")
    print(f"tensorboard: {result.tensorboard}   checkpoints: {result.checkpoints}")
    print(
        f"{result.timesteps} steps in {result.seconds:.0f} s ({result.steps_per_second:.0f} steps/s, evaluations included)"
    )
    for split, m in result.final_eval.items():
        print(
            f"  eval {split}: accuracy {m['accuracy']:.1f}%  tokens {m['tokens']:.0f}  reward {m['reward']:.4f}  "
            f"branches {m['branches_opened']:.1f}"
        )
    budget = "" if args.budget_tokens is None else f" --budget-tokens {args.budget_tokens:g}"
    print(f"evaluate it: autotts evaluate {args.store} --method ppo:{result.model}{budget}")
    return 0
