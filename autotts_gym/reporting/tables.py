"""Tables of evaluation results: the paper's Table 1 layout, comparison tables, the
pool reference rows and the text/CSV/JSON forms of summaries.

Functions take summaries either as :class:`~autotts_gym.evaluation.evaluate.Summary` objects or
as the plain dicts of ``Summary.as_dict()`` (what ``summary.json`` files hold), so a
table can be rebuilt from files without re-running anything.

Reference rows (per split, computed from the store, no seeds involved):

* **pool majority@N**: majority vote over the final answers of *all* N branches of
  the pool, ties to the answer of the lowest stored branch index (the pool's stored
  order); ``ERR`` votes like any answer, as in the release protocol. Tokens: the whole
  pool read, the sum of every branch's total tokens.
* **pool pass@N**: correct when *some* branch's final answer equals the gold answer:
  the ceiling of any selector over this pool. Tokens: the whole pool read.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autotts_gym.data.store import Split, Store
from autotts_gym.engine.voting import majority

# How the built-in methods are named in tables and legends.
DISPLAY_NAMES = {
    "sc": "SC",
    "asc": "ASC",
    "esc": "ESC",
    "parallel-probe": "Parallel-Probe",
    "cmc": "CMC",
    "dsr": "DSR",
    "dsr-lock": "DSR-L",
    "ppo": "PPO",
}


# --------------------------------------------------------------------------- summaries
def as_record(summary: Any) -> dict[str, Any]:
    """A summary as a plain dict (``Summary.as_dict()``, or the dict itself)."""
    return summary.as_dict() if hasattr(summary, "as_dict") else dict(summary)


def method_name(summary: Any) -> str:
    """The display name of a summary's method family: ``SC``, ``CMC``, ``my-method``."""
    method = as_record(summary)["method"]
    return DISPLAY_NAMES.get(method, method)


def method_label(summary: Any) -> str:
    """The row label of one evaluated controller: ``SC@64``, ``ASC``, ``CMC beta=0.5``,
    ``PPO w=1e-06``."""
    s = as_record(summary)
    label = method_name(s)
    params = s.get("params") or {}
    if s["method"] == "sc" and "k" in params:
        label += f"@{params['k']}"
    if s["method"] == "ppo" and "cost_weight" in params:  # policies differ by their cost weight
        label += f" w={params['cost_weight']:g}"
    if s.get("beta") is not None:
        label += f" beta={fmt_beta(s['beta'])}"
    return label


def fmt_beta(beta: float) -> str:
    """A beta as the paper writes it: ``0.5``, ``1.0``, ``0.25``."""
    text = f"{beta:g}"
    return text if "." in text or "e" in text else f"{text}.0"


def fmt_tokens(tokens: float) -> str:
    """Mean tokens in thousands, one decimal: ``886.8k``."""
    return "-" if tokens is None or math.isnan(tokens) else f"{tokens / 1000:.1f}k"


def fmt_accuracy(accuracy: float) -> str:
    """Accuracy in percent, one decimal: ``80.0``."""
    return "-" if accuracy is None or math.isnan(accuracy) else f"{accuracy:.1f}"


def summary_line(summary: Any) -> str:
    """One human-readable line: split, method, accuracy [CI], tokens [CI], sequential
    tokens, branches opened and episodes per second."""
    s = as_record(summary)
    lo, hi = s["accuracy_ci"]
    tlo, thi = s["tokens_ci"]
    rate = s["episodes"] / s["seconds"] if s.get("seconds") else float("nan")
    return (
        f"{s['model']}/{s['benchmark']}  {method_label(s)}: "
        f"accuracy {s['accuracy']:.2f}% [{lo:.1f}, {hi:.1f}]  "
        f"tokens {fmt_tokens(s['tokens'])} [{fmt_tokens(tlo)}, {fmt_tokens(thi)}]  "
        f"sequential {fmt_tokens(s['sequential_tokens'])}  "
        f"branches {s['branches_opened']:.1f}  "
        f"{s['episodes']} episodes, {rate:.0f} episodes/s"
    )


