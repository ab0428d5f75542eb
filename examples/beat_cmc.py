"""A discovered family (DSR or DSR-L) against CMC and the hand-made methods, plus its ablation.

    OMP_NUM_THREADS=1 python examples/beat_cmc.py --out runs/beat_cmc                        # DSR
    OMP_NUM_THREADS=1 python examples/beat_cmc.py --family dsr-lock --out runs/beat_cmc_lock # DSR-L

Evaluates, under the release protocol (release shuffle, seeds 0..N-1, every question,
the four Qwen3 models), on AIME24 (the search split) and AIME25 (held out):

* the family's beta curve (``--betas``; below, "DSR" stands for the family), CMC's beta curve (``--cmc-betas``) and the hand-made
  families SC, ASC, ESC and Parallel-Probe swept over ``--handmade-betas`` (their paper
  settings are the beta=1 points: SC@64, ASC/ESC with 64 samples, Parallel-Probe with 64
  chains);
* the ablation: DSR's curve with each mechanism switched off in turn (``--ablation-betas``).

Prints, per benchmark, every point averaged over the four models, DSR's margin over
CMC's and over the best hand-made curve at matched tokens, the issue's three targets
(measured on the held-out benchmark), DSR's points with 95% bootstrap intervals over
questions (its accuracy, and its margins paired at matched tokens), and the ablation
table. Writes ``summary.json`` (every cell), ``curves.json`` (the model-averaged points),
``paired.json`` (the intervals), ``beat_cmc.png`` (accuracy
against tokens, one panel per benchmark, model averages), ``beat_cmc_splits.png`` (one
panel per model and benchmark) and ``ablation.json`` to ``--out``.

``--no-heldout`` evaluates AIME24 only (what a search may look at).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from agents.registry import METHODS
from autotts_gym.cli.methods import parse_betas
from autotts_gym.data.sources import load_store
from autotts_gym.evaluation.evaluate import (
    Evaluation,
    evaluate_many,
    make_options,
    monotonicity_violations,
    write_summaries_json,
)
from autotts_gym.reporting.paired import QuestionTable, accuracy_interval, matched_difference
from autotts_gym.reporting.plots import log_token_axis, method_color, save_pareto
from autotts_gym.reporting.tables import DISPLAY_NAMES, render_table

RELEASE = Path(__file__).resolve().parents[1].parent / "shared" / "replay" / "autotts-release"
HANDMADE = ("sc", "asc", "esc", "parallel-probe")
DSR_ABLATIONS = {
    "no depth sync": "sync",
    "no unanimity exit": "unanimity",
    "no contest widening": "widen",
    "no defections": "defections",
    "no futility stop": "futility",
    "ERR votes": "abstain",
}
# Each family's ablation: a label and the switch it turns off.
FAMILY_ABLATIONS = {
    "dsr": DSR_ABLATIONS,
    "dsr-lock": {**DSR_ABLATIONS, "no lock": "lock", "no finishing-order weights": "ranked"},
}
# The family under test, set once from --family by use_family().
LABEL, FAMILY_CLS, ABLATIONS = "DSR", METHODS["dsr"], DSR_ABLATIONS
# The targets on the held-out benchmark (AIME25, averages over the four models).
TARGET_CHEAP = (56.7, 208_000)  # accuracy >= SC@64's at <= 20% of its tokens
TARGET_ACCURATE = (59.0, 500_000)


@dataclass(frozen=True)
class Point:
    """One evaluated setting averaged over the models of a benchmark."""

    curve: str
    beta: float | None
    benchmark: str
    accuracy: float
    tokens: float
    per_model: dict[str, float]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", default=str(RELEASE), help="store with AIME24 and AIME25 splits (default: the release)")
    p.add_argument("--search", default="aime24", help="search benchmark (default aime24)")
    p.add_argument("--heldout", default="aime25", help="held-out benchmark (default aime25)")
    p.add_argument("--no-heldout", action="store_true", help="evaluate the search benchmark only")
    p.add_argument("--family", default="dsr", choices=sorted(FAMILY_ABLATIONS), help="the family to evaluate")
    p.add_argument("--betas", default="0,0.125,0.25,0.375,0.5,0.625,0.75,0.875,1", help="the family's betas")
    p.add_argument("--cmc-betas", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1", help="CMC's betas")
    p.add_argument("--handmade-betas", default="0,0.25,0.5,0.75,1", help="betas of SC, ASC, ESC, Parallel-Probe")
    p.add_argument("--ablation-betas", default="0,0.25,0.5,0.75,1", help="betas of each ablated variant")
    p.add_argument("--no-ablation", action="store_true", help="skip the ablation")
    p.add_argument("--seeds", type=int, default=100, help="episode seeds 0..N-1 per question (default 100)")
    p.add_argument("--workers", type=int, default=None, help="evaluation processes (default: all cores)")
    p.add_argument("--out", default="runs/beat_cmc", help="output folder")
    return p.parse_args()


def use_family(name: str) -> None:
    """Make ``name`` (a registry name) the family every function below reports on."""
    global LABEL, FAMILY_CLS, ABLATIONS
    LABEL, FAMILY_CLS, ABLATIONS = DISPLAY_NAMES[name], METHODS[name], FAMILY_ABLATIONS[name]


def build_cells(
    args: argparse.Namespace, splits: Sequence[Any]
) -> tuple[list[tuple[Any, Any]], list[tuple[str, float]]]:
    """Every (controller, split) cell, and per cell its curve name and beta."""
    cells, tags = [], []

    def add(curve: str, cls: type, betas: Sequence[float], **overrides: Any) -> None:
        for beta in betas:
            controller = cls.from_beta(beta, **overrides)
            for split in splits:
                cells.append((controller, split))
                tags.append((curve, beta))

    add(LABEL, FAMILY_CLS, parse_betas(args.betas))
    add("CMC", METHODS["cmc"], parse_betas(args.cmc_betas))
    for name in HANDMADE:
        add(name, METHODS[name], parse_betas(args.handmade_betas))
    if not args.no_ablation:
        for label, switch in ABLATIONS.items():
            add(f"{LABEL} {label}", FAMILY_CLS, parse_betas(args.ablation_betas), **{switch: False})
    return cells, tags


def average(evaluations: Sequence[Evaluation], tags: Sequence[tuple[str, float]]) -> list[Point]:
    """Model-averaged points, one per (curve, beta, benchmark)."""
    groups: dict[tuple[str, float, str], list[Evaluation]] = {}
    for ev, (curve, beta) in zip(evaluations, tags):
        groups.setdefault((curve, beta, ev.summary.benchmark), []).append(ev)
    return [
        Point(
            curve,
            beta,
            bench,
            float(np.mean([e.summary.accuracy for e in evs])),
            float(np.mean([e.summary.tokens for e in evs])),
            {e.summary.model: e.summary.accuracy for e in evs},
        )
        for (curve, beta, bench), evs in groups.items()
    ]


def question_tables(
    evaluations: Sequence[Evaluation], tags: Sequence[tuple[str, float]]
) -> dict[tuple[str, float, str], QuestionTable]:
    """Per-question figures, one table per (curve, beta, benchmark), for paired intervals."""
    groups: dict[tuple[str, float, str], list[Evaluation]] = {}
    for ev, (curve, beta) in zip(evaluations, tags):
        groups.setdefault((curve, beta, ev.summary.benchmark), []).append(ev)
    return {key: QuestionTable.from_evaluations(evs, f"{key[0]} beta={key[1]:g}") for key, evs in groups.items()}


def curve_of(points: Sequence[Point], curve: str, benchmark: str) -> list[Point]:
    """The points of one curve on one benchmark, by tokens."""
    return sorted((p for p in points if p.curve == curve and p.benchmark == benchmark), key=lambda p: p.tokens)


def interpolate(curve: Sequence[Point], tokens: float) -> float:
    """Accuracy of a curve at ``tokens`` (linear between its points; NaN outside them)."""
    xs = [p.tokens for p in curve]
    if not xs or tokens < xs[0] or tokens > xs[-1]:
        return float("nan")
    return float(np.interp(tokens, xs, [p.accuracy for p in curve]))


def frontier(curve: Sequence[Point], budget: float) -> float:
    """Best accuracy of a curve's points within ``budget`` tokens (NaN if none fits)."""
    fits = [p.accuracy for p in curve if p.tokens <= budget]
    return max(fits) if fits else float("nan")


