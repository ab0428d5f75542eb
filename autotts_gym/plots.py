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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from autotts_gym.reporting import PoolReference, as_record, method_name

PANEL_SIZE = (4.2, 3.4)  # inches per panel


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
    colors = {name: f"C{i % 10}" for i, name in enumerate(curves)}

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
            for ref in references:
                if ref.model == model and ref.benchmark == bench:
                    _draw_reference(ax, ref)
            _log_token_axis(ax)
            ax.set_title(f"{model} / {bench}", fontsize=10)
            ax.set_xlabel("tokens per question (log scale)")
            ax.set_ylabel("accuracy (%)")
            ax.grid(True, which="both", alpha=0.3)
    handles, labels = _legend_entries(axes)
    fig.legend(handles, labels, loc="outside right upper", frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def _log_token_axis(ax: Any) -> None:
    # Few ticks, labelled "200k", "1M", chosen from 1-2-5 steps (finer in a narrow
    # range), so that labels never collide even within one decade. Call after drawing.
    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    ticks: list[float] = []
    for subs in ((1, 2, 5), (1, 2, 3, 5, 7), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [m * 10.0**e for e in range(int(math.floor(math.log10(lo))), int(math.ceil(math.log10(hi))) + 1) for m in subs]
        ticks = [t for t in ticks if lo <= t <= hi]
        if len(ticks) >= 3:
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


def _draw_reference(ax: Any, ref: PoolReference) -> None:
    ax.axhline(ref.pass_accuracy, color="0.4", ls=":", lw=1, label=f"pool pass@{ref.pool_size}")
    ax.plot([ref.tokens], [ref.majority_accuracy], color="0.4", marker="x", ls="none", label=f"pool majority@{ref.pool_size}")


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
