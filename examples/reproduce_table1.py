"""Regenerate the paper's Table 1 (AIME24 search, AIME25 held-out) from the released data.

    python examples/reproduce_table1.py [--store ../shared/replay/autotts-release] [--out runs/table1]

Evaluates SC@64, ASC, ESC, Parallel-Probe and CMC at beta 0.5 and 1.0 on every model
with the release's protocol (100 shuffle seeds, ``random.Random(seed).shuffle``), prints
the table with the pool reference rows, then every cell next to the published figure
(the release code's figure in the four cells where the two differ), and writes to the
out folder: ``table1.csv``, ``table1.json``, ``summary.json`` (per cell, with 95%
intervals), ``reproduction.txt`` and ``table1.png`` (accuracy against tokens per split).
Exits with status 1 if a cell misses its target.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autotts_gym.cli.methods import TABLE1_ROWS, run_table1
from autotts_gym.evaluation.evaluate import make_options, write_summaries_json
from autotts_gym.reporting.plots import save_pareto
from autotts_gym.reporting.published import check_reproduction, format_checks
from autotts_gym.reporting.tables import format_table1, write_table1

RELEASE = Path(__file__).resolve().parents[1].parent / "shared" / "replay" / "autotts-release"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(RELEASE), help="release folder or store (default: ../shared/replay/autotts-release)")
    parser.add_argument("--out", default="runs/table1", help="folder for the CSV/JSON/PNG files (default runs/table1)")
    parser.add_argument("--seeds", type=int, default=100, help="shuffle seeds 0..N-1 (default 100, the paper's)")
    parser.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    args = parser.parse_args()

    result = run_table1(
        args.store, TABLE1_ROWS, make_options(args.seeds, "release"), search=["aime24"], heldout=["aime25"],
        workers=args.workers, progress=True,
    )
    episodes = sum(e.summary.episodes for e in result.evaluations)
    print(f"Table 1 ({args.seeds} seeds, release shuffle; accuracy %, mean total tokens per question)")
    print(format_table1(result.table))
    print(f"\n{len(result.evaluations)} cells, {episodes} episodes in {result.seconds:.1f} s\n")

    checks = check_reproduction(result.table)
    report = format_checks(checks)
    missed = [c for c in checks if not c.ok]
    print(report)
    print(f"\n{len(checks) - len(missed)} of {len(checks)} cells within 0.1 point (+0.05 rounding) and 0.1% of tokens")

    out = Path(args.out)
    written = write_table1(result.table, out)
    written.append(write_summaries_json(result.evaluations, out / "summary.json"))
    (out / "reproduction.txt").write_text(report + "\n")
    written.append(out / "reproduction.txt")
    written.append(save_pareto([e.summary for e in result.evaluations], out / "table1.png", references=result.references))
    for path in written:
        print(f"wrote {path}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
