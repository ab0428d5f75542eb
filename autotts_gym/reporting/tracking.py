"""TensorBoard logging of evaluation results, with the core dependencies only.

Event files are written with ``tensorboard``'s own writer
(:class:`tensorboard.summary.writer.event_file_writer.EventFileWriter`, the writer
``torch.utils.tensorboard`` uses underneath) and its protocol buffers, so neither torch
nor TensorFlow is needed. Open the results with ``tensorboard --logdir DIR``.

Layout written by :func:`log_summaries` under ``DIR``:

* one run (sub-folder) per method family (``sc``, ``cmc``, ``my-method``), so the
  methods overlay on every chart;
* scalars ``accuracy/<model>/<benchmark>`` (percent), ``tokens/<model>/<benchmark>``
  and ``sequential_tokens/<model>/<benchmark>`` (mean per question) at step
  ``round(100 * beta)`` (0 for a controller without a beta);
* ``pareto/<model>/<benchmark>``: accuracy at step = mean tokens, i.e. the
  accuracy-tokens curve drawn by TensorBoard's own scalar chart;
* text ``params`` per run: the hyper-parameters of every evaluated controller;
* run ``figures``: image ``pareto``, the Pareto figure of :mod:`autotts_gym.reporting.plots`.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.text.summary_v2 import text_pb
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from autotts_gym.reporting.plots import figure_png, pareto_figure, png_size
from autotts_gym.reporting.tables import as_record, method_label

FIGURE_RUN = "figures"


def beta_step(beta: float | None) -> int:
    """The TensorBoard step of a beta: ``round(100 * beta)``, 0 without a beta."""
    return 0 if beta is None else int(round(100 * beta))


class TensorBoardLog:
    """A TensorBoard log directory with one event file writer per run.

    Use as a context manager (or call :meth:`close`) so events are flushed.
    """

    def __init__(self, logdir: str | os.PathLike) -> None:
        self.logdir = Path(logdir)
        self._writers: dict[str, EventFileWriter] = {}

    def _writer(self, run: str) -> EventFileWriter:
        if run not in self._writers:
            folder = self.logdir / _safe_run_name(run)
            folder.mkdir(parents=True, exist_ok=True)
            self._writers[run] = EventFileWriter(str(folder))
        return self._writers[run]

    def _add(self, run: str, summary: summary_pb2.Summary, step: int) -> None:
        self._writer(run).add_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def scalar(self, run: str, tag: str, value: float, step: int) -> None:
        """Log one scalar."""
        self._add(run, summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(value))]), step)

    def image(self, run: str, tag: str, png: bytes, step: int = 0) -> None:
        """Log one PNG image."""
        width, height = png_size(png)
        image = summary_pb2.Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=png)
        self._add(run, summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=image)]), step)

    def text(self, run: str, tag: str, markdown: str, step: int = 0) -> None:
        """Log a Markdown text (shown in TensorBoard's Text tab)."""
        self._add(run, text_pb(tag, markdown), step)

    def close(self) -> None:
        """Flush and close every writer."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def log_summaries(logdir: str | os.PathLike, summaries: Sequence[Any], figure: bool = True, **plot_kwargs: Any) -> Path:
    """Write the scalars, params and (optionally) the Pareto figure of some evaluation
    summaries to ``logdir`` (layout in the module docstring).

    Args:
        logdir: TensorBoard log directory (created if needed).
        summaries: Summary objects or their dicts.
        figure: also log the Pareto figure as an image.
        plot_kwargs: passed to :func:`autotts_gym.reporting.plots.pareto_figure`.
    """
    records = [as_record(s) for s in summaries]
    params: dict[str, list[str]] = {}
    with TensorBoardLog(logdir) as log:
        for s in records:
            run, split = s["method"], f"{s['model']}/{s['benchmark']}"
            step = beta_step(s.get("beta"))
            for metric in ("accuracy", "tokens", "sequential_tokens"):
                log.scalar(run, f"{metric}/{split}", s[metric], step)
            log.scalar(run, f"pareto/{split}", s["accuracy"], int(round(s["tokens"])))
            row = f"| {method_label(s)} | {json.dumps(s.get('params') or {}, sort_keys=True, default=str)} |"
            if row not in params.setdefault(run, []):
                params[run].append(row)
        for run, rows in params.items():
            log.text(run, "params", "| controller | parameters |\n|---|---|\n" + "\n".join(rows))
        if figure and records:
            log.image(FIGURE_RUN, "pareto", figure_png(pareto_figure(records, **plot_kwargs)))
    return Path(logdir)


def _safe_run_name(name: str) -> str:
    # Run names become folder names: keep them to one path component.
    return re.sub(r"[^A-Za-z0-9._@=+-]+", "_", name).strip("._") or "run"