def handmade_envelope(points: Sequence[Point], benchmark: str) -> list[Point]:
    """The upper-left frontier of all hand-made points: the best hand-made method at
    each budget."""
    pts = sorted((p for p in points if p.curve in HANDMADE and p.benchmark == benchmark), key=lambda p: p.tokens)
    out: list[Point] = []
    for p in pts:
        if not out or p.accuracy > out[-1].accuracy:
            out.append(p)
    return out


def curve_table(points: Sequence[Point], benchmark: str) -> str:
    """DSR, CMC and the hand-made points of one benchmark, with DSR's matched-cost margins."""
    cmc = curve_of(points, "CMC", benchmark)
    hand = handmade_envelope(points, benchmark)
    models = list(curve_of(points, LABEL, benchmark)[0].per_model)
    body: list[Sequence[str] | None] = []
    for name in (LABEL, "CMC", *HANDMADE):
        for p in curve_of(points, name, benchmark):
            margins = ["", ""]
            if name == LABEL:
                margins = [
                    f"{p.accuracy - interpolate(cmc, p.tokens):+.2f}",
                    f"{p.accuracy - interpolate(hand, p.tokens):+.2f}",
                ]
            body.append(
                [DISPLAY_NAMES.get(name, name), f"{p.beta:g}", f"{p.accuracy:.2f}", f"{p.tokens / 1000:.1f}k", *margins]
                + [f"{p.per_model[m]:.1f}" for m in models]
            )
        body.append(None)
    header = ["method", "beta", "acc %", "tokens", "vs CMC", "vs hand-made", *[m.replace("Qwen3-", "") for m in models]]
    return render_table(header, body[:-1])