def summary_json(summary: Any) -> str:
    """One summary as a single JSON line (``--json`` output), with its row label."""
    s = as_record(summary)
    return json.dumps({"label": method_label(s), **s}, default=_json_default)


def _json_default(value: Any) -> Any:
    # numpy scalars and tuples in controller params.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


def write_summaries_csv(summaries: Iterable[Any], path: str | os.PathLike) -> Path:
    """One CSV row per summary; interval pairs become ``*_lo``/``*_hi`` columns,
    params a JSON string."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for summary in summaries:
        s = as_record(summary)
        row: dict[str, Any] = {"label": method_label(s)}
        for key, value in s.items():
            if key.endswith("_ci"):
                row[f"{key[:-3]}_lo"], row[f"{key[:-3]}_hi"] = value
            elif isinstance(value, dict):
                row[key] = json.dumps(value, default=_json_default, sort_keys=True)
            else:
                row[key] = value
        rows.append(row)
    with open(path, "w", newline="") as fh:
        if rows:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


def read_summaries(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Summaries from a JSON file written by evaluate/compare/table (``summary.json``,
    ``results.json``): a list of summary dicts, or an object with a ``summaries`` list."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such results file") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: malformed JSON: {err}") from None
    if isinstance(data, dict):
        data = data.get("summaries")
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected a non-empty list of summaries (or an object with a 'summaries' list)")
    required = ("model", "benchmark", "method", "accuracy", "tokens")
    for i, s in enumerate(data):
        missing = [k for k in required if not isinstance(s, dict) or k not in s]
        if missing:
            raise ValueError(f"{path}: summary {i} lacks field(s) {', '.join(missing)}")
    return data


# --------------------------------------------------------------------------- references
@dataclass(frozen=True)
class PoolReference:
    """The two reference rows of one split (see the module docstring).

    Attributes:
        model, benchmark: the split.
        pool_size: branches per question (the largest, if pools differ).
        majority_accuracy: percent of questions the whole-pool majority gets right.
        pass_accuracy: percent of questions some branch gets right.
        tokens: mean over questions of the whole pool's total tokens.
    """

    model: str
    benchmark: str
    pool_size: int
    majority_accuracy: float
    pass_accuracy: float
    tokens: float


def pool_reference(split: Split) -> PoolReference:
    """Whole-pool majority and pass@N of a split, from its stored final answers."""
    majority_hits, pass_hits, tokens = [], [], []
    for q in range(split.num_questions):
        b0, b1 = int(split.branch_offsets[q]), int(split.branch_offsets[q + 1])
        finals = split.final_ids[b0:b1].tolist()
        vocab = split.vocabs[q]
        gold = split.gold_answers[q]
        gold_id = vocab.index(gold) if gold in vocab else -1
        majority_hits.append(gold_id >= 0 and majority(finals)[0] == gold_id)
        pass_hits.append(gold_id in finals)
        tokens.append(int(split.total_tokens[b0:b1].sum()))
    sizes = np.diff(split.branch_offsets)
    return PoolReference(
        model=split.info.model,
        benchmark=split.info.benchmark,
        pool_size=int(sizes.max()) if len(sizes) else 0,
        majority_accuracy=100.0 * float(np.mean(majority_hits)) if majority_hits else math.nan,
        pass_accuracy=100.0 * float(np.mean(pass_hits)) if pass_hits else math.nan,
        tokens=float(np.mean(tokens)) if tokens else math.nan,
    )


# --------------------------------------------------------------------------- Table 1
Cell = tuple[float, float]  # (accuracy in percent, mean tokens)


@dataclass
class Table1Row:
    """One row of a Table 1 block.

    Attributes:
        model: the model the row belongs to.
        label: ``SC@64``, ``CMC beta=0.5``, ``pool majority@128``, ...
        kind: ``"method"`` or ``"reference"``.
        cells: benchmark -> (accuracy, tokens), None where not evaluated.
        heldout_average: mean (accuracy, tokens) over the held-out benchmarks, None
            if any of them is missing.
    """

    model: str
    label: str
    kind: str
    cells: dict[str, Cell | None]
    heldout_average: Cell | None


@dataclass
class Table1:
    """The paper's Table 1 layout: per model, rows of methods then reference rows;
    columns: search benchmarks, held-out benchmarks, the held-out average."""

    search: list[str]
    heldout: list[str]
    rows: list[Table1Row]

    @property
    def benchmarks(self) -> list[str]:
        """Search benchmarks first, held-out after."""
        return [*self.search, *self.heldout]

    @property
    def models(self) -> list[str]:
        """Models in row order."""
        return list(dict.fromkeys(r.model for r in self.rows))

    def cell(self, model: str, label: str, benchmark: str) -> Cell | None:
        """The (accuracy, tokens) of one row and benchmark."""
        for row in self.rows:
            if row.model == model and row.label == label:
                return row.cells.get(benchmark)
        raise KeyError(f"table has no row {label!r} for model {model!r}")

    @property
    def has_average(self) -> bool:
        """Whether the held-out average adds anything: only with two or more held-out
        benchmarks (with one it repeats that benchmark's columns)."""
        return len(self.heldout) > 1

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {"search": self.search, "heldout": self.heldout, "rows": [asdict(r) for r in self.rows]}


def split_roles(store: Store, search: Sequence[str] | None = None, heldout: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """The search and held-out benchmarks of a table.

    Defaults: search = ``aime24`` if the store has it, else its first benchmark;
    held-out = every other benchmark of the store. Names must exist in the store.
    """
    benchmarks = store.benchmarks
    if not search:
        search = ["aime24"] if "aime24" in benchmarks else benchmarks[:1]
    if heldout is None:
        heldout = [b for b in benchmarks if b not in search]
    for name in [*search, *heldout]:
        if name not in benchmarks:
            raise ValueError(f"benchmark {name!r} is not in the store; it holds: {', '.join(benchmarks)}")
    overlap = set(search) & set(heldout)
    if overlap:
        raise ValueError(f"benchmark(s) {', '.join(sorted(overlap))} cannot be both search and held-out")
    return list(search), list(heldout)


def build_table1(
    summaries: Sequence[Any],
    search: Sequence[str],
    heldout: Sequence[str],
    references: Sequence[PoolReference] = (),
) -> Table1:
    """Arrange summaries (and pool references) in the Table 1 layout.

    Rows are ordered per model (models in first-seen order), methods in the order
    their labels first appear, then the two reference rows of that model.
    """
    benchmarks = [*search, *heldout]
    models: dict[str, dict[str, dict[str, Cell]]] = {}
    for summary in summaries:
        s = as_record(summary)
        if s["benchmark"] in benchmarks:
            rows = models.setdefault(s["model"], {})
            rows.setdefault(method_label(s), {})[s["benchmark"]] = (s["accuracy"], s["tokens"])
    for ref in references:
        models.setdefault(ref.model, {})
    out = []
    for model, rows in models.items():
        for label, cells in rows.items():
            out.append(_row(model, label, "method", cells, benchmarks, heldout))
        refs = {r.benchmark: r for r in references if r.model == model and r.benchmark in benchmarks}
        if refs:
            n = max(r.pool_size for r in refs.values())
            for label, field_name in ((f"pool majority@{n}", "majority_accuracy"), (f"pool pass@{n}", "pass_accuracy")):
                cells = {b: (getattr(r, field_name), r.tokens) for b, r in refs.items()}
                out.append(_row(model, label, "reference", cells, benchmarks, heldout))
    return Table1(list(search), list(heldout), out)


def _row(model: str, label: str, kind: str, cells: dict[str, Cell], benchmarks: Sequence[str], heldout: Sequence[str]) -> Table1Row:
    held = [cells[b] for b in heldout if b in cells]
    average = None
    if heldout and len(held) == len(heldout):
        average = (float(np.mean([c[0] for c in held])), float(np.mean([c[1] for c in held])))
    return Table1Row(model, label, kind, {b: cells.get(b) for b in benchmarks}, average)


def format_table1(table: Table1) -> str:
    """The text form of Table 1: one block per model, accuracy (%) and tokens per column group."""
    groups = [f"{b} (search)" for b in table.search] + [f"{b} (held-out)" for b in table.heldout]
    if table.has_average:
        groups.append("held-out avg")
    header = ["model", "method", *(["acc %", "tokens"] * len(groups))]
    body: list[list[str] | None] = []
    for i, model in enumerate(table.models):
        if i:
            body.append(None)  # a rule between models
        for row in (r for r in table.rows if r.model == model):
            cells = [row.cells.get(b) for b in table.benchmarks]
            if table.has_average:
                cells.append(row.heldout_average)
            figures = []
            for cell in cells:
                figures += ["-", "-"] if cell is None else [fmt_accuracy(cell[0]), fmt_tokens(cell[1])]
            body.append([model, row.label, *figures])
    return render_table(header, body, groups=[("", 2), *((g, 2) for g in groups)])


def write_table1(table: Table1, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``table1.csv`` (one row per table row) and ``table1.json`` to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "table1.json"
    json_path.write_text(json.dumps(table.to_dict(), indent=2) + "\n")
    csv_path = out / "table1.csv"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        columns = [f"{b}_{k}" for b in table.benchmarks for k in ("accuracy", "tokens")]
        if table.has_average:
            columns += ["heldout_avg_accuracy", "heldout_avg_tokens"]
        writer.writerow(["model", "method", "kind", *columns])
        for row in table.rows:
            cells = [row.cells.get(b) for b in table.benchmarks]
            if table.has_average:
                cells.append(row.heldout_average)
            values = []
            for cell in cells:
                values += ["", ""] if cell is None else [f"{cell[0]:.4f}", f"{cell[1]:.1f}"]
            writer.writerow([row.model, row.label, row.kind, *values])
    return [csv_path, json_path]


# --------------------------------------------------------------------------- compare
def format_compare(summaries: Sequence[Any]) -> str:
    """A comparison table: per split, one row per evaluated controller (in the order
    given), with accuracy and tokens and their 95% intervals, sequential tokens and
    branches opened."""
    records = [as_record(s) for s in summaries]
    splits = list(dict.fromkeys(f"{s['model']}/{s['benchmark']}" for s in records))
    header = ["split", "method", "acc %", "acc 95% CI", "tokens", "tokens 95% CI", "sequential", "branches"]
    body: list[list[str] | None] = []
    for i, name in enumerate(splits):
        if i:
            body.append(None)
        for s in records:
            if f"{s['model']}/{s['benchmark']}" != name:
                continue
            (alo, ahi), (tlo, thi) = s["accuracy_ci"], s["tokens_ci"]
            body.append(
                [
                    name,
                    method_label(s),
                    f"{s['accuracy']:.2f}",
                    f"{alo:.1f}-{ahi:.1f}",
                    fmt_tokens(s["tokens"]),
                    f"{fmt_tokens(tlo)}-{fmt_tokens(thi)}",
                    fmt_tokens(s["sequential_tokens"]),
                    f"{s['branches_opened']:.1f}",
                ]
            )
    return render_table(header, body)


# --------------------------------------------------------------------------- rendering
def render_table(
    header: Sequence[str],
    body: Sequence[Sequence[str] | None],
    groups: Sequence[tuple[str, int]] = (),
    text_columns: int = 2,
) -> str:
    """Plain-text table: the first ``text_columns`` columns left-aligned, figures
    right-aligned; ``None`` rows become rules; ``groups`` (title, span) adds a centred
    header line above the column names."""
    rows = [list(r) for r in body if r is not None]
    widths = [max(len(str(r[i])) for r in [list(header), *rows]) for i in range(len(header))]
    # Widen group spans so each title fits over its columns.
    col = 0
    for title, span in groups:
        inner = sum(widths[col : col + span]) + 2 * (span - 1)
        if len(title) > inner:
            widths[col + span - 1] += len(title) - inner
        col += span

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < text_columns else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = []
    if groups:
        parts, col = [], 0
        for title, span in groups:
            inner = sum(widths[col : col + span]) + 2 * (span - 1)
            parts.append(title.center(inner))
            col += span
        out.append("  ".join(parts).rstrip())
    out.append(line(header))
    rule = "-" * len(line(["-" * w for w in widths]))
    out.append(rule)
    for r in body:
        out.append(rule if r is None else line(r))
    return "\n".join(out)
