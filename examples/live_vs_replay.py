"""Run a controller live on a model, then replay what it generated, and print both side by side.

    python examples/live_vs_replay.py --model Qwen/Qwen3-0.6B --questions examples/questions/aime25.jsonl \
        --question-field problem --answer-field answer --method cmc@0.5 --limit 5 --out runs/live/cmc

Needs a GPU with vLLM (``pip install -e ".[collect]"``), or ``--endpoint URL`` for running
vLLM servers. The live run writes ``OUT/records.csv`` and ``OUT/store``; the replay runs the
same controller on that store with the same seeds and budget. Every row should say
``same``: replay decides exactly as the model did. The "sampled" column is what the model
generated for the episode; the "tokens" column is what the MDP charged (they differ only
where an episode reused branches another seed had already decoded).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.registry import make_controller, parse_method_spec  # noqa: E402
from autotts_gym.evaluation.evaluate import evaluate  # noqa: E402
from collection.collect import check_model  # noqa: E402
from collection.config import CollectConfig  # noqa: E402
from collection.live.run import live_run, summary_lines  # noqa: E402
from collection.live.runner import LiveOptions  # noqa: E402

FIELDS = ("answer_text", "tokens", "sequential_tokens", "branches_opened", "probes", "stop_reason")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--questions", required=True)
    parser.add_argument("--question-field", default="problem")
    parser.add_argument("--answer-field", default="answer")
    parser.add_argument("--method", default="cmc@0.5")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--limit", type=int, default=5)
    parser.add_argument("--pool", type=int, default=64, help="branches per question (the replay pool)")
    parser.add_argument("--budget-tokens", type=float)
    parser.add_argument("--endpoint", action="append", default=[])
    parser.add_argument("--out", default="runs/live/example")
    args = parser.parse_args()

    config = CollectConfig(model=args.model, questions=args.questions, out=args.out, limit=args.limit,
                           question_field=args.question_field, answer_field=args.answer_field,
                           trajectories=args.pool, endpoints=args.endpoint)  # fmt: skip
    check_model(config.validate())
    method, beta = parse_method_spec(args.method)
    controller = make_controller(method, beta=beta)
    seeds = list(range(args.seeds))
    summary = live_run(config, controller, args.method, seeds, LiveOptions(pool_size=args.pool,
                       budget_tokens=args.budget_tokens), args.out)  # fmt: skip
    print("\n".join(summary_lines(summary)))

    [replay] = evaluate(controller, Path(args.out) / "store", seeds=seeds, budget_tokens=args.budget_tokens, workers=1)
    replayed = {(r["question"], r["seed"]): r for r in replay.rows()}
    with open(Path(args.out) / "records.csv", newline="") as fh:
        live = [r for r in csv.DictReader(fh) if not r["error"]]
    print(f"\n{'q':>3} {'seed':>4}  {'live answer':>12} {'replay':>12}  {'tokens':>8} {'sampled':>8}  "
          f"{'probes':>6}  stop reason      agreement")  # fmt: skip
    same = 0
    for row in live:
        rep = replayed[(int(row["question"]), int(row["seed"]))]
        agree = all(str(row[f]) == str(rep[f]) for f in FIELDS)
        same += agree
        print(f"{row['question']:>3} {row['seed']:>4}  {row['answer_text'][:12]:>12} {rep['answer_text'][:12]:>12}  "
              f"{row['tokens']:>8} {row['sampled_tokens']:>8}  {row['probes']:>6}  {row['stop_reason']:<16} "
              f"{'same' if agree else 'DIFFERENT'}")  # fmt: skip
    print(f"\n{same} of {len(live)} episodes replay exactly as they ran live")


if __name__ == "__main__":
    main()
