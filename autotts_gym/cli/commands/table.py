"""``autotts table``: the paper's Table 1 layout for every model of a store."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agents.registry import spec_help
from autotts_gym.cli.commands._protocol import (
    add_protocol_arguments,
    add_store_argument,
    options_from_args,
    show_progress,
)
from autotts_gym.cli.methods import TABLE1_ROWS, parse_list, run_table1
from autotts_gym.evaluation.evaluate import write_summaries_json
from autotts_gym.reporting.tables import format_table1, write_table1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``autotts table``."""
    add_store_argument(parser)
    parser.add_argument(
        "--rows",
        default=",".join(TABLE1_ROWS),
        metavar="SPEC,...",
        help=f"comma-separated method specs (default: the paper's {','.join(TABLE1_ROWS)}): {spec_help()}",
    )
    parser.add_argument(
        "--search", nargs="+", metavar="BENCH", help="search benchmark(s), first columns (default: aime24, else the store's first)"
    )
    parser.add_argument("--heldout", nargs="+", metavar="BENCH", help="held-out benchmark(s) (default: every other benchmark)")
    add_protocol_arguments(parser, splits=False)
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print the table as JSON instead of text")
    output.add_argument("--out", metavar="DIR", help="write table1.csv, table1.json, summary.json and table1.png to DIR")


def run(args: argparse.Namespace) -> int:
    """Evaluate every row on every search and held-out split, then print the table."""
    from autotts_gym.reporting.plots import save_pareto  # loaded only when it runs (autotts --help stays light)
    options = options_from_args(args)
    result = run_table1(
        args.store,
        parse_list(args.rows),
        options,
        search=args.search,
        heldout=args.heldout,
        workers=args.workers,
        progress=show_progress(args),
    )
    if args.json:
        print(json.dumps(result.table.to_dict(), indent=2))
    else:
        print(
            f"Table 1: {len(options.seeds)} seeds, {options.shuffle} shuffle; accuracy in %, "
            "tokens = mean total tokens per question"
        )
        print(format_table1(result.table))
        episodes = sum(e.summary.episodes for e in result.evaluations)
        print(f"{len(result.evaluations)} cells, {episodes} episodes in {result.seconds:.2f} s")
    if args.out:
        out = Path(args.out)
        written = write_table1(result.table, out)
        written.append(write_summaries_json(result.evaluations, out / "summary.json"))
        written.append(save_pareto([e.summary for e in result.evaluations], out / "table1.png"))
        if not args.json:
            for path in written:
                print(f"wrote {path}")
    return 0
