"""Fit round 18's answer scorer on AIME24, and check it model by model.

    OMP_NUM_THREADS=1 python discovery/fit_pick_weights.py              # the fit (~10 s)
    OMP_NUM_THREADS=1 python discovery/fit_pick_weights.py --evaluate   # + the race check (~2 min)

Round 18 (``runs/beat-cmc/round-018/candidate.py``) picks the answer of a race's finished
pool by a linear score of :func:`answer_features` (the candidate's own function, imported
here so the features cannot drift). This script builds *static pools* like the race's
from the search split: a random opening of M branches whose k shortest have finished,
for (M, k) in ``DESIGNS``, ``--reps`` draws per question. It fits a conditional logit
(softmax over each pool's answers, L2 penalty ``--l2``) with scipy, and prints:

* the weights fitted on all four models: round 18's ``WEIGHTS``, rounded;
* per model, the pool accuracy of the majority and of the scorer fitted *without* that
  model (leave one model out), on that model's static pools;
* with ``--evaluate``: the race itself, paired against DSR-L over betas 0 to 1, with
  each model's split played by the scorer fitted without that model.

Only the search split is read.
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize

from agents.dsr_lock import LockedDepthSyncRace
from agents.registry import load_module_from_file
from autotts_gym.data.sources import load_store
from autotts_gym.data.store import QuestionData
from autotts_gym.evaluation.evaluate import evaluate_many, make_options
from autotts_gym.reporting.paired import QuestionTable, matched_difference

HERE = Path(__file__).resolve().parent
RELEASE = HERE.parents[1] / "shared" / "replay" / "autotts-release"
ROUND_18 = load_module_from_file(str(HERE / "runs" / "beat-cmc" / "round-018" / "candidate.py"))
# (opened M, finished k): the k shortest of M randomly opened branches.
DESIGNS = ((16, 8), (32, 16), (64, 32), (12, 4), (24, 8))
BETAS = (0.0, 0.25, 0.5, 0.75, 1.0)

Pool = tuple[np.ndarray, list[int], int]  # features, answers, gold id


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", default=str(RELEASE), help="store (default: the release)")
    p.add_argument("--benchmark", default="aime24", help="the search benchmark (default aime24)")
    p.add_argument("--reps", type=int, default=10, help="static pools per question and design (default 10)")
    p.add_argument("--l2", type=float, default=1.0, help="L2 penalty (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the static pools (default 0)")
    p.add_argument("--evaluate", action="store_true", help="also play the race, paired against DSR-L")
    p.add_argument("--seeds", type=int, default=100, help="episode seeds for --evaluate (default 100)")
    return p.parse_args()


def question_pools(q: QuestionData, rng: np.random.Generator, reps: int) -> list[Pool]:
    """Static pools of one question: ``reps`` draws per design."""
    branches = [
        (q.final_answer[b], q.tokens_at[b][q.num_probes[b] + 1], list(q.answer_at[b][1 : q.num_probes[b] + 1]))
        for b in range(q.num_branches)
    ]
    lengths = np.array([b[1] for b in branches])
    pools = []
    for opened, finished in DESIGNS:
        for _ in range(reps):
            idx = rng.permutation(len(branches))[:opened]
            idx = idx[np.argsort(lengths[idx], kind="stable")][:finished]
            features = ROUND_18.answer_features([branches[i] for i in idx], q.no_answer_id)
            if features:
                pools.append((np.array(list(features.values())), list(features), q.gold_id))
    return pools


def fit(pools: list[Pool], l2: float) -> np.ndarray:
    """Weights of a conditional logit over each pool's answers (pools without the gold
    answer carry no signal and are skipped)."""
    usable = [(x, answers.index(gold)) for x, answers, gold in pools if gold in answers]
    dim = usable[0][0].shape[1]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = 0.0, np.zeros(dim)
        for x, j in usable:
            s = x @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            total -= math.log(p[j] + 1e-12)
            grad -= x[j] - p @ x
        n = len(pools)
        return total / n + l2 * w @ w / n, grad / n + 2 * l2 * w / n

    return minimize(loss, np.zeros(dim), jac=True, method="L-BFGS-B").x


def pool_accuracy(pools: list[Pool], weights: np.ndarray | None) -> float:
    """Accuracy (%) of picking the best-scored answer (``None``: the largest share)."""
    hits = [answers[int(np.argmax(x[:, 0] if weights is None else x @ weights))] == gold for x, answers, gold in pools]
    return 100.0 * float(np.mean(hits))


def evaluate_race(args: argparse.Namespace, splits: list[Any], weights: dict[str, np.ndarray]) -> None:
    """Round 18's race with leave-one-model-out weights, paired against DSR-L."""
    race = ROUND_18.LearnedPickRace
    cells, keys = [], []
    for beta in BETAS:
        for split in splits:
            lomo = type("LeaveOneModelOut", (race,), {"WEIGHTS": tuple(weights[split.info.model])})
            cells += [(LockedDepthSyncRace.from_beta(beta), split), (lomo.from_beta(beta), split)]
            keys += [("DSR-L", beta), ("round 18", beta)]
    evaluations = evaluate_many(cells, make_options(args.seeds), workers=None)
    groups: dict[tuple[str, float], list[Any]] = defaultdict(list)
    for ev, key in zip(evaluations, keys):
        groups[key].append(ev)
    tables = {key: QuestionTable.from_evaluations(evs) for key, evs in groups.items()}
    curve = [tables[("DSR-L", b)] for b in BETAS]
    print(f"\nthe race, each model played with the weights fitted without it ({args.seeds} seeds), paired against DSR-L:")
    for beta in BETAS:
        t, ref = tables[("round 18", beta)], tables[("DSR-L", beta)]
        d = matched_difference(t, curve)
        print(f"  beta {beta:g}: {t.mean_accuracy:.2f}% at {t.mean_tokens / 1000:.1f}k (DSR-L {ref.mean_accuracy:.2f}%): {d.format()}, P(<=0) {d.p_at_most_zero:.3f}")


def main() -> None:
    args = parse_args()
    splits = load_store(args.store).select([f"*/{args.benchmark}"])
    rng = np.random.default_rng(args.seed)
    pools: dict[str, list[Pool]] = defaultdict(list)
    for split in splits:
        for q in range(split.num_questions):
            pools[split.info.model] += question_pools(split.question(q), rng, args.reps)
    models = list(pools)
    everything = [p for m in models for p in pools[m]]
    weights = fit(everything, args.l2)
    print(f"weights fitted on all of {args.benchmark} ({len(everything)} pools): {tuple(round(float(w), 2) for w in weights)}")
    print(f"round 18's WEIGHTS:                        {ROUND_18.LearnedPickRace.WEIGHTS}")
    held_out = {}
    print("\nstatic pools, each model scored with the weights fitted without it:")
    for m in models:
        held_out[m] = fit([p for other in models if other != m for p in pools[other]], args.l2)
        print(f"  {m}: majority {pool_accuracy(pools[m], None):.2f}%, scorer {pool_accuracy(pools[m], held_out[m]):.2f}%")
    if args.evaluate:
        evaluate_race(args, splits, held_out)


if __name__ == "__main__":
    main()
