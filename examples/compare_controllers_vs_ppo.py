"""Hand-made controllers against PPO on AIME25 (held out): one Pareto plot per model.

    # train a cost_weight sweep of PPO policies on AIME24 (the search split), then compare
    OMP_NUM_THREADS=1 python examples/compare_controllers_vs_ppo.py --train \\
        --cost-weights 3e-6,1e-6,3e-7,1e-7 --timesteps 200000 --seeds 100 --out runs/compare
    # or compare policies trained before (autotts train-ppo ... --out DIR)
    OMP_NUM_THREADS=1 python examples/compare_controllers_vs_ppo.py --models runs/compare/ppo_w*/model.zip --out runs/compare

SC, ASC, ESC, Parallel-Probe and CMC are swept over beta (their schedules); each PPO
policy is one point, and the policies of a cost_weight sweep together trace PPO's curve.
Everything runs through one evaluator under the release protocol (release shuffle,
seeds 0..N-1, every question of each model's AIME25 split), so all points are
comparable. Training only ever sees AIME24 (its evaluations during training too).

Writes ``pareto_aime25.png`` (one panel per model), ``results.json``/``results.csv``,
and prints the table and, for each PPO point, the best controller accuracy at no more
tokens (the frontier it has to beat).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from agents.ppo.config import TrainConfig
from agents.registry import make_controller
from autotts_gym.cli.methods import COMPARE_BETAS, COMPARE_METHODS, sweep_specs
from autotts_gym.data.sources import load_store
from autotts_gym.evaluation.evaluate import evaluate_many, make_options
from autotts_gym.reporting.plots import save_pareto
from autotts_gym.reporting.tables import fmt_tokens, method_label, render_table, write_summaries_csv

RELEASE = Path(__file__).resolve().parents[1].parent / "shared" / "replay" / "autotts-release"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", default=str(RELEASE), help="store with search and held-out splits (default: the release)")
    p.add_argument(
        "--train-splits", default="*/aime24", help="PPO training splits (default */aime24, the search split)"
    )
    p.add_argument("--benchmark", default="aime25", help="held-out benchmark to compare on (default aime25)")
    p.add_argument("--models", nargs="*", default=[], help="trained PPO model.zip files to compare")
    p.add_argument("--train", action="store_true", help="train one PPO policy per --cost-weights value first")
    p.add_argument("--cost-weights", default="3e-6,1e-6,3e-7,1e-7", help="cost weights of the PPO sweep")
    p.add_argument("--timesteps", type=int, default=TrainConfig.total_timesteps, help="timesteps per PPO policy")
    p.add_argument("--algo", choices=("maskable", "ppo"), default="maskable", help="PPO variant to train")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--methods", default=",".join(COMPARE_METHODS), help="controller families to sweep")
    p.add_argument("--betas", default=",".join(f"{b:g}" for b in COMPARE_BETAS), help="betas of every family")
    p.add_argument("--seeds", type=int, default=100, help="episode seeds 0..N-1 per question (default 100)")
    p.add_argument("--workers", type=int, default=None, help="evaluation processes (default: all cores)")
    p.add_argument("--out", default="runs/compare", help="output folder")
    return p.parse_args()


def train_sweep(args: argparse.Namespace) -> list[Path]:
    """Train one policy per cost weight on the search split; their model paths."""
    from agents.ppo.train import train

    paths = []
    for weight in (float(w) for w in args.cost_weights.split(",")):
        config = TrainConfig(
            store=args.store,
            splits=[args.train_splits],
            eval_splits=[args.train_splits],
            algo=args.algo,
            total_timesteps=args.timesteps,
            cost_weight=weight,
            seed=args.seed,
            tensorboard=str(Path(args.out) / "tensorboard"),
            out=str(Path(args.out) / f"ppo_w{weight:g}"),
        )
        result = train(config)
        print(
            f"trained {result.model}: {result.timesteps} steps in {result.seconds:.0f} s ({result.steps_per_second:.0f}/s)"
        )
        paths.append(result.model)
    return paths


# Curve names: MaskablePPO policies and plain-PPO ones are separate curves.
PPO_NAMES = {"maskable": "PPO", "ppo": "PPO-plain"}


def ppo_controller(model: Path):
    """The policy as a controller named after its algorithm (its curve in the plot)."""
    controller = make_controller(f"ppo:{model}")
    controller.name = PPO_NAMES[controller.params()["algo"]]
    return controller


def is_ppo(summary: dict) -> bool:
    return summary["method"] in PPO_NAMES.values()


def label(summary: dict) -> str:
    """Row label: the controller's (``SC@8``, ``CMC beta=0.5``) or ``PPO w=1e-06``."""
    if is_ppo(summary):
        return f"{summary['method']} w={summary['params']['cost_weight']:g}"
    return method_label(summary)


