"""Pareto plots of accuracy against tokens, like the paper's Figure 3.

One panel per split (rows: benchmarks, columns: models; give ``benchmark`` to get one
row of model panels), one curve per method family (its evaluated points joined in
order of tokens), log x axis, optional 95% interval error bars (off by default: with
30 questions they span most of the panel), optional pool
reference marks. Figures are built with :class:`matplotlib.figure.Figure` and the Agg
canvas directly, so plotting never touches pyplot's global state or needs a display.
"""

from __future__ import annotations

import io
import math
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from autotts_gym.reporting.tables import PoolReference, as_record, method_name

PANEL_SIZE = (4.2, 3.4)  # inches per panel

# One colour per method in every figure of the project (matplotlib's tab10 colours),
# keyed by display name (see autotts_gym.reporting.tables.DISPLAY_NAMES).
METHOD_COLORS = {
    "SC": "tab:blue",
    "ASC": "tab:orange",
    "ESC": "tab:green",
    "Parallel-Probe": "tab:purple",
    "CMC": "tab:red",
    "DSR": "tab:brown",
    "DSR-L": "tab:pink",
    "PPO": "tab:cyan",
}
# Methods without a fixed colour (a user's controller, a variant) take one of these,
# chosen from the name, so a method keeps its colour from figure to figure.
SPARE_COLORS = ("tab:olive", "tab:gray", "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")


def method_color(name: str) -> str:
    """The colour of a method (display name, ``"CMC"``, or any other name) in every figure."""
    if name in METHOD_COLORS:
        return METHOD_COLORS[name]
    return SPARE_COLORS[zlib.crc32(name.encode()) % len(SPARE_COLORS)]


