"""Summarise a discovery run of the beat-CMC search: one row per round, CMC at matched cost.

    python discovery/summarize.py discovery/runs/beat-cmc      # writes summary.md/.json into the run

Reads ``RUN_DIR/config.json`` and every ``RUN_DIR/round-*/round.json`` written by
``autotts discover``, evaluates CMC's beta curve under the run's own protocol (its
search splits, seeds, shuffle; betas 0, 0.1, ..., 1), and writes ``summary.json`` and
``summary.md`` to ``--out`` (default: the run directory): per round the candidate, what it changed (the first
paragraph of its docstring), its sweep, and its accuracy minus CMC's at the same mean
tokens (interpolated on CMC's curve; points cheaper than CMC's cheapest are left out).
Only search splits are read: the run is the search.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from agents.cmc import ConfidenceMomentum
from autotts_gym.data.sources import load_store
from autotts_gym.evaluation.evaluate import evaluate_many, make_options

CMC_BETAS = [i / 10 for i in range(11)]
RUN = Path(__file__).resolve().parent / "runs" / "beat-cmc"
# The replay command: the committed run's replies, proposed again in order.
REPLAY = (
    f"OMP_NUM_THREADS=1 autotts discover --rounds {len(list(RUN.glob('round-*/response.md')))} "
    "--proposer scripted:discovery/runs/beat-cmc "
    "--search '../shared/replay/autotts-release:*/aime24' --out runs/beat-cmc-replay --workers 2"
)


def cmc_curve(config: dict[str, Any]) -> list[tuple[float, float, float]]:
    """``(beta, tokens, accuracy)`` of CMC on the run's search splits, model averages."""
    splits = load_store(config["search_store"]).select(config["search"])
    options = make_options(config["seeds"], config["shuffle"])
    cells = [(ConfidenceMomentum.from_beta(b), s) for b in CMC_BETAS for s in splits]
    evaluations = evaluate_many(cells, options)
    n = len(splits)
    curve = []
    for i, beta in enumerate(CMC_BETAS):
        group = evaluations[i * n : (i + 1) * n]
        curve.append(
            (
                beta,
                float(np.mean([e.summary.tokens for e in group])),
                float(np.mean([e.summary.accuracy for e in group])),
            )
        )
    return curve


def margin(curve: list[tuple[float, float, float]], tokens: float, accuracy: float) -> float | None:
    """Accuracy minus CMC's at ``tokens`` (None outside CMC's token range)."""
    xs = [t for _, t, _ in curve]
    if tokens < xs[0] or tokens > xs[-1]:
        return None
    return accuracy - float(np.interp(tokens, xs, [a for _, _, a in curve]))


def summarize_round(path: Path, curve: list[tuple[float, float, float]]) -> dict[str, Any]:
    """One round's record: candidate, change, sweep, margins against CMC."""
    data = json.loads(path.read_text())
    candidate = data.get("candidate") or {}
    doc = (candidate.get("docstring") or "").split("\n\n")
    row: dict[str, Any] = {
        "round": data["round"],
        "file": (data.get("usage") or {}).get("source"),
        "name": candidate.get("name"),
        "status": data["status"],
        "change": " ".join(doc[0].split()) if doc else "",
        "monotone": not data.get("monotonicity"),
        "points": [],
    }
    for p in data.get("points") or []:
        m = margin(curve, p["tokens"], p["accuracy"])
        row["points"].append({"beta": p["beta"], "accuracy": p["accuracy"], "tokens": p["tokens"], "vs_cmc": m})
    margins = [p["vs_cmc"] for p in row["points"] if p["vs_cmc"] is not None]
    row["mean_vs_cmc"] = float(np.mean(margins)) if margins else None
    row["min_vs_cmc"] = float(np.min(margins)) if margins else None
    return row


def markdown(config: dict[str, Any], rows: list[dict[str, Any]], curve: list[tuple[float, float, float]]) -> str:
    """The summary as Markdown."""

    def fmt(m: float | None) -> str:
        return "n/a" if m is None else f"{m:+.2f}"

    out = [
        "# Discovery run: beating CMC (search split only)",
        "",
        f"Search: {', '.join(config['search'])} of `{config['search_store']}`, {config['seeds']} seeds per question, "
        f"shuffle `{config['shuffle']}`, betas {', '.join(f'{b:g}' for b in config['betas'])}. Proposer "
        f"`{config['proposer']}` (one hand-written candidate per round, in the order they were tried). "
        "No held-out data was evaluated in this run.",
        "",
        "Replay it (the committed run's replies proposed again; its rounds evaluated isolated, about 20 minutes on "
        "2 cores), then rebuild this summary from the replay:",
        "",
        "```",
        REPLAY,
        "python discovery/summarize.py runs/beat-cmc-replay",
        "```",
        "",
        "`vs CMC`: the candidate's accuracy minus CMC's at the same mean tokens (CMC's curve at betas 0, 0.1, ..., 1 "
        "under the same protocol, interpolated; n/a below CMC's cheapest point). Model averages.",
        "",
        "CMC under this protocol: " + ", ".join(f"beta {b:g}: {a:.2f}% at {t / 1000:.0f}k" for b, t, a in curve) + ".",
        "",
        "| round | candidate | mean vs CMC | worst vs CMC | monotone | sweep (beta: acc% / tokens) | what it changed |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sweep = "; ".join(f"{p['beta']:g}: {p['accuracy']:.1f}/{p['tokens'] / 1000:.0f}k" for p in r["points"])
        out.append(
            f"| {r['round']} | `{r['name']}` | {fmt(r['mean_vs_cmc'])} | {fmt(r['min_vs_cmc'])} | "
            f"{'yes' if r['monotone'] else 'no'} | {sweep} | {r['change']} |"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="the run directory of autotts discover")
    parser.add_argument("--out", help="where summary.md and summary.json go (default: the run directory)")
    args = parser.parse_args()
    run = Path(args.run)
    config = json.loads((run / "config.json").read_text())
    if config.get("heldout"):
        raise SystemExit(f"{run}: this run evaluated held-out splits; summarise a search-only run")
    curve = cmc_curve(config)
    rows = [summarize_round(p, curve) for p in sorted(run.glob("round-*/round.json"))]
    out = Path(args.out or run)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "config": config,
        "replay": REPLAY,
        "cmc": [{"beta": b, "tokens": t, "accuracy": a} for b, t, a in curve],
        "rounds": rows,
    }
    (out / "summary.json").write_text(json.dumps(record, indent=1) + "\n")
    (out / "summary.md").write_text(markdown(config, rows, curve))
    print(f"wrote {out / 'summary.md'} and {out / 'summary.json'} ({len(rows)} rounds)")


if __name__ == "__main__":
    main()