def frontier_gaps(summaries: list[dict]) -> list[list[str]]:
    """For each PPO point: the best controller accuracy with no more tokens, and the gap."""
    rows = []
    for s in summaries:
        if not is_ppo(s):
            continue
        rivals = [r for r in summaries if r["model"] == s["model"] and not is_ppo(r) and r["tokens"] <= s["tokens"]]
        best = max(rivals, key=lambda r: r["accuracy"], default=None)
        rows.append(
            [
                s["model"],
                label(s),
                f"{s['accuracy']:.1f}",
                fmt_tokens(s["tokens"]),
                "-" if best is None else f"{label(best)}: {best['accuracy']:.1f} at {fmt_tokens(best['tokens'])}",
                "-" if best is None else f"{s['accuracy'] - best['accuracy']:+.1f}",
            ]
        )
    return rows


def main() -> None:
    args = parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = [Path(m) for m in args.models] + (train_sweep(args) if args.train else [])
    if not models:
        raise SystemExit("no PPO policy: give --models model.zip ... or --train")

    store = load_store(args.store)
    splits = store.select([f"*/{args.benchmark}"])
    controllers = [
        spec.build() for spec in sweep_specs(args.methods.split(","), [float(b) for b in args.betas.split(",")])
    ]
    controllers += [ppo_controller(m) for m in models]
    started = time.perf_counter()
    evaluations = evaluate_many(
        [(c, s) for c in controllers for s in splits], make_options(args.seeds), workers=args.workers, progress=True
    )
    seconds = time.perf_counter() - started
    summaries = [ev.summary.as_dict() for ev in evaluations]

    header = ["model", "method", "acc %", "acc 95% CI", "tokens", "branches"]
    body: list[list[str] | None] = []
    for model in dict.fromkeys(s["model"] for s in summaries):
        if body:
            body.append(None)  # a rule between models
        for s in sorted(
            (s for s in summaries if s["model"] == model),
            key=lambda s: (is_ppo(s), s["method"], s["tokens"]),
        ):
            lo, hi = s["accuracy_ci"]
            body.append(
                [
                    model,
                    label(s),
                    f"{s['accuracy']:.1f}",
                    f"{lo:.1f}-{hi:.1f}",
                    fmt_tokens(s["tokens"]),
                    f"{s['branches_opened']:.1f}",
                ]
            )
    print(render_table(header, body))
    print()
    print("PPO against the best controller point with no more tokens:")
    print(
        render_table(
            ["model", "PPO", "acc %", "tokens", "best controller at <= tokens", "gap"], frontier_gaps(summaries)
        )
    )
    episodes = sum(s["episodes"] for s in summaries)
    print(f"{len(evaluations)} cells, {episodes} episodes in {seconds:.0f} s")

    (out / "results.json").write_text(json.dumps(summaries, indent=2, default=str) + "\n")
    written = [out / "results.json", write_summaries_csv(summaries, out / "results.csv")]
    written.append(save_pareto(summaries, out / f"pareto_{args.benchmark}.png", benchmark=args.benchmark))
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