def pareto_figure(
    summaries: Sequence[Any],
    *,
    benchmark: str | None = None,
    ci: bool = False,
    references: Sequence[PoolReference] = (),
    title: str | None = None,
) -> Figure:
    """Accuracy (%) against mean tokens per question, one panel per split.

    Args:
        summaries: Summary objects or their dicts (``summary.json`` rows).
        benchmark: keep only this benchmark (one row of panels, one per model).
        ci: draw the 95% bootstrap intervals as error bars.
        references: pool references to mark (whole-pool majority as a grey cross,
            pass@N as a dotted ceiling).
        title: figure title.
    """
    records = [as_record(s) for s in summaries]
    if benchmark is not None:
        records = [s for s in records if s["benchmark"] == benchmark]
        if not records:
            raise ValueError(f"no results for benchmark {benchmark!r}")
    if not records:
        raise ValueError("nothing to plot: no summaries")
    models = list(dict.fromkeys(s["model"] for s in records))
    benchmarks = list(dict.fromkeys(s["benchmark"] for s in records))
    curves = list(dict.fromkeys(method_name(s) for s in records))
    colors = {name: method_color(name) for name in curves}

    fig = Figure(figsize=(PANEL_SIZE[0] * len(models), PANEL_SIZE[1] * len(benchmarks) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(benchmarks), len(models), squeeze=False)
    for r, bench in enumerate(benchmarks):
        for c, model in enumerate(models):
            ax = axes[r][c]
            points = [s for s in records if s["model"] == model and s["benchmark"] == bench]
            if not points:
                ax.set_visible(False)
                continue
            for name in curves:
                _draw_curve(ax, [s for s in points if method_name(s) == name], name, colors[name], ci)
            refs = [ref for ref in references if ref.model == model and ref.benchmark == bench]
            for ref in refs:
                _draw_majority(ax, ref)
            _fit_accuracy_axis(ax, points, ci)
            for ref in refs:
                _draw_ceiling(ax, ref)
            log_token_axis(ax)
            ax.set_title(f"{model} / {bench}", fontsize=10)
            ax.set_xlabel("tokens per question (log scale)")
            ax.set_ylabel("accuracy (%)")
            ax.grid(True, which="both", alpha=0.3)
    handles, labels = _legend_entries(axes)
    fig.legend(handles, labels, loc="outside right upper", frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def log_token_axis(ax: Any) -> None:
    """A log token axis with 4-6 ticks labelled ``200k``, ``1M`` (never ``10^5``),
    chosen from 1-2-5 steps (finer in a narrow range) so labels never collide even
    within one decade. Call after drawing."""
    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    ticks: list[float] = []
    for subs in ((1, 2, 5), (1, 2, 3, 5, 7), (1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [m * 10.0**e for e in range(int(math.floor(math.log10(lo))), int(math.ceil(math.log10(hi))) + 1) for m in subs]
        ticks = [t for t in ticks if lo <= t <= hi]
        if len(ticks) >= 4:
            break
    ticks = ticks[:: max(1, math.ceil(len(ticks) / 6))]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(_token_label))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(lo, hi)


def _token_label(x: float, _pos: int) -> str:
    if x >= 1e6:
        return f"{x / 1e6:g}M"
    return f"{x / 1e3:g}k" if x >= 1e3 else f"{x:g}"


def _draw_curve(ax: Any, points: list[dict[str, Any]], name: str, color: str, ci: bool) -> None:
    if not points:
        return
    points = sorted(points, key=lambda s: s["tokens"])
    x = [s["tokens"] for s in points]
    y = [s["accuracy"] for s in points]
    if ci:
        xerr = [[max(0.0, s["tokens"] - s["tokens_ci"][0]) for s in points], [max(0.0, s["tokens_ci"][1] - s["tokens"]) for s in points]]
        yerr = [[max(0.0, s["accuracy"] - s["accuracy_ci"][0]) for s in points], [max(0.0, s["accuracy_ci"][1] - s["accuracy"]) for s in points]]
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, color=color, marker="o", ms=4, lw=1.5, elinewidth=0.7, capsize=2, alpha=0.9, label=name)
    else:
        ax.plot(x, y, color=color, marker="o", ms=4, lw=1.5, label=name)


def _draw_majority(ax: Any, ref: PoolReference) -> None:
    ax.plot([ref.tokens], [ref.majority_accuracy], color="0.4", marker="x", ls="none", label=f"pool majority@{ref.pool_size}")


def _fit_accuracy_axis(ax: Any, points: list[dict[str, Any]], ci: bool) -> None:
    # The y axis spans what is drawn as data (the methods, the pool majority), padded:
    # a far-off ceiling line must not squash the methods at the bottom of the panel.
    ys = [s["accuracy"] for s in points] + [y for line in ax.get_lines() for y in line.get_ydata()]
    if ci:
        ys += [v for s in points for v in s.get("accuracy_ci") or ()]
    lo, hi = min(ys), max(ys)
    pad = max(1.0, 0.12 * (hi - lo))
    ax.set_ylim(max(0.0, lo - pad), min(100.0, hi + pad))


def _draw_ceiling(ax: Any, ref: PoolReference) -> None:
    # pass@N as a dotted line where it fits the axis, else a note at the top edge.
    label = f"pool pass@{ref.pool_size}"
    lo, hi = ax.get_ylim()
    if ref.pass_accuracy <= hi + 0.25 * (hi - lo):
        ax.set_ylim(lo, max(hi, ref.pass_accuracy + 0.05 * (hi - lo)))
        ax.axhline(ref.pass_accuracy, color="0.4", ls=":", lw=1, label=label)
    else:
        ax.annotate(
            f"{label}: {ref.pass_accuracy:.1f}% (above)",
            xy=(0.02, 0.98),
            xycoords="axes fraction",
            ha="left",
            va="top",
            fontsize=7,
            color="0.35",
        )


def _legend_entries(axes: Any) -> tuple[list[Any], list[str]]:
    # One legend for the figure: every label once, in first-seen order over panels.
    seen: dict[str, Any] = {}
    for row in axes:
        for ax in row:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(label, handle)
    return list(seen.values()), list(seen)


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure encoded as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def png_size(png: bytes) -> tuple[int, int]:
    """``(width, height)`` of PNG bytes, read from the IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def save_pareto(summaries: Sequence[Any], path: str | os.PathLike, dpi: int = 120, **kwargs: Any) -> Path:
    """Draw :func:`pareto_figure` and write it to ``path`` (format from the suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pareto_figure(summaries, **kwargs).savefig(path, dpi=dpi)
    return path
