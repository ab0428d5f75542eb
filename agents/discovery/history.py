"""The run directory is the history of a discovery run: one folder per round.

Layout of ``RUN_DIR``::

    config.json          the run's settings (a resumed run must match them)
    round-001/           one folder per finished round, written atomically
        round.json       status, candidate, failure, search-split points, usage, timing
        prompt.md        the prompt sent to the proposer
        response.md      the proposer's reply
        candidate.py     the module extracted from the reply (if any)
        sweep.json       full evaluation summaries per point and split (if evaluated)
        traces.json      annotated execution traces (if traced)
        traces.txt       the same, rendered as in the next prompt
        sandbox.log      the tail of the sandbox processes' output (if run)
    selection.json       the selected (round, point) over all rounds
    selected.py          the selected candidate's module
    heldout.json         the selected candidate on the held-out splits (if asked)

A round folder is first written as ``.round-NNN.tmp`` and then renamed, so a folder
named ``round-NNN`` is always complete; :func:`clean_partial` removes leftovers of an
interrupted round.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROUND_PREFIX = "round-"


@dataclass
class RoundRecord:
    """One finished round as read back from its folder.

    Attributes:
        round: the round number (1-based).
        data: the contents of ``round.json``.
        code: the candidate module ('' if none was extracted).
        traces: annotated traces ([] if none).
    """

    round: int
    data: dict[str, Any]
    code: str = ""
    traces: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True if the candidate was evaluated on every point."""
        return self.data.get("status") == "ok"

    @property
    def name(self) -> str:
        """The candidate's name, or ``-`` before it loaded."""
        return (self.data.get("candidate") or {}).get("name") or "-"

    @property
    def points(self) -> list[dict[str, Any]]:
        """The evaluated points (search splits)."""
        return self.data.get("points") or []

    @property
    def best(self) -> dict[str, Any] | None:
        """The round's best point (highest accuracy, ties to fewer tokens)."""
        return self.data.get("best_point")


def round_folder(run: str | os.PathLike, r: int) -> Path:
    """The folder of round ``r``."""
    return Path(run) / f"{ROUND_PREFIX}{r:03d}"


def finished_rounds(run: str | os.PathLike) -> list[int]:
    """The numbers of the complete round folders, ascending."""
    out = []
    for p in Path(run).glob(f"{ROUND_PREFIX}[0-9][0-9][0-9]"):
        if (p / "round.json").is_file():
            out.append(int(p.name[len(ROUND_PREFIX) :]))
    return sorted(out)


def clean_partial(run: str | os.PathLike) -> list[Path]:
    """Remove the temporary folders of rounds that were interrupted; the removed paths."""
    removed = []
    for p in Path(run).glob(f".{ROUND_PREFIX}*.tmp"):
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def write_round(run: str | os.PathLike, r: int, files: dict[str, str]) -> Path:
    """Write round ``r``'s files atomically: a temporary folder, then one rename."""
    final = round_folder(run, r)
    if final.exists():
        raise FileExistsError(f"{final} exists; a finished round is never rewritten")
    tmp = Path(run) / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, text in files.items():
        (tmp / name).write_text(text, encoding="utf-8")
    os.replace(tmp, final)
    return final


def read_round(run: str | os.PathLike, r: int) -> RoundRecord:
    """Read one finished round."""
    folder = round_folder(run, r)
    try:
        data = json.loads((folder / "round.json").read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{folder / 'round.json'}: not valid JSON ({err})") from None
    code_path, traces_path = folder / "candidate.py", folder / "traces.json"
    code = code_path.read_text(encoding="utf-8") if code_path.is_file() else ""
    traces = json.loads(traces_path.read_text(encoding="utf-8")) if traces_path.is_file() else []
    return RoundRecord(round=r, data=data, code=code, traces=traces)


def load_history(run: str | os.PathLike) -> list[RoundRecord]:
    """Every finished round of a run, in order."""
    return [read_round(run, r) for r in finished_rounds(run)]


def select_best(records: Sequence[RoundRecord]) -> tuple[RoundRecord, dict[str, Any]] | None:
    """The best (round, point) over all rounds and points: highest search accuracy,
    ties to fewer tokens, then the earlier round and point. None if no round worked."""
    best = None
    for rec in records:
        for p in rec.points if rec.ok else []:
            key = (-round(p["accuracy"], 9), round(p["tokens"], 6), rec.round, p["index"])
            if best is None or key < best[0]:
                best = (key, rec, p)
    return None if best is None else (best[1], best[2])


def monotonicity(points: Sequence[dict[str, Any]]) -> list[str]:
    """Where mean tokens fall as beta grows, per split: one sentence each."""
    out = []
    ordered = sorted((p for p in points if p.get("beta") is not None), key=lambda p: p["beta"])
    splits = list(ordered[0]["splits"]) if ordered else []
    for name in splits:
        for a, b in zip(ordered, ordered[1:]):
            t0, t1 = a["splits"][name]["tokens"], b["splits"][name]["tokens"]
            if t1 < t0:
                out.append(
                    f"{name}: mean tokens fall from {t0:.0f} at beta {a['beta']:g} to {t1:.0f} at beta {b['beta']:g}"
                )
    return out


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write JSON to ``path`` through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def to_json(obj: Any) -> str:
    """Indented JSON text (non-JSON values as strings)."""
    return json.dumps(obj, indent=2, default=str) + "\n"
