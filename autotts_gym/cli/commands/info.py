"""``autotts info``: what a store holds, per split."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from autotts_gym.data.sources import load_store

# (header, summary key, format) of the per-split table.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("questions", "questions", "{}"),
    ("branches/q", "branches_per_question", "{}"),
    ("Delta", "interval_tokens", "{}"),
    ("tok mean", "tokens_mean", "{:.0f}"),
    ("tok median", "tokens_median", "{:.0f}"),
    ("tok p90", "tokens_p90", "{:.0f}"),
    ("tok max", "tokens_max", "{}"),
    ("probes/branch", "probes_per_branch_mean", "{:.1f}"),
    ("1-branch acc", "branch_accuracy", "{:.1%}"),
    ("ERR probes", "no_answer_probe_rate", "{:.1%}"),
    ("probe conf", "has_probe_confidence", "{}"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``autotts info``."""
    parser.add_argument(
        "store", metavar="STORE", help="store folder, release JSON file or folder, or 'default' (the embedded store)"
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    """Load the store and print its description."""
    store = load_store(args.store)
    report = {
        "store": args.store,
        "models": store.models,
        "benchmarks": store.benchmarks,
        "splits": [split.summary() for split in store],
    }
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def format_report(report: dict[str, Any]) -> str:
    """The human-readable form of an ``info`` report: header, per-split table, provenance."""
    splits = report["splits"]
    lines = [
        f"store: {report['store']} ({len(splits)} split(s))",
        f"models: {', '.join(report['models'])}",
        f"benchmarks: {', '.join(report['benchmarks'])}",
        "",
    ]
    header = ["split", *(h for h, _, _ in COLUMNS)]
    rows = [[f"{s['model']}/{s['benchmark']}", *(_cell(s[key], fmt) for _, key, fmt in COLUMNS)] for s in splits]
    lines += _table(header, rows)
    lines += ["", "source and sampling:"]
    for s in splits:
        sampling = " ".join(f"{k}={v}" for k, v in s["sampling"].items()) or "-"
        lines.append(f"  {s['model']}/{s['benchmark']}: {s['source'] or '-'}; {sampling}")
    return "\n".join(lines)


def _cell(value: Any, fmt: str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):  # [min, max] per question
        lo, hi = value
        return str(lo) if lo == hi else f"{lo}-{hi}"
    return fmt.format(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    # First column (names) left-aligned, figures right-aligned.
    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header), *(line(r) for r in rows)]
