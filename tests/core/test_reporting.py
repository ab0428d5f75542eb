"""Tables, labels, pool references, plots and the reproduction check, on hand-made data."""

from __future__ import annotations

import json

import pytest

from autotts_gym.cli.methods import MethodSpec, parse_betas, parse_method_spec, sweep_specs
from autotts_gym.data.store import Split, SplitInfo, Store
from autotts_gym.reporting.plots import figure_png, pareto_figure, png_size, save_pareto
from autotts_gym.reporting.published import check_reproduction, reproduction_targets
from autotts_gym.reporting.tables import (
    Table1,
    Table1Row,
    build_table1,
    format_compare,
    format_table1,
    method_label,
    pool_reference,
    read_summaries,
    split_roles,
    write_summaries_csv,
    write_table1,
)


def summary(model="m", benchmark="b", method="sc", beta=None, accuracy=50.0, tokens=1000.0, params=None):
    """A summary dict as ``Summary.as_dict()`` gives it."""
    return {
        "split": f"{model}/{benchmark}",
        "model": model,
        "benchmark": benchmark,
        "method": method,
        "params": params if params is not None else ({"k": 64} if method == "sc" else {}),
        "beta": beta,
        "episodes": 30,
        "questions": 30,
        "seeds": 1,
        "accuracy": accuracy,
        "accuracy_ci": (accuracy - 10, accuracy + 10),
        "tokens": tokens,
        "tokens_ci": (tokens * 0.9, tokens * 1.1),
        "sequential_tokens": tokens / 10,
        "sequential_tokens_ci": (tokens / 11, tokens / 9),
        "branches_opened": 4.0,
        "seconds": 0.5,
        "stop_reasons": {"x": 30},
    }


def tiny_split(model="m", benchmark="b"):
    # q0: a 2-2 tie between "1" (seen first, gold) and "2": the majority is right.
    # q1: "4" beats the gold "3": majority wrong, pass right.
    # q2: gold "7" never appears: both wrong. q3: "ERR" wins the vote (it votes).
    pools = [
        [(["1"], 100, "1"), (["2"], 200, "2"), ([], 300, "2"), (["1", "1"], 400, "1")],
        [(["3"], 100, "3"), (["4"], 100, "4"), (["4"], 100, "4")],
        [(["5"], 1000, "5"), (["ERR"], 1000, "ERR")],
        [(["ERR"], 10, "ERR"), (["ERR"], 10, "ERR"), (["8"], 10, "8")],
    ]
    info = SplitInfo(model=model, benchmark=benchmark)
    return Split.from_lists(info, ["q0", "q1", "q2", "q3"], ["1", "3", "7", "8"], pools)


def test_pool_reference_majority_ties_err_and_pass():
    ref = pool_reference(tiny_split())
    assert ref.pool_size == 4
    assert ref.majority_accuracy == pytest.approx(100 * 1 / 4)  # only q0
    assert ref.pass_accuracy == pytest.approx(100 * 3 / 4)  # q0, q1, q3
    assert ref.tokens == pytest.approx((1000 + 300 + 2000 + 30) / 4)


def test_method_labels():
    assert method_label(summary(method="sc", params={"k": 64})) == "SC@64"
    assert method_label(summary(method="asc")) == "ASC"
    assert method_label(summary(method="parallel-probe")) == "Parallel-Probe"
    assert method_label(summary(method="cmc", beta=0.5)) == "CMC beta=0.5"
    assert method_label(summary(method="cmc", beta=1.0)) == "CMC beta=1.0"
    assert method_label(summary(method="sc", beta=0.25, params={"k": 3})) == "SC@3 beta=0.25"
    assert method_label(summary(method="my-rule")) == "my-rule"


def test_method_specs():
    assert parse_method_spec("cmc@0.5") == MethodSpec("cmc", 0.5)
    assert parse_method_spec(" sc ") == MethodSpec("sc", None)
    # A non-numeric suffix after '@' is part of the spec (a path), not a beta.
    assert parse_method_spec("dir@v2/rule.py:Rule") == MethodSpec("dir@v2/rule.py:Rule", None)
    with pytest.raises(ValueError, match="beta must lie in"):
        parse_method_spec("cmc@1.5")
    assert parse_betas("0, 0.5,1") == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="comma-separated numbers"):
        parse_betas("0,high")
    specs = sweep_specs(["sc", "cmc"], [0.0, 1.0])
    assert [str(s) for s in specs] == ["sc@0", "sc@1", "cmc@0", "cmc@1"]


def test_table1_layout_average_and_references():
    rows = [
        summary("A", "s", "sc", accuracy=10, tokens=100),
        summary("A", "h1", "sc", accuracy=20, tokens=200),
        summary("A", "h2", "sc", accuracy=40, tokens=400),
        summary("A", "s", "cmc", beta=0.5, accuracy=30, tokens=50),
        summary("A", "h1", "cmc", beta=0.5, accuracy=50, tokens=60),
        summary("B", "s", "sc", accuracy=1, tokens=2),
        summary("A", "other", "sc", accuracy=99, tokens=99),  # not a table column: ignored
    ]
    refs = [pool_reference(tiny_split("A", b)) for b in ("s", "h1", "h2")]
    table = build_table1(rows, ["s"], ["h1", "h2"], refs)
    assert [(r.model, r.label, r.kind) for r in table.rows] == [
        ("A", "SC@64", "method"),
        ("A", "CMC beta=0.5", "method"),
        ("A", "pool majority@4", "reference"),
        ("A", "pool pass@4", "reference"),
        ("B", "SC@64", "method"),
    ]
    sc = table.rows[0]
    assert sc.cells == {"s": (10, 100), "h1": (20, 200), "h2": (40, 400)}
    assert sc.heldout_average == (30.0, 300.0)
    assert table.rows[1].cells["h2"] is None and table.rows[1].heldout_average is None
    assert table.cell("A", "pool pass@4", "h1") == (75.0, refs[1].tokens)

    text = format_table1(table)
    lines = text.splitlines()
    assert "s (search)" in lines[0] and "h1 (held-out)" in lines[0] and "held-out avg" in lines[0]
    sc_line = next(line for line in lines if line.startswith("A ") and "SC@64" in line)
    assert sc_line.split()[2:] == ["10.0", "0.1k", "20.0", "0.2k", "40.0", "0.4k", "30.0", "0.3k"]
    cmc_line = next(line for line in lines if "CMC beta=0.5" in line)
    assert cmc_line.split()[-4:] == ["-", "-", "-", "-"]


