"""TensorBoard for a discovery run: one step per round, in run ``discovery`` of the
log directory (``tensorboard --logdir DIR``).

Scalars (step = round):

* ``search/best_accuracy``, ``search/best_tokens``: the selected point so far (best mean
  search accuracy over all rounds and points, ties to fewer tokens), and
  ``search/best_beta`` when it has a beta;
* ``round/ok`` (1 or 0), and for a working round ``round/accuracy``, ``round/tokens``
  at its own best point;
* ``llm/prompt_tokens``, ``llm/completion_tokens``, ``llm/seconds``, ``llm/cost_usd``
  (as far as known), ``time/outside_llm_seconds``, ``time/evaluation_seconds``.

Images ``sweep`` (step = round): the round's accuracy-tokens curve per search split,
next to the curve of the best round so far. Text ``round``: name, status, diagnostic.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from agents.discovery.history import RoundRecord
from autotts_gym.reporting.plots import figure_png
from autotts_gym.reporting.tracking import TensorBoardLog

RUN = "discovery"
MAX_LABEL_CHARS = 20  # legend labels: longer ones squeeze the panel away


class DiscoveryTracker:
    """Writes one round at a time to a TensorBoard log directory."""

    def __init__(self, logdir: str | os.PathLike) -> None:
        self.logdir = logdir
        self.log = TensorBoardLog(logdir)

    def log_round(
        self,
        record: RoundRecord,
        sweep: Sequence[dict[str, Any]],
        best: tuple[RoundRecord, dict[str, Any]] | None,
        best_sweep: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Log round ``record`` (its ``sweep.json`` rows) and the best so far."""
        r = record.round
        scalar = self.log.scalar
        scalar(RUN, "round/ok", 1.0 if record.ok else 0.0, r)
        if record.ok and record.best:
            scalar(RUN, "round/accuracy", record.best["accuracy"], r)
            scalar(RUN, "round/tokens", record.best["tokens"], r)
        if best is not None:
            _, point = best
            scalar(RUN, "search/best_accuracy", point["accuracy"], r)
            scalar(RUN, "search/best_tokens", point["tokens"], r)
            if point.get("beta") is not None:
                scalar(RUN, "search/best_beta", point["beta"], r)
        usage = record.data.get("usage") or {}
        for key in ("prompt_tokens", "completion_tokens", "seconds", "cost_usd"):
            if usage.get(key) is not None:
                scalar(RUN, f"llm/{key}", float(usage[key]), r)
        timing = record.data.get("timing") or {}
        for key in ("outside_llm_seconds", "evaluation_seconds"):
            if timing.get(key) is not None:
                scalar(RUN, f"time/{key}", float(timing[key]), r)
        failure = record.data.get("failure") or {}
        status = (
            "evaluated"
            if record.ok
            else f"failed at {failure.get('stage')} ({failure.get('kind')}): {failure.get('message')}"
        )
        self.log.text(RUN, "round", f"**round {r}: {record.name}**\n\n{status}", r)
        curves = _curve_rows(record, sweep)
        if best is not None and best[0].round != r:
            curves += _curve_rows(best[0], best_sweep, suffix=" (best)")
        if curves:
            self.log.image(RUN, "sweep", figure_png(sweep_figure(curves, f"round {r}: search-split sweep")), r)

    def close(self) -> None:
        """Flush the event files."""
        self.log.close()


def _curve_rows(record: RoundRecord, sweep: Sequence[dict[str, Any]], suffix: str = "") -> list[dict[str, Any]]:
    """The round's summaries labelled by curve (round and name) and point (beta or setting)."""
    label = f"round {record.round}: {record.name[:MAX_LABEL_CHARS]}{suffix}"
    return [{**s, "curve": label, "point": point["label"]} for point in sweep for s in point.get("summaries", [])]


def sweep_figure(rows: Sequence[dict[str, Any]], title: str) -> Figure:
    """Accuracy against mean tokens (log axis), one panel per split, one curve per round,
    each point labelled with its beta (or setting)."""
    splits = list(dict.fromkeys(f"{s['model']}/{s['benchmark']}" for s in rows))
    curves = list(dict.fromkeys(s["curve"] for s in rows))
    fig = Figure(figsize=(5.0 * len(splits), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(splits), squeeze=False)[0]
    for ax, split in zip(axes, splits):
        for i, curve in enumerate(curves):
            points = sorted(
                (s for s in rows if s["curve"] == curve and f"{s['model']}/{s['benchmark']}" == split),
                key=lambda s: s["tokens"],
            )
            ax.plot(
                [s["tokens"] for s in points], [s["accuracy"] for s in points], marker="o", color=f"C{i}", label=curve
            )
            for s in points:
                ax.annotate(
                    s["point"].replace("beta=", ""),
                    (s["tokens"], s["accuracy"]),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1e3:g}k"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(split, fontsize=10)
        ax.set_xlabel("tokens per question (log scale)")
        ax.set_ylabel("accuracy (%)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    return fig