def paired_table(
    points: Sequence[Point], tables: dict[tuple[str, float, str], QuestionTable], benchmark: str
) -> tuple[str, list[dict[str, Any]]]:
    """The family's points with 95% bootstrap intervals over questions: its accuracy, and
    its margins over CMC's curve and over the best hand-made curve at matched tokens,
    paired (both sides recomputed on the same resampled questions)."""

    def curve(pts: Sequence[Point]) -> list[QuestionTable]:
        return [tables[(p.curve, p.beta, benchmark)] for p in pts]

    cmc = curve(curve_of(points, "CMC", benchmark))
    hand = curve(handmade_envelope(points, benchmark))
    body, rows = [], []
    for p in curve_of(points, LABEL, benchmark):
        t = tables[(LABEL, p.beta, benchmark)]
        acc, vs_cmc, vs_hand = accuracy_interval(t), matched_difference(t, cmc), matched_difference(t, hand)
        rows.append({"beta": p.beta, "accuracy": acc.__dict__, "vs_cmc": vs_cmc.__dict__, "vs_handmade": vs_hand.__dict__})
        body.append(
            [
                f"{p.beta:g}",
                f"{p.tokens / 1000:.1f}k",
                f"{acc.estimate:.2f} [{acc.low:.1f}, {acc.high:.1f}]",
                vs_cmc.format(),
                "" if np.isnan(vs_cmc.estimate) else f"{vs_cmc.p_at_most_zero:.3f}",
                vs_hand.format(),
                "" if np.isnan(vs_hand.estimate) else f"{vs_hand.p_at_most_zero:.3f}",
            ]
        )
    header = ["beta", "tokens", "acc % [95% CI]", "vs CMC [95% CI]", "P(<=0)", "vs hand-made [95% CI]", "P(<=0)"]
    return render_table(header, body, text_columns=0), rows


