"""``autotts synth``: generate a synthetic store (seeded, deterministic)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from autotts_gym.cli.commands._args import nonnegative_int, positive_int
from autotts_gym.data.store import Store
from autotts_gym.data.synthetic import DEFAULT_PROFILE, PROFILES, generate_split
from autotts_gym.utils.progress import add_progress_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``autotts synth``."""
    parser.add_argument("--questions", type=positive_int, required=True, metavar="Q", help="number of questions")
    parser.add_argument("--branches", type=positive_int, required=True, metavar="B", help="branches per question")
    parser.add_argument("--seed", type=nonnegative_int, required=True, metavar="S", help="seed (same seed, same store)")
    parser.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        choices=sorted(PROFILES),
        help=f"calibrated profile (default {DEFAULT_PROFILE})",
    )
    parser.add_argument("--out", required=True, metavar="STORE", help="store folder to write")
    parser.add_argument("--model", default="synthetic", help="model name of the split (default synthetic)")
    parser.add_argument("--benchmark", default="synthetic", help="benchmark name of the split (default synthetic)")
    parser.add_argument("--interval-tokens", type=positive_int, default=500, metavar="DELTA", help="tokens between probes")
    parser.add_argument("--overwrite", action="store_true", help="replace STORE if it exists")
    add_progress_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Generate the split, write the store atomically and print what was written."""
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    start = time.perf_counter()
    split = generate_split(
        args.questions,
        args.branches,
        args.seed,
        model=args.model,
        benchmark=args.benchmark,
        profile=args.profile,
        interval_tokens=args.interval_tokens,
        progress=args.progress,
    )
    generated = time.perf_counter()
    Store([split]).save(out, overwrite=args.overwrite)
    saved = time.perf_counter()
    s = split.summary()
    print(
        f"{split.name}: {s['questions']} questions x {args.branches} branches, {s['probes']} probes, "
        f"profile {args.profile}, seed {args.seed}; single-branch accuracy {100 * s['branch_accuracy']:.1f}%, "
        f"{s['tokens_mean']:.0f} tokens per branch on average"
    )
    print(f"generated in {generated - start:.2f} s, saved in {saved - generated:.2f} s to {out}")
    return 0
