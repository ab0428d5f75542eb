"""``autotts plot``: re-draw the Pareto plot from a results file, without re-running."""

from __future__ import annotations

import argparse
from pathlib import Path

from autotts_gym.reporting.tables import read_summaries


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``autotts plot``."""
    parser.add_argument("results", metavar="RESULTS", help="summary.json (evaluate, table) or results.json (compare)")
    parser.add_argument("--out", metavar="FIG", help="image to write, format from the suffix (default: RESULTS with .png)")
    parser.add_argument("--benchmark", metavar="B", help="plot only benchmark B (one panel per model)")
    parser.add_argument("--ci", action="store_true", help="draw 95%% interval error bars")
    parser.add_argument("--title", help="figure title")


def run(args: argparse.Namespace) -> int:
    """Read the summaries and write the figure."""
    from autotts_gym.reporting.plots import save_pareto  # loaded only when it runs (autotts --help stays light)
    summaries = read_summaries(args.results)
    out = Path(args.out) if args.out else Path(args.results).with_suffix(".png")
    save_pareto(summaries, out, benchmark=args.benchmark, ci=args.ci, title=args.title)
    print(f"wrote {out}")
    return 0
