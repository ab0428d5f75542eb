"""``autotts compare``: several method families over a beta sweep, as a table, files,
a Pareto plot and TensorBoard runs."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from agents.registry import parse_overrides, spec_help
from autotts_gym.cli.commands._args import positive_int
from autotts_gym.cli.commands._protocol import (
    add_protocol_arguments,
    add_store_argument,
    options_from_args,
    show_progress,
)
from autotts_gym.cli.methods import (
    COMPARE_BETAS,
    COMPARE_METHODS,
    parse_betas,
    parse_list,
    run_methods,
    sweep_specs,
)
from autotts_gym.data.sources import load_store
from autotts_gym.evaluation.evaluate import monotonicity_violations, write_records_csv
from autotts_gym.reporting.paired import compare_against, format_paired
from autotts_gym.reporting.tables import format_compare, pool_reference, write_summaries_csv


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``autotts compare``."""
    add_store_argument(parser)
    parser.add_argument(
        "--methods",
        default=",".join(COMPARE_METHODS),
        metavar="M1,M2,...",
        help=f"comma-separated method specs (default {','.join(COMPARE_METHODS)}): {spec_help()}; "
        "a method with @BETA or without a beta schedule runs once",
    )
    parser.add_argument(
        "--betas",
        default=",".join(f"{b:g}" for b in COMPARE_BETAS),
        metavar="B1,B2,...",
        help=f"betas of every family (default {','.join(f'{b:g}' for b in COMPARE_BETAS)})",
    )
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one parameter of every method (repeatable)")
    parser.add_argument(
        "--isolate",
        action="store_true",
        help="run each method's code as discovery runs candidates: in an OS container holding only what its "
        "episodes revealed (file.py:Class methods are your own code and otherwise run in this process)",
    )
    add_protocol_arguments(parser)
    output = parser.add_argument_group("output")
    output.add_argument("--out", required=True, metavar="DIR", help="write results.json, results.csv and pareto.png to DIR")
    output.add_argument("--records", action="store_true", help="also write records.csv (one row per episode)")
    output.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard scalars and the Pareto figure to DIR")
    output.add_argument("--benchmark", metavar="B", help="plot only benchmark B (one panel per model)")
    output.add_argument("--references", action="store_true", help="mark the pool majority and pass@N in the plot")
    output.add_argument("--ci", action="store_true", help="draw 95%% interval error bars in the plot")
    paired = parser.add_argument_group("paired comparison")
    paired.add_argument(
        "--against",
        metavar="METHOD",
        help="also compare every setting with METHOD's curve at matched tokens, per benchmark (model average), "
        "with 95%% bootstrap intervals paired over questions; writes paired.json",
    )
    paired.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap resamples of --against (default 2000)")


def run(args: argparse.Namespace) -> int:
    """Evaluate every (method, beta, split) in one pool, then report and write files."""
    from autotts_gym.reporting.plots import save_pareto  # loaded only when it runs (autotts --help stays light)
    from autotts_gym.reporting.tracking import log_summaries  # loaded only when it runs (autotts --help stays light)
    store = load_store(args.store)
    specs = sweep_specs(parse_list(args.methods), parse_betas(args.betas), parse_overrides(args.set))
    if not specs:
        raise ValueError("--methods names no method")
    if args.against:
        names = sorted({spec.build().name for spec in specs})
        if args.against not in names:
            raise ValueError(f"--against {args.against}: not among the evaluated methods {names}")
    started = time.perf_counter()
    evaluations = run_methods(
        store,
        specs,
        options_from_args(args),
        splits=args.splits,
        workers=args.workers,
        progress=show_progress(args),
        isolate=args.isolate,
    )
    seconds = time.perf_counter() - started
    summaries = [e.summary for e in evaluations]

    print(format_compare(summaries))
    for v in monotonicity_violations(evaluations):
        print(f"monotonicity violation: {v}")
    episodes = sum(s.episodes for s in summaries)
    print(f"{len(evaluations)} cells, {episodes} episodes in {seconds:.2f} s ({episodes / seconds:.0f} episodes/s)")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.json"
    results.write_text(json.dumps([s.as_dict() for s in summaries], indent=2, default=str) + "\n")
    written = [results, write_summaries_csv(summaries, out / "results.csv")]
    references = [pool_reference(s) for s in store.select(args.splits)] if args.references else []
    plot = {"benchmark": args.benchmark, "ci": args.ci, "references": references}
    written.append(save_pareto(summaries, out / "pareto.png", **plot))
    if args.records:
        written.append(write_records_csv(evaluations, out / "records.csv"))
    if args.against:
        rows = compare_against(evaluations, args.against, resamples=args.resamples)
        print(f"\npaired against {args.against}: model averages per benchmark; differences at matched tokens")
        print(format_paired(rows, args.against))
        paired_json = out / "paired.json"
        paired_json.write_text(json.dumps([r.as_dict() for r in rows], indent=1) + "\n")
        written.append(paired_json)
    for path in written:
        print(f"wrote {path}")
    if args.tensorboard:
        print(f"wrote TensorBoard events to {log_summaries(args.tensorboard, summaries, **plot)}")
    return 0
