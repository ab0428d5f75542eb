"""Figures: one colour per method in every figure, axes that show the data (a far
ceiling line does not squash the methods), token ticks in k/M."""

from __future__ import annotations

import matplotlib.colors as mcolors

from autotts_gym.reporting.plots import METHOD_COLORS, method_color, pareto_figure
from autotts_gym.reporting.tables import PoolReference


def summary(method: str, accuracy: float, tokens: float, beta: float | None = None) -> dict:
    return {"method": method, "model": "M", "benchmark": "b", "accuracy": accuracy, "tokens": tokens, "beta": beta}


def curve_colors(fig) -> dict[str, str]:
    ax = fig.axes[0]
    return {line.get_label(): mcolors.to_hex(line.get_color()) for line in ax.get_lines()}


def test_a_method_has_one_colour_whatever_else_is_plotted():
    alone = curve_colors(pareto_figure([summary("cmc", 80, 2e5)]))
    crowd = curve_colors(pareto_figure([summary(m, 80, 2e5) for m in ("sc", "asc", "dsr-lock", "mine", "cmc")]))
    assert alone["CMC"] == crowd["CMC"] == mcolors.to_hex(METHOD_COLORS["CMC"])
    assert crowd["SC"] == mcolors.to_hex("tab:blue") and crowd["mine"] == mcolors.to_hex(method_color("mine"))
    assert len(set(METHOD_COLORS.values())) == len(METHOD_COLORS)


def test_a_far_ceiling_does_not_squash_the_methods():
    points = [summary("sc", 80.0, 9e5), summary("cmc", 82.0, 2.5e5, 0.5), summary("cmc", 83.5, 4.2e5, 1.0)]
    far = PoolReference("M", "b", 128, majority_accuracy=80.0, pass_accuracy=93.3, tokens=1.8e6)
    ax = pareto_figure(points, references=[far]).axes[0]
    lo, hi = ax.get_ylim()
    assert 78 < lo < 80 and 83.5 < hi < 86  # the data fill the panel
    assert any("pool pass@128: 93.3% (above)" in t.get_text() for t in ax.texts)
    near = PoolReference("M", "b", 128, majority_accuracy=80.0, pass_accuracy=84.0, tokens=1.8e6)
    ax = pareto_figure(points, references=[near]).axes[0]
    assert any(line.get_label() == "pool pass@128" for line in ax.get_lines()) and ax.get_ylim()[1] > 84.0


def test_token_axis_has_enough_ticks_in_k():
    points = [summary("sc", 80.0, 9e5), summary("cmc", 82.0, 2.5e5, 0.5), summary("asc", 80.0, 2.2e5)]
    fig = pareto_figure(points)
    fig.canvas.draw()
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    labels = [t.get_text() for t, x in zip(ax.get_xticklabels(), ax.get_xticks()) if lo <= x <= hi]
    assert len(labels) >= 4 and all(label.endswith(("k", "M")) for label in labels)
