"""Headroom at DSR-L's accurate end, on the search split (AIME24) only.

    OMP_NUM_THREADS=1 python discovery/top_end.py [--seeds 100] [--out DIR]

The issue's accurate-end target asks for more accuracy at the top of the curve. This
script asks whether DSR-L's top end can buy it on the search split: it evaluates DSR-L's
curve (betas 0 to 1 in steps of 0.125) and variants of its beta 0.375, 0.75 and 1 settings that spend more
to be more accurate: wider races, stricter stops, a weaker or no futility stop. For each
variant it prints its accuracy minus DSR-L's curve at the same mean tokens, with a 95%
interval paired over questions (:mod:`autotts_gym.reporting.paired`). A variant that costs more
than DSR-L's most expensive point is outside the curve ("n/a"): it is reported with its
own accuracy and tokens.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from agents.dsr_lock import LockedDepthSyncRace
from autotts_gym.data.sources import load_store
from autotts_gym.evaluation.evaluate import evaluate_many, make_options
from autotts_gym.reporting.paired import QuestionTable, accuracy_interval, matched_difference
from autotts_gym.reporting.tables import render_table

RELEASE = Path(__file__).resolve().parents[2] / "shared" / "replay" / "autotts-release"
CURVE_BETAS = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)
VARIANT_BETAS = (0.375, 0.75, 1.0)
# Each variant: what it changes in DSR-L's schedule.
VARIANTS = {
    "wider race (96 branches, 64 in a contest)": {"max_branch": 96, "w1": 64},
    "wider race (128) and threshold 0.95": {"max_branch": 128, "w1": 64, "threshold": 0.95},
    "threshold 0.95": {"threshold": 0.95},
    "lead of at least 6": {"min_lead": 6},
    "futility share 0.15": {"futile_share": 0.15},
    "no futility stop": {"futility": False},
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", default=str(RELEASE), help="store (default: the release)")
    p.add_argument("--benchmark", default="aime24", help="the search benchmark (default aime24)")
    p.add_argument("--seeds", type=int, default=100, help="seeds 0..N-1 per question (default 100)")
    p.add_argument("--workers", type=int, default=None, help="evaluation processes (default: all cores)")
    p.add_argument("--out", help="also write top_end.json to this folder")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    splits = load_store(args.store).select([f"*/{args.benchmark}"])
    settings = [("DSR-L", beta, {}) for beta in CURVE_BETAS]
    settings += [(name, beta, changes) for name, changes in VARIANTS.items() for beta in VARIANT_BETAS]
    cells = [(LockedDepthSyncRace.from_beta(beta, **changes), s) for _, beta, changes in settings for s in splits]
    started = time.perf_counter()
    evaluations = evaluate_many(cells, make_options(args.seeds), workers=args.workers, progress=True)
    print(f"{len(cells)} cells on {', '.join(s.name for s in splits)} in {time.perf_counter() - started:.0f} s")

    n = len(splits)
    tables = [
        QuestionTable.from_evaluations(evaluations[i * n : (i + 1) * n], f"{name} beta={beta:g}")
        for i, (name, beta, _) in enumerate(settings)
    ]
    curve = tables[: len(CURVE_BETAS)]
    body, rows = [], []
    for (name, beta, changes), table in zip(settings, tables):
        acc = accuracy_interval(table)
        diff = matched_difference(table, curve) if changes else None
        rows.append({"setting": name, "beta": beta, "changes": changes, "accuracy": acc.__dict__, "vs_dsr_l": diff and diff.__dict__})
        body.append(
            [
                name,
                f"{beta:g}",
                f"{table.mean_tokens / 1000:.1f}k",
                f"{acc.estimate:.2f} [{acc.low:.1f}, {acc.high:.1f}]",
                "" if diff is None else diff.format(),
                "" if diff is None or diff.estimate != diff.estimate else f"{diff.p_at_most_zero:.3f}",
            ]
        )
    header = ["setting", "beta", "tokens", "acc % [95% CI]", "vs DSR-L curve [95% CI]", "P(<=0)"]
    print(f"{args.benchmark}: model averages, {args.seeds} seeds, release shuffle")
    print(render_table(header, body))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "top_end.json").write_text(json.dumps(rows, indent=1) + "\n")
        print(f"wrote {out / 'top_end.json'}")


if __name__ == "__main__":
    main()
