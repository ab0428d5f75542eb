"""``autotts evaluate``: one method (or one family over several betas) on a store."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from agents.registry import parse_overrides, spec_help
from autotts_gym.cli.commands._args import unit_float
from autotts_gym.cli.commands._protocol import (
    add_protocol_arguments,
    add_store_argument,
    options_from_args,
    show_progress,
)
from autotts_gym.cli.methods import parse_betas, parse_method_spec, run_methods
from autotts_gym.evaluation.evaluate import (
    default_workers,
    monotonicity_violations,
    write_records_csv,
    write_summaries_json,
)
from autotts_gym.reporting.tables import summary_json, summary_line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``autotts evaluate``."""
    add_store_argument(parser)
    parser.add_argument(
        "--method",
        required=True,
        metavar="SPEC",
        help=spec_help(),
    )
    parser.add_argument(
        "--isolate",
        action="store_true",
        help="run the method's code exactly as discovery runs candidates: in an OS container (bubblewrap) that "
        "holds only what its episodes revealed, with the engine in this process (without it, a file.py:Class "
        "method is your own code and runs in this process)",
    )
    parser.add_argument(
        "--beta", type=unit_float, action="append", metavar="B", help="build the method from its schedule at B (repeat for a sweep)"
    )
    parser.add_argument("--betas", metavar="B1,B2,...", help="comma-separated betas of a sweep")
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override one parameter (repeatable), e.g. --set k=16"
    )
    add_protocol_arguments(parser)
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print one JSON object per split (and beta) per line")
    output.add_argument("--out", metavar="DIR", help="write records.csv (one row per episode) and summary.json to DIR")
    output.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard scalars and the Pareto figure to DIR")


def run(args: argparse.Namespace) -> int:
    """Build the controller(s), evaluate, print, and write the requested files."""
    from autotts_gym.reporting.tracking import log_summaries  # loaded only when it runs (autotts --help stays light)
    overrides = parse_overrides(args.set)
    betas = [*(args.beta or []), *(parse_betas(args.betas) if args.betas else [])]
    spec = parse_method_spec(args.method, overrides)
    if spec.beta is not None and betas:
        raise ValueError(f"--method {args.method} fixes beta {spec.beta:g}; drop --beta/--betas or the @{spec.beta:g}")
    specs = [replace(spec, beta=b) for b in betas] or [spec]
    options = options_from_args(args)
    started = time.perf_counter()
    evaluations = run_methods(
        args.store,
        specs,
        options,
        splits=args.splits,
        workers=args.workers,
        progress=show_progress(args),
        isolate=args.isolate,
    )
    seconds = time.perf_counter() - started
    summaries = [e.summary for e in evaluations]

    # In --json mode stdout holds only JSON lines; everything else goes to stderr.
    say = (lambda text: print(text, file=sys.stderr)) if args.json else print
    for s in summaries:
        print(summary_json(s) if args.json else summary_line(s))
    if len(betas) > 1:
        violations = monotonicity_violations(evaluations)
        for v in violations:
            say(f"monotonicity violation: {v}")
        if not violations:
            say("monotonicity: mean tokens are non-decreasing in beta on every split")
    episodes = sum(s.episodes for s in summaries)
    workers = args.workers or default_workers()
    say(f"{episodes} episodes in {seconds:.2f} s ({episodes / seconds:.0f} episodes/s, {workers} worker(s))")
    if args.out:
        out = Path(args.out)
        for path in (write_records_csv(evaluations, out / "records.csv"), write_summaries_json(evaluations, out / "summary.json")):
            say(f"wrote {path}")
    if args.tensorboard:
        say(f"wrote TensorBoard events to {log_summaries(args.tensorboard, summaries)}")
    return 0
