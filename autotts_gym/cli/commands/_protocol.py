"""Arguments shared by ``autotts evaluate``, ``compare`` and ``table``: the store, the
evaluation protocol (seeds, shuffle, budget, ...) and how the run is executed."""

from __future__ import annotations

import argparse

from autotts_gym.cli.commands._args import nonnegative_float, positive_float, positive_int
from autotts_gym.evaluation.evaluate import EpisodeOptions, make_options
from autotts_gym.evaluation.orders import SHUFFLES
from autotts_gym.utils.progress import add_progress_argument


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    """The positional STORE argument."""
    parser.add_argument(
        "store", metavar="STORE", help="store folder, release JSON file or folder, or 'default' (the embedded store)"
    )


def add_protocol_arguments(parser: argparse.ArgumentParser, splits: bool = True) -> None:
    """Seeds, shuffle, subsample, budget, split selection, workers and progress."""
    group = parser.add_argument_group("protocol")
    group.add_argument("--seeds", type=positive_int, default=100, metavar="N", help="episode seeds 0..N-1 per question (default 100, the paper's)")
    group.add_argument(
        "--shuffle", default="release", choices=SHUFFLES, help="branch order per (question, seed) (default: release, the paper's)"
    )
    group.add_argument("--subsample", type=positive_int, metavar="K", help="let an episode open only the first K branches of its order")
    group.add_argument("--budget-tokens", type=positive_float, metavar="T", help="per-episode token budget (default: none)")
    group.add_argument(
        "--kappa-probe", type=nonnegative_float, default=0.0, metavar="K", help="cost of one probe in intervals (default 0, the paper's)"
    )
    if splits:
        group.add_argument(
            "--splits", nargs="+", metavar="PATTERN", help="splits to use: model/benchmark, model/* or */benchmark (default: all)"
        )
    run = parser.add_argument_group("execution")
    run.add_argument("--workers", type=positive_int, metavar="W", help="worker processes (default: all cores; 1: this process)")
    add_progress_argument(run)


def options_from_args(args: argparse.Namespace) -> EpisodeOptions:
    """The :class:`EpisodeOptions` the protocol arguments describe."""
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    return make_options(args.seeds, args.shuffle, args.subsample, args.budget_tokens, kappa_probe=args.kappa_probe)


def show_progress(args: argparse.Namespace) -> bool:
    """A progress bar unless ``--no-progress`` (see :mod:`autotts_gym.utils.progress`)."""
    return bool(args.progress)
