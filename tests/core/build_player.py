"""Plays scripted episodes and whole controllers and prints everything they exposed: run
by tests/core/test_builds.py once under each build of the engine (compiled, and with
``AUTOTTS_PURE_PYTHON=1`` plain Python), whose outputs must be equal. The first line
names the build that ran.

    python tests/core/build_player.py scripts --examples 300 [--budget 12]
    python tests/core/build_player.py controllers --seeds 3 [--store PATH]
"""

from __future__ import annotations

import argparse
import random

from autotts_gym.cli.methods import TABLE1_ROWS, parse_method_spec
from autotts_gym.data.sources import load_store
from autotts_gym.data.store import Split, SplitInfo
from autotts_gym.data.synthetic import default_store
from autotts_gym.engine import Episode, InvalidAction, episode
from autotts_gym.evaluation.evaluate import make_options
from autotts_gym.utils.build import is_compiled

ALPHABET = ("1", "2", "3", "ERR")
# One call of a composite or primitive.
CALLS = ("open_and_probe_many", "continue_and_probe_many", "bursts", "read_whole_many", "prune", "open_and_probe")


def episode_state(e: Episode) -> dict:
    """Everything an episode exposes, for comparison."""
    return {
        "opened": e.num_opened,
        "depths": e.depths,
        "status": [e.status(j) for j in range(e.num_opened)],
        "probed": [e.is_probed(j) for j in range(e.num_opened)],
        "latest": e.latest_answers,
        "active": e.active_branches,
        "finals": e.finished_answers,
        "finished": e.finished_branches,
        "vote": e.finished_vote(),
        "by_depth": (e.active_by_depth(), e.active_by_depth(deepest_first=False), e.active_by_depth(False)),
        "counts": (e.num_opened, e.num_active, e.num_finished),
        "probes": e.revealed_probes,
        "tokens": e.tokens,
        "sequential": e.sequential_tokens,
        "branch_tokens": [e.branch_tokens(j) for j in range(e.num_opened)],
        "cost": e.cost,
        "remaining": e.remaining_budget,
        "actions": e.num_actions,
    }


def random_split(rng: random.Random) -> Split:
    """A one-question pool whose branches may have no probes at all (they finish on BRANCH)."""
    delta = rng.choice([1, 7, 100])
    pool = []
    for _ in range(rng.randint(1, 8)):
        probes = [rng.choice(ALPHABET) for _ in range(rng.randint(0, 6))]
        pool.append((probes, rng.randint(0, 8 * delta), rng.choice(ALPHABET)))
    info = SplitInfo(model="random", benchmark="b", interval_tokens=delta)
    return Split.from_lists(info, ["q"], ["1"], [pool])


def play(e: Episode, script: list[tuple[str, int, list[int]]]) -> list:
    """Run a script of calls; the returned values and error types, and the state after each."""
    out = []
    for name, n, picks in script:
        try:
            if name == "open_and_probe_many":
                out.append(e.open_and_probe_many(n))
            elif name == "read_whole_many":
                out.append(e.read_whole_many(n))
            elif name == "open_and_probe":
                out.append(e.open_and_probe())
            elif name == "prune":
                active = e.active_branches
                if active:
                    e.prune(active[picks[0] % len(active)] if picks else active[0])
                out.append(None)
            else:
                # Branches named by picks: active ones, and now and then a finished,
                # pruned or unopened one, so the error paths run too.
                branches = [p % (e.num_opened + 1) for p in picks]
                bursts = [1 + p % 5 for p in picks] if name == "bursts" else None
                out.append(e.continue_and_probe_many(branches, bursts))
        except (InvalidAction, ValueError) as err:
            out.append(f"{type(err).__name__}: {err}")
        out.append(episode_state(e))
    out.append(e.answer())
    return out


def scripts(examples: int, budget: float | None) -> None:
    for seed in range(examples):
        rng = random.Random(seed)
        q = random_split(rng).question(0)
        order = tuple(range(q.num_branches))[:: rng.choice([1, -1])]
        script = [
            (rng.choice(CALLS), rng.randint(0, 4), [rng.randint(0, 9) for _ in range(rng.randint(0, 6))])
            for _ in range(rng.randint(0, 20))
        ]
        kappa = rng.choice([0, 0, 0.5])
        e = Episode(q, order, budget_intervals=budget, kappa_probe=kappa, trace=rng.random() < 0.3)
        print(repr((seed, play(e, script), e.trace)))


def controllers(seeds: int, store: str | None) -> None:
    splits = list(load_store(store)) if store else [next(iter(default_store()))]
    options = make_options(seeds)
    for split in splits:
        for row in (*TABLE1_ROWS, "cmc@0", "dsr@0.5", "dsr-lock@0.5", "parallel-probe@0.5"):
            controller = parse_method_spec(row).build()
            for q in range(min(split.num_questions, 12)):
                for seed in options.seeds:
                    e = options.episode(split, q, seed)
                    print(repr((row, q, seed, controller(e), episode_state(e))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["scripts", "controllers"])
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--budget", default="None")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--store", default=None)
    args = parser.parse_args()
    print("compiled" if is_compiled(episode) else "pure")
    if args.what == "scripts":
        scripts(args.examples, None if args.budget == "None" else float(args.budget))
    else:
        controllers(args.seeds, args.store)


if __name__ == "__main__":
    main()
