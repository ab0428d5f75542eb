"""Speed of the evaluation protocol: episodes per second per method and the Table 1 matrix.

    OMP_NUM_THREADS=1 python benchmarks/bench_protocol.py [--seeds 10] [--matrix-seeds 100] [--single-matrix]
        [--pure-python-reference] [--matrix-only]

On the release data (``../shared/replay/autotts-release``, 4 models x AIME24/AIME25):

1. per Table 1 row (SC@64, ASC, ESC, Parallel-Probe, CMC beta 0.5 and 1.0): all eight
   splits with ``--seeds`` seeds, in this process (1 worker) and with every core;
   episodes per second of each;
2. the whole matrix (4 models x 2 benchmarks x 6 rows x ``--matrix-seeds`` seeds) in
   one ``evaluate_many`` call with every core (and, with ``--single-matrix``, in one
   process), the figure issue 3 sets a target for.

With ``--pure-python-reference`` it also times the matrix in a child process with the
plain-Python build of the engine (``AUTOTTS_PURE_PYTHON=1``: the same source, not compiled), and
prints the ratio of the two, measured in the same run.

Besides wall time it prints CPU time (this process and its workers), which a machine
shared with other jobs inflates less. The reference figures of the issue are printed
next to ours. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autotts_gym.cli.methods import TABLE1_ROWS, parse_method_spec, run_methods
from autotts_gym.data.sources import load_store
from autotts_gym.engine import episode
from autotts_gym.evaluation.evaluate import default_workers, make_options
from autotts_gym.reporting.tables import render_table
from autotts_gym.utils.build import is_compiled

RELEASE = Path(__file__).resolve().parents[1].parent / "shared" / "replay" / "autotts-release"

REFERENCE = """reference figures (issue 3, this machine):
  release's own code, 1 core:        about 7 min for the matrix (SC@64 ~2 s a cell,
                                     Parallel-Probe ~19 s, CMC 10-17 s)
  plain re-implementation, 1 process: about 36 s
  target for autotts-gym:            under 10 s wall clock on 2 cores"""


def cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``(result, wall seconds, CPU seconds)`` of ``fn()``."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(RELEASE), help="store or release folder (default: the release data)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per question for the per-method figures")
    parser.add_argument("--matrix-seeds", type=int, default=100, help="seeds per question for the matrix (the paper: 100)")
    parser.add_argument("--single-matrix", action="store_true", help="also time the matrix in one process")
    parser.add_argument(
        "--pure-python-reference", action="store_true", help="also time the matrix with the plain-Python build (child process)"
    )
    parser.add_argument("--matrix-only", action="store_true", help="time only the matrix")
    args = parser.parse_args()

    workers = default_workers()
    print(f"cores usable: {workers}; load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"engine build: {'compiled (Cython)' if is_compiled(episode) else 'plain Python'}")
    store, load_s, _ = timed(lambda: load_store(args.store))
    splits = list(store)
    print(f"store: {args.store} ({len(splits)} splits) loaded in {load_s:.2f} s\n")

    # Warm the per-question caches and the confidence cache once, outside the timings.
    run_methods(store, [parse_method_spec("sc"), parse_method_spec("asc")], make_options(1), workers=1)
    if not args.matrix_only:
        per_method(store, splits, args.seeds, workers)
    matrix_wall = time_matrix(store, splits, args.matrix_seeds, [workers, 1] if args.single_matrix else [workers])
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    if args.pure_python_reference:
        pure_wall = pure_python_matrix(args)
        print(f"plain-Python build matrix: {pure_wall:.2f} s wall; compiled {matrix_wall:.2f} s: "
              f"{pure_wall / matrix_wall:.2f}x faster\n")  # fmt: skip
    if not args.matrix_only:
        print(REFERENCE)


def per_method(store: Any, splits: list, seeds: int, workers: int) -> None:
    """Episodes per second of each Table 1 row, in this process and on every core."""
    options = make_options(seeds)
    body = []
    for row in TABLE1_ROWS:
        spec = [parse_method_spec(row)]
        figures = []
        for w in (1, workers):
            evals, wall, cpu = timed(lambda w=w, spec=spec: run_methods(store, spec, options, workers=w))
            episodes = sum(e.summary.episodes for e in evals)
            figures.append((episodes, wall, cpu))
        (n, w1, c1), (_, wn, cn) = figures
        body.append([row, str(n), f"{w1:.2f}", f"{n / w1:.0f}", f"{wn:.2f}", f"{n / wn:.0f}", f"{w1 / wn:.2f}x", f"{cn:.2f}"])
    header = ["method", "episodes", "1 worker s", "ep/s", f"{workers} workers s", "ep/s", "speed-up", "CPU s"]
    print(f"episodes per second, all {len(splits)} splits x 30 questions x {seeds} seeds")
    print(render_table(header, body, text_columns=1))


def time_matrix(store: Any, splits: list, seeds: int, worker_counts: list[int]) -> float:
    """Time the Table 1 matrix with each worker count; the wall time of the first."""
    specs = [parse_method_spec(r) for r in TABLE1_ROWS]
    matrix = make_options(seeds)
    cells = len(specs) * len(splits)
    print(f"\nmatrix: {len(splits)} splits x {len(specs)} rows x {seeds} seeds = {cells} cells")
    walls = []
    for w in worker_counts:
        evals, wall, cpu = timed(lambda w=w: run_methods(store, specs, matrix, workers=w))
        episodes = sum(e.summary.episodes for e in evals)
        print(f"  {w} worker(s): {wall:.2f} s wall, {cpu:.2f} s CPU, {episodes} episodes, {episodes / wall:.0f} episodes/s")
        walls.append(wall)
    return walls[0]


def pure_python_matrix(args: argparse.Namespace) -> float:
    """The matrix's wall time in a child process with AUTOTTS_PURE_PYTHON=1."""
    command = [sys.executable, __file__, "--matrix-only", "--store", args.store, "--matrix-seeds", str(args.matrix_seeds)]
    env = {**os.environ, "AUTOTTS_PURE_PYTHON": "1"}
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    match = re.search(r"worker\(s\): ([0-9.]+) s wall", out)
    if match is None or "OFF" not in out:
        raise RuntimeError(f"unexpected output of the pure-Python run:\n{out}")
    return float(match.group(1))


if __name__ == "__main__":
    main()