def test_write_table1(tmp_path):
    table = Table1(["s"], ["h"], [Table1Row("A", "ASC", "method", {"s": (1.0, 2.0), "h": None}, None)])
    csv_path, json_path = write_table1(table, tmp_path)
    assert csv_path.read_text().splitlines() == [
        "model,method,kind,s_accuracy,s_tokens,h_accuracy,h_tokens",
        "A,ASC,method,1.0000,2.0,,",
    ]
    assert json.loads(json_path.read_text())["rows"][0]["label"] == "ASC"


def test_split_roles():
    store = Store([tiny_split("A", "aime25"), tiny_split("A", "aime24"), tiny_split("A", "extra")])
    assert split_roles(store) == (["aime24"], ["aime25", "extra"])
    assert split_roles(store, ["extra"], ["aime25"]) == (["extra"], ["aime25"])
    with pytest.raises(ValueError, match="'nope' is not in the store"):
        split_roles(store, ["nope"])
    with pytest.raises(ValueError, match="both search and held-out"):
        split_roles(store, ["aime24"], ["aime24"])
    assert split_roles(Store([tiny_split("A", "x"), tiny_split("A", "y")])) == (["x"], ["y"])


def test_compare_table_and_summary_files(tmp_path):
    rows = [summary("A", "s", "sc", beta=b, accuracy=10 + b, tokens=100 * (1 + b), params={"k": k}) for b, k in ((0.0, 1), (1.0, 64))]
    text = format_compare(rows)
    assert "SC@1 beta=0.0" in text and "SC@64 beta=1.0" in text and "acc 95% CI" in text
    path = write_summaries_csv(rows, tmp_path / "r.csv")
    header = path.read_text().splitlines()[0].split(",")
    assert {"label", "accuracy_lo", "accuracy_hi", "tokens_lo", "tokens_hi", "params"} <= set(header)

    (tmp_path / "s.json").write_text(json.dumps(rows))
    assert read_summaries(tmp_path / "s.json")[1]["params"] == {"k": 64}
    (tmp_path / "bad.json").write_text(json.dumps([{"model": "A"}]))
    with pytest.raises(ValueError, match="summary 0 lacks field"):
        read_summaries(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("[")
    with pytest.raises(ValueError, match="malformed JSON"):
        read_summaries(tmp_path / "broken.json")


def test_pareto_figure_panels_and_png(tmp_path):
    rows = [
        summary(m, b, meth, beta=beta, accuracy=acc, tokens=tok)
        for m in ("A", "B")
        for b in ("s", "h")
        for meth, beta, acc, tok in (("sc", None, 50, 9e5), ("cmc", 0.0, 40, 5e4), ("cmc", 1.0, 55, 4e5))
    ]
    fig = pareto_figure(rows, ci=True, references=[pool_reference(tiny_split("A", "s"))])
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 4
    assert visible[0].get_xscale() == "log"
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {"SC", "CMC", "pool pass@4", "pool majority@4"}
    one_row = pareto_figure(rows, benchmark="h")
    assert [ax.get_title() for ax in one_row.axes] == ["A / h", "B / h"]
    with pytest.raises(ValueError, match="no results for benchmark"):
        pareto_figure(rows, benchmark="zz")
    width, height = png_size(figure_png(one_row))
    assert width > height > 100
    path = save_pareto(rows, tmp_path / "f.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reproduction_check_tolerances():
    targets = reproduction_targets()
    assert len(targets) == 48
    assert targets[("Qwen3-4B", "ASC", "aime24")] == (80.0, 214200.0)  # the release code's figure
    table = Table1(["aime24"], ["aime25"], [])
    for (model, row, bench), cell in targets.items():
        found = next((r for r in table.rows if r.model == model and r.label == row), None)
        if found is None:
            found = Table1Row(model, row, "method", {}, None)
            table.rows.append(found)
        found.cells[bench] = cell
    assert all(c.ok for c in check_reproduction(table))

    key = ("Qwen3-8B", "SC@64", "aime25")
    acc, tokens = targets[key]
    row = next(r for r in table.rows if (r.model, r.label) == key[:2])
    for cell, ok in (((acc + 0.14, tokens), True), ((acc + 0.2, tokens), False), ((acc, tokens * 1.002), False)):
        row.cells["aime25"] = cell
        check = next(c for c in check_reproduction(table) if (c.model, c.row, c.benchmark) == key)
        assert check.ok is ok
    row.cells["aime25"] = None
    assert not next(c for c in check_reproduction(table) if (c.model, c.row, c.benchmark) == key).ok
