"""Speed and memory of AutoTTS-v0: steps/sec next to CartPole-v1, store load time and RSS.

    OMP_NUM_THREADS=1 python benchmarks/bench_env.py [--steps 200000] [--rounds 5]

Steps/sec: both envs built with ``gym.make`` and driven by the same random masked policy
(uniform over the admissible actions; CartPole's mask is all ones), in interleaved
rounds of one process so that machine load hits both alike; each env's rate is its best
round. The ratio AutoTTS-v0 / CartPole-v1 is the figure (the project aims at >= 0.5);
the median of the per-round ratios is printed next to it.

Load: the eight release files of ``../shared/replay/autotts-release`` imported from JSON,
and the same store read back from Parquet after saving it to a temporary folder; each
load runs in a fresh process, which reports the wall time and the growth of its resident
memory (``VmRSS`` from ``/proc/self/status``, after importing the libraries) and its peak
(``VmHWM``). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import autotts_gym  # noqa: F401  (registers AutoTTS-v0)

RELEASE = Path(__file__).resolve().parents[1].parent / "shared" / "replay" / "autotts-release"


def masked_random_steps(env: gym.Env, steps: int, rng: np.random.Generator, masked: bool) -> float:
    """Seconds to take ``steps`` steps with a uniform random admissible action,
    resetting at episode ends (resets included in the time)."""
    _, info = env.reset(seed=int(rng.integers(2**31)))
    mask = info["action_mask"] if masked else np.ones(env.action_space.n, bool)
    flatnonzero, random = np.flatnonzero, rng.random
    start = time.perf_counter()
    for _ in range(steps):
        valid = flatnonzero(mask)
        _, _, terminated, truncated, info = env.step(valid[int(random() * len(valid))])
        if terminated or truncated:
            _, info = env.reset()
        if masked:
            mask = info["action_mask"]
    return time.perf_counter() - start


def compare_speed(store: str | None, steps: int, rounds: int, seed: int) -> dict[str, float]:
    """Interleaved rounds of CartPole-v1 and AutoTTS-v0. Each env's rate is its best
    round (as ``timeit`` reports the best of repeats: the round least disturbed by other
    processes); the ratio is that of the best rates, with the median per-round ratio."""
    rng = np.random.default_rng(seed)
    cartpole = gym.make("CartPole-v1")
    autotts = gym.make("AutoTTS-v0", store=store)
    per_round = max(1, steps // rounds)
    masked_random_steps(cartpole, 1000, rng, masked=False)  # warm-up
    masked_random_steps(autotts, 1000, rng, masked=True)
    cart, auto = [], []
    for _ in range(rounds):
        cart.append(per_round / masked_random_steps(cartpole, per_round, rng, masked=False))
        auto.append(per_round / masked_random_steps(autotts, per_round, rng, masked=True))
    ratios = sorted(a / c for a, c in zip(auto, cart))
    return {
        "cartpole": max(cart),
        "autotts": max(auto),
        "ratio": max(auto) / max(cart),
        "median": ratios[len(ratios) // 2],
    }


def autotts_breakdown(store: str | None, episodes: int, seed: int) -> dict[str, float]:
    """Where AutoTTS-v0's time goes under the random masked policy: steps per episode,
    microseconds per reset (and of it, computing the branch order) and per step."""
    from autotts_gym.evaluation.orders import branch_order

    env = gym.make("AutoTTS-v0", store=store)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    steps, reset_s, step_s = 0, 0.0, 0.0
    clock = time.perf_counter
    for _ in range(episodes):
        start = clock()
        _, info = env.reset()
        reset_s += clock() - start
        terminated = False
        while not terminated:
            valid = np.flatnonzero(info["action_mask"])
            action = valid[int(rng.random() * len(valid))]
            start = clock()
            _, _, terminated, _, info = env.step(action)
            step_s += clock() - start
            steps += 1
    u = env.unwrapped
    pool = u.split.num_branches(0)
    seeds = rng.integers(2**31, size=episodes).tolist()
    start = clock()
    for s in seeds:
        branch_order(pool, s, 0, u.shuffle, u.max_branches)
    order_s = clock() - start
    return {
        "steps_per_episode": steps / episodes,
        "reset_us": 1e6 * reset_s / episodes,
        "order_us": 1e6 * order_s / episodes,
        "step_us": 1e6 * step_s / steps,
    }


_MEASURE = """
import json, sys, time
def rss(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
import numpy, pyarrow, pyarrow.parquet, autotts_gym.data.release, autotts_gym.data.store
before = rss("VmRSS:")
start = time.perf_counter()
if sys.argv[1] == "json":
    store = autotts_gym.data.release.import_release([sys.argv[2]])
else:
    store = autotts_gym.data.store.Store.load(sys.argv[2])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rss_mb": rss("VmRSS:") - before, "peak_mb": rss("VmHWM:"),
                  "splits": len(store), "branches": sum(int(s.branch_offsets[-1]) for s in store)}))
"""


def measure_load(kind: str, path: Path) -> dict[str, float]:
    """Load a store in a fresh process; its time, RSS growth and peak RSS."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, kind, str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200_000, help="steps per env, over all rounds")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", default=None, help="store for AutoTTS-v0 (default: the embedded one)")
    args = parser.parse_args()

    stores = [args.store]
    if args.store is None and RELEASE.is_dir():
        stores.append(str(RELEASE / "Qwen3-8B" / "aime24.json"))
    print(f"{'store':40s} {'CartPole-v1 steps/s':>20s} {'AutoTTS-v0 steps/s':>19s} {'ratio':>6s} {'median':>7s}")
    for store in stores:
        speed = compare_speed(store, args.steps, args.rounds, args.seed)
        name = (
            "embedded default"
            if store is None
            else str(Path(store).relative_to(RELEASE.parent))
            if RELEASE.parent in Path(store).parents
            else store
        )
        print(
            f"{name:40s} {speed['cartpole']:20,.0f} {speed['autotts']:19,.0f} {speed['ratio']:6.2f} {speed['median']:7.2f}"
        )

    parts = autotts_breakdown(args.store, 3000, args.seed)
    print(
        f"AutoTTS-v0 ({'embedded default' if args.store is None else args.store}), random masked policy: "
        f"{parts['steps_per_episode']:.1f} steps/episode; reset {parts['reset_us']:.1f} us "
        f"(of which the branch order {parts['order_us']:.1f} us); step {parts['step_us']:.1f} us"
    )

    if not RELEASE.is_dir():
        print(f"\n{RELEASE} is absent: load time and memory of the shared files skipped")
        return 0
    print(f"\nloading the eight shared files ({RELEASE}); each in a fresh process")
    print(f"{'source':28s} {'seconds':>8s} {'RSS growth MB':>14s} {'peak RSS MB':>12s} {'branches':>9s}")
    json_load = measure_load("json", RELEASE)
    print(
        f"{'release JSON import':28s} {json_load['seconds']:8.2f} {json_load['rss_mb']:14.1f} {json_load['peak_mb']:12.1f} {json_load['branches']:9d}"
    )
    from autotts_gym.data.release import import_release

    with tempfile.TemporaryDirectory() as tmp:
        folder = import_release([RELEASE]).save(Path(tmp) / "store")
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20
        parquet = measure_load("parquet", folder)
    print(
        f"{'Parquet store':28s} {parquet['seconds']:8.2f} {parquet['rss_mb']:14.1f} {parquet['peak_mb']:12.1f} {parquet['branches']:9d}"
    )
    print(f"Parquet store on disk: {size:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
