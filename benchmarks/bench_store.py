"""Scale test of the store: generate a large synthetic split, save it, load it back.

    python benchmarks/bench_store.py                       # 10,000 questions x 256 branches
    python benchmarks/bench_store.py --questions 1000      # a quicker run
    python benchmarks/bench_store.py --load STORE --repeat 20  # only time Store.load of STORE

Prints generation, save and load times, the store's size on disk, resident memory after
each phase (and the process peak), the time to build the engine's view of a question
(``Split.question``, uncached) and the time of a few engine episodes on it.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from autotts_gym.data.store import Split, Store
from autotts_gym.data.synthetic import DEFAULT_PROFILE, PROFILES, generate_split
from autotts_gym.engine import Episode
from autotts_gym.engine.voting import majority
from autotts_gym.evaluation.orders import branch_order


def rss_mb() -> float:
    """Current resident memory of this process, in MB (Linux)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Phase:
    """Wall-clock and CPU time of a ``with`` block (CPU time is the fairer figure on a
    shared machine)."""

    def __enter__(self) -> Phase:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def __str__(self) -> str:
        return f"{self.wall:.1f} s wall, {self.cpu:.1f} s CPU"


def folder_mb(path: Path) -> float:
    """Total size of the files under ``path``, in MB."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def sc_episode(split: Split, question: int, seed: int, k: int = 64) -> int:
    """Self-consistency over k whole branches, straight on the engine; returns tokens."""
    q = split.question(question)
    episode = Episode(q, branch_order(q.num_branches, seed, question))
    finals = [episode.read_whole()[1] for _ in range(min(k, q.num_branches))]
    return episode.answer(majority(finals)[0]).tokens


def probe_episode(split: Split, question: int, seed: int, width: int = 16) -> int:
    """Open ``width`` branches and step them all, probing, until they finish; returns tokens."""
    q = split.question(question)
    episode = Episode(q, branch_order(q.num_branches, seed, question))
    for _ in range(min(width, q.num_branches)):
        episode.open_and_probe()
    while episode.active_branches:
        episode.continue_and_probe_many(list(episode.active_branches))
    return episode.answer().tokens


def time_load(path: Path, repeat: int) -> None:
    """Load the store ``repeat`` times; print the minimum and median wall and CPU times."""
    walls, cpus = [], []
    for _ in range(repeat):
        with Phase() as phase:
            store = Store.load(path)
        walls.append(phase.wall)
        cpus.append(phase.cpu)
        del store
        gc.collect()
    walls.sort()
    cpus.sort()
    print(
        f"load {path} x{repeat}: wall min {1000 * walls[0]:.1f} ms, median {1000 * walls[len(walls) // 2]:.1f} ms; "
        f"CPU min {1000 * cpus[0]:.1f} ms, median {1000 * cpus[len(cpus) // 2]:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=10_000)
    parser.add_argument("--branches", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES))
    parser.add_argument("--episodes", type=int, default=20, help="engine episodes per kind")
    parser.add_argument("--load", metavar="STORE", help="only time Store.load of this store folder, --repeat times")
    parser.add_argument("--repeat", type=int, default=10, help="loads timed with --load")
    args = parser.parse_args()
    if args.load:
        time_load(Path(args.load), args.repeat)
        return

    print(f"start: rss {rss_mb():.0f} MB")
    with Phase() as phase:
        split = generate_split(args.questions, args.branches, args.seed, profile=args.profile, model="bench", benchmark="scale")
    n_probes = len(split.probe_ids)
    print(
        f"generate {args.questions} x {args.branches} ({args.questions * args.branches:,} branches, {n_probes:,} probes, "
        f"profile {args.profile}): {phase}; rss {rss_mb():.0f} MB, peak {peak_mb():.0f} MB"
    )
    arrays_mb = sum(a.nbytes for a in (split.probe_ids, split.probe_offsets, split.final_ids, split.total_tokens)) / 2**20
    print(f"  columnar arrays: {arrays_mb:.0f} MB")

    tmp = Path(tempfile.mkdtemp(prefix="autotts-bench-"))
    try:
        with Phase() as phase:
            Store([split]).save(tmp / "store")
        print(f"save: {phase}; {folder_mb(tmp / 'store'):.0f} MB on disk; rss {rss_mb():.0f} MB, peak {peak_mb():.0f} MB")
        del split
        gc.collect()
        before = rss_mb()
        with Phase() as phase:
            loaded = Store.load(tmp / "store").splits[0]
        print(f"load: {phase}; rss {before:.0f} -> {rss_mb():.0f} MB, peak {peak_mb():.0f} MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    questions = [(i * 7919) % loaded.num_questions for i in range(args.episodes)]
    t0 = time.perf_counter()
    for q in questions:
        loaded.question(q)
    t1 = time.perf_counter()
    print(f"Split.question (uncached, {args.branches} branches): {1000 * (t1 - t0) / len(questions):.2f} ms per question")
    for name, run in (("SC@64 (read whole)", sc_episode), ("probe-all, 16 wide", probe_episode)):
        t0 = time.perf_counter()
        tokens = sum(run(loaded, q, seed) for seed, q in enumerate(questions))
        t1 = time.perf_counter()
        print(
            f"engine episode {name}: {1000 * (t1 - t0) / len(questions):.2f} ms per episode "
            f"({tokens / len(questions) / 1000:.0f}k tokens per episode)"
        )


if __name__ == "__main__":
    main()