def dominance(points: Sequence[Point], benchmark: str) -> dict[str, Any]:
    """Where DSR's curve stands against CMC's and the best hand-made curve.

    ``interpolated``: at every point of the other curve inside DSR's token range, DSR's
    interpolated accuracy minus that point's (the smallest margin is reported).
    ``frontier``: at every budget that is some point's token count, the best DSR
    accuracy within that budget minus the other method's (from DSR's cheapest point on).
    """
    dsr = curve_of(points, LABEL, benchmark)
    out = {}
    for name, other in (
        ("CMC", curve_of(points, "CMC", benchmark)),
        ("hand-made", handmade_envelope(points, benchmark)),
    ):
        inside = [
            (p.tokens, interpolate(dsr, p.tokens) - p.accuracy)
            for p in other
            if dsr[0].tokens <= p.tokens <= dsr[-1].tokens
        ]
        budgets = sorted({p.tokens for p in (*dsr, *other) if p.tokens >= dsr[0].tokens})
        steps = [(b, frontier(dsr, b) - frontier(other, b)) for b in budgets if not np.isnan(frontier(other, b))]
        worst_i = min(inside, key=lambda t: t[1]) if inside else (float("nan"), float("nan"))
        worst_f = min(steps, key=lambda t: t[1]) if steps else (float("nan"), float("nan"))
        out[name] = {
            "interpolated_min_margin": worst_i[1],
            "at_tokens": worst_i[0],
            "frontier_min_margin": worst_f[1],
            "frontier_at_budget": worst_f[0],
            "dominates": bool(inside) and worst_i[1] >= 0 and worst_f[1] >= 0,
        }
    return out


def targets(points: Sequence[Point], benchmark: str, heldout: bool) -> list[str]:
    """The issue's targets 1-3 measured on ``benchmark``: its fixed figures on the
    held-out benchmark; on the search benchmark the same targets relative to SC@64
    (SC at beta 1) measured there."""
    dsr = curve_of(points, LABEL, benchmark)
    if heldout:
        goals = (("1 cheap end", *TARGET_CHEAP), ("2 accurate end", *TARGET_ACCURATE))
    else:
        sc64 = curve_of(points, "sc", benchmark)[-1]
        goals = (
            ("1 cheap end (SC@64 accuracy at 20% of its tokens)", sc64.accuracy, 0.2 * sc64.tokens),
            ("2 accurate end (SC@64 + 2.35 points at 48% of its tokens)", sc64.accuracy + 2.35, 0.481 * sc64.tokens),
        )
    lines = []
    for label, acc, budget in goals:
        best = frontier(dsr, budget)
        verdict = "MET" if best >= acc else "missed"
        lines.append(
            f"target {label}: >= {acc:.2f}% at <= {budget / 1000:.0f}k tokens: best {LABEL} point {best:.2f}% -> {verdict}"
        )
    dom = dominance(points, benchmark)
    ok = all(d["dominates"] for d in dom.values())
    detail = "; ".join(
        f"vs {n}: smallest margin {d['interpolated_min_margin']:+.2f} (interpolated, at {d['at_tokens'] / 1000:.0f}k), "
        f"{d['frontier_min_margin']:+.2f} (best point within budget, at {d['frontier_at_budget'] / 1000:.0f}k)"
        for n, d in dom.items()
    )
    lines.append(
        f"target 3 curve on or above CMC and the best hand-made method: {'MET' if ok else 'missed'} ({detail})"
    )
    return lines


def ablation_table(
    points: Sequence[Point], benchmarks: Sequence[str], betas: Sequence[float]
) -> tuple[str, list[dict[str, Any]]]:
    """Per ablated variant and benchmark: mean accuracy and tokens over the ablation
    betas, and the accuracy margin against the full DSR curve at the variant's tokens."""
    rows, body = [], []
    for label in (LABEL, *(f"{LABEL} {a}" for a in ABLATIONS)):
        row: dict[str, Any] = {"variant": f"full {LABEL}" if label == LABEL else label.removeprefix(f"{LABEL} ")}
        cells = [row["variant"]]
        for bench in benchmarks:
            full = curve_of(points, LABEL, bench)
            pts = [p for p in curve_of(points, label, bench) if p.beta in betas]
            margins = [p.accuracy - interpolate(full, p.tokens) for p in pts]
            margins = [m for m in margins if not np.isnan(m)]
            row[bench] = {
                "accuracy": float(np.mean([p.accuracy for p in pts])),
                "tokens": float(np.mean([p.tokens for p in pts])),
                "matched_cost_margin": float(np.mean(margins)) if margins else float("nan"),
                "points": [(p.beta, p.accuracy, p.tokens) for p in pts],
            }
            r = row[bench]
            cells += [f"{r['accuracy']:.2f}", f"{r['tokens'] / 1000:.0f}k", f"{r['matched_cost_margin']:+.2f}"]
        rows.append(row)
        body.append(cells)
    header = ["variant"] + [h for _ in benchmarks for h in ("acc %", "tokens", "vs full")]
    groups = [("", 1)] + [(b, 3) for b in benchmarks]
    return render_table(header, body, groups=groups, text_columns=1), rows


