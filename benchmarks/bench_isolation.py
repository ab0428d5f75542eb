"""What isolation costs: a discovery round's beta sweep, isolated and in-process, side by side.

The sweep is a discovery round's: a CMC-like candidate (the paper's CMC, ``agents/cmc.py``,
evaluated as candidate source), 5 betas, the four AIME24 splits, 20 seeds. The
in-process reference runs the same controllers with ``evaluate_many`` in this process's
worker pool; the isolated run is ``evaluate_candidate`` (static check, containers, the
engine here), traces off in both. Both use the same number of workers; runs alternate
and the best of ``--repeat`` is kept for each, so load from elsewhere hurts both alike.

It prints both times, their ratio, and where the isolated time goes: container start-up,
describing the candidate, playing the units (split into the engine's own work and the
rest: the candidate's code, the channel, the container's processes), requests per
episode, and the CPU seconds of each side against the in-process run's.

    python benchmarks/bench_isolation.py                     # release data beside the repo
    python benchmarks/bench_isolation.py --store default --seeds 5 --workers 1
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from agents.cmc import ConfidenceMomentum  # noqa: E402
from agents.discovery.sandbox import SandboxLimits, SweepJob, evaluate_candidate  # noqa: E402
from autotts_gym.data.sources import load_store  # noqa: E402
from autotts_gym.evaluation.evaluate import default_workers, evaluate_many, make_options  # noqa: E402

RELEASE = ROOT.parent / "shared" / "replay" / "autotts-release"
BETAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(RELEASE), help="store (default: the release beside the repository)")
    parser.add_argument("--splits", default="*/aime24", help="split pattern (default */aime24)")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side (best kept)")
    args = parser.parse_args()

    source = (ROOT / "agents" / "cmc.py").read_text()
    splits = load_store(args.store).select([args.splits])
    options = make_options(args.seeds)
    job = SweepJob(store=args.store, splits=(args.splits,), betas=BETAS, seeds=tuple(range(args.seeds)), trace_episodes=0)
    cells = [(ConfidenceMomentum.from_beta(b), s) for b in BETAS for s in splits]
    episodes = len(cells) * args.seeds * sum(s.num_questions for s in splits) // len(splits)
    evaluate_candidate(source, job, SandboxLimits(), workers=args.workers)  # warm: store cache, page cache

    inproc, isolated, inproc_cpu, outcome = [], [], [], None
    for _ in range(args.repeat):
        t, c = time.perf_counter(), cpu_seconds()
        reference = evaluate_many(cells, options, workers=args.workers)
        inproc.append(time.perf_counter() - t)
        inproc_cpu.append(cpu_seconds() - c)
        t = time.perf_counter()
        outcome = evaluate_candidate(source, job, SandboxLimits(), workers=args.workers)
        isolated.append(time.perf_counter() - t)
        assert outcome.ok, outcome.failure
    same = all(
        abs(p["splits"][ev.split.name]["accuracy"] - ev.summary.accuracy) < 1e-9
        and abs(p["splits"][ev.split.name]["tokens"] - ev.summary.tokens) < 1e-6
        for p, i in zip(outcome.points, range(len(BETAS)))
        for ev in reference[i * len(splits) : (i + 1) * len(splits)]
    )
    t_in, t_iso = min(inproc), min(isolated)
    timing = outcome.timing
    print(f"sweep: CMC as a candidate, {len(BETAS)} betas x {len(splits)} splits x {args.seeds} seeds = {episodes} episodes, {args.workers} worker(s)")
    print(f"in-process  {t_in:7.2f} s")
    print(f"isolated    {t_iso:7.2f} s   ratio {t_iso / t_in:.2f}x   (same accuracy and tokens: {same})")
    print("where the isolated time goes (seconds; the slowest container):")
    play = timing.get("play", 0.0)
    engine = timing.get("engine", 0.0) / max(1, args.workers)
    print(f"  start-up {timing.get('startup', 0):.2f}   describe {timing.get('describe', 0):.2f}   play {play:.2f}")
    print(f"  of play: engine (actions, replies) ~{engine:.2f} per worker; candidate code, channel, processes ~{play - engine:.2f}")
    print(f"  units {int(timing.get('units', 0))} (one point x one seed over every split, a fresh process each)")
    requests = timing.get("requests", 0)
    print(f"  requests {int(requests)} ({requests / episodes:.1f} per episode); engine {1e6 * timing.get('engine', 0) / max(1, requests):.1f} us per request")
    # CPU, summed over workers: the in-process reference (controller and engine) against the
    # isolated run's two sides (the engine's processes; the containers' processes).
    c_in, c_engine, c_box = min(inproc_cpu), timing.get("engine_cpu", 0.0), timing.get("sandbox_cpu", 0.0)
    per = 1e6 / max(1, requests)
    print(f"CPU seconds: in-process {c_in:.2f} ({c_in * per:.1f} us per request)")
    print(f"             isolated {c_engine + c_box:.2f} = engine side {c_engine:.2f} ({c_engine * per:.1f} us per request)"
          f" + sandbox side {c_box:.2f} ({c_box * per:.1f} us per request)   ratio {(c_engine + c_box) / max(c_in, 1e-9):.2f}x")


def cpu_seconds() -> float:
    """CPU seconds of this process and of its reaped children (the pool's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


if __name__ == "__main__":
    main()