def save_figure(points: Sequence[Point], benchmarks: Sequence[str], path: Path) -> None:
    """Accuracy against tokens (log x), model averages, one panel per benchmark."""
    fig = Figure(figsize=(6.0 * len(benchmarks), 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(benchmarks), squeeze=False)[0]
    styles = {LABEL: ("o-", 2.2), "CMC": ("s-", 1.6)}
    for ax, bench in zip(axes, benchmarks):
        for name in (LABEL, "CMC", *HANDMADE):
            pts = curve_of(points, name, bench)
            marker, width = styles.get(name, (".--", 1.0))
            color = method_color(DISPLAY_NAMES.get(name, name))
            ax.plot(
                [p.tokens for p in pts],
                [p.accuracy for p in pts],
                marker,
                color=color,
                lw=width,
                label=DISPLAY_NAMES.get(name, name),
            )
        log_token_axis(ax)
        ax.set_title(f"{bench} (average of {len(curve_of(points, LABEL, bench)[0].per_model)} models)")
        ax.set_xlabel("tokens per question (log scale)")
        ax.set_ylabel("accuracy (%)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.savefig(path, dpi=120)


def main() -> None:
    args = parse_args()
    use_family(args.family)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    benchmarks = [args.search] if args.no_heldout else [args.search, args.heldout]
    splits = load_store(args.store).select([f"*/{b}" for b in benchmarks])
    cells, tags = build_cells(args, splits)
    print(f"evaluating {len(cells)} cells ({args.seeds} seeds per question) on {', '.join(s.name for s in splits)}")
    started = time.perf_counter()
    evaluations = evaluate_many(cells, make_options(args.seeds), workers=args.workers, progress=True)
    print(f"done in {time.perf_counter() - started:.0f} s")

    write_summaries_json(evaluations, out / "summary.json")
    points = average(evaluations, tags)
    (out / "curves.json").write_text(json.dumps([p.__dict__ for p in points], indent=1) + "\n")
    tables = question_tables(evaluations, tags)
    paired: dict[str, list[dict[str, Any]]] = {}
    dsr_evals = [ev for ev, (curve, _) in zip(evaluations, tags) if curve == LABEL]
    violations = monotonicity_violations(dsr_evals)
    print(f"{LABEL} cost monotone in beta on every split:", "yes" if not violations else "; ".join(violations))
    for bench in benchmarks:
        print(f"\n== {bench}: model averages; 'vs' columns: {LABEL} minus the other curve at {LABEL}'s tokens")
        print(curve_table(points, bench))
        for line in targets(points, bench, heldout=bench == args.heldout and not args.no_heldout):
            print(line)
        table, paired[bench] = paired_table(points, tables, bench)
        print(f"\n{LABEL} with 95% bootstrap intervals over questions (paired at matched tokens; P = share of resamples <= 0)")
        print(table)
    (out / "paired.json").write_text(json.dumps(paired, indent=1) + "\n")
    if not args.no_ablation:
        table, rows = ablation_table(points, benchmarks, parse_betas(args.ablation_betas))
        print("\n== ablation: each mechanism off in turn (means over betas " + args.ablation_betas + ")")
        print(table)
        (out / "ablation.json").write_text(json.dumps(rows, indent=1) + "\n")
    save_figure(points, benchmarks, out / "beat_cmc.png")
    main_curves = [ev.summary for ev, (curve, _) in zip(evaluations, tags) if not curve.startswith(f"{LABEL} ")]
    save_pareto(main_curves, out / "beat_cmc_splits.png")
    print(
        f"\nwrote {out}: summary.json, curves.json, paired.json, beat_cmc.png, beat_cmc_splits.png"
        + ("" if args.no_ablation else ", ablation.json")
    )


if __name__ == "__main__":
    main()
