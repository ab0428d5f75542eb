"""Import the AutoTTS public release format (facts section 3) into a :class:`Store`.

A release file is a JSON list of questions; each question is an object with
``question`` (str), ``gold_answer`` (str), ``probe_freq`` (int, Delta),
``final_answers_trace`` (list of str, one per branch) and ``each_branch`` (list of
``[probe_answers: list[str], total_tokens: int, final_answer: str]``).

Every problem is reported as :class:`~autotts_gym.store.StoreError` naming the file,
the question index and the field; nothing is written unless every file is valid.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autotts_gym.store import Split, SplitInfo, Store, StoreError

REQUIRED_FIELDS = ("question", "gold_answer", "probe_freq", "final_answers_trace", "each_branch")
RELEASE_SAMPLING = {"temperature": 0.7, "max_tokens": 40000, "trajectories": 128}


def find_release_files(sources: Sequence[str | os.PathLike]) -> list[tuple[Path, str, str]]:
    """``(file, model, benchmark)`` for each release file under the sources.

    A file ``.../<model>/<benchmark>.json`` is named by its folder and stem; a folder is
    searched for ``<model>/<benchmark>.json`` (or ``<benchmark>.json`` directly inside).
    """
    found: list[tuple[Path, str, str]] = []
    for source in sources:
        path = Path(source)
        if path.is_file():
            found.append((path, path.parent.name or "model", path.stem))
        elif path.is_dir():
            files = sorted(path.glob("*/*.json")) or sorted(path.glob("*.json"))
            if not files:
                raise StoreError(f"{path}: no release files (<model>/<benchmark>.json) found")
            for f in files:
                found.append((f, f.parent.name, f.stem))
        else:
            raise StoreError(f"{path}: no such file or folder")
    return found


def read_release_file(path: str | os.PathLike, model: str, benchmark: str) -> Split:
    """Validate one release JSON file and build its split."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as err:
        raise StoreError(f"{path}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    except UnicodeDecodeError as err:
        raise StoreError(f"{path}: not UTF-8 text: {err}") from None
    if not isinstance(data, list):
        raise StoreError(f"{path}: expected a JSON list of questions, got {type(data).__name__}")
    if not data:
        raise StoreError(f"{path}: the list of questions is empty")
    questions, golds, pools = [], [], []
    delta = None
    for qi, item in enumerate(data):
        where = f"{path}: question {qi}"
        q, gold, freq, pool = _validate_question(item, where)
        if delta is None:
            delta = freq
        elif freq != delta:
            raise StoreError(f"{where}: field 'probe_freq' is {freq}, but question 0 has {delta}")
        questions.append(q)
        golds.append(gold)
        pools.append(pool)
    info = SplitInfo(
        model=model,
        benchmark=benchmark,
        interval_tokens=int(delta),
        sampling=dict(RELEASE_SAMPLING),
        source=str(path),
    )
    return Split.from_lists(info, questions, golds, pools)


def _validate_question(item: Any, where: str) -> tuple[str, str, int, list[tuple[list[str], int, str]]]:
    if not isinstance(item, dict):
        raise StoreError(f"{where}: expected an object, got {type(item).__name__}")
    missing = [f for f in REQUIRED_FIELDS if f not in item]
    if missing:
        raise StoreError(f"{where}: missing field(s) {', '.join(repr(m) for m in missing)}")
    unknown = sorted(set(item) - set(REQUIRED_FIELDS))
    if unknown:
        raise StoreError(f"{where}: unknown field(s) {', '.join(repr(u) for u in unknown)}")
    for name in ("question", "gold_answer"):
        if not isinstance(item[name], str):
            raise StoreError(f"{where}: field {name!r} must be a string, got {type(item[name]).__name__}")
    freq = item["probe_freq"]
    if isinstance(freq, bool) or not isinstance(freq, int) or freq <= 0:
        raise StoreError(f"{where}: field 'probe_freq' must be a positive integer, got {freq!r}")
    branches = item["each_branch"]
    if not isinstance(branches, list):
        raise StoreError(f"{where}: field 'each_branch' must be a list, got {type(branches).__name__}")
    if not branches:
        raise StoreError(f"{where}: field 'each_branch' is empty")
    trace = item["final_answers_trace"]
    if not isinstance(trace, list):
        raise StoreError(f"{where}: field 'final_answers_trace' must be a list, got {type(trace).__name__}")
    if len(trace) != len(branches):
        raise StoreError(
            f"{where}: field 'final_answers_trace' has {len(trace)} answers for {len(branches)} branches in 'each_branch'"
        )
    pool = []
    for bi, branch in enumerate(branches):
        bwhere = f"{where}: field 'each_branch'[{bi}]"
        if not isinstance(branch, list) or len(branch) != 3:
            raise StoreError(f"{bwhere} must be [probe_answers, total_tokens, final_answer], got {_short(branch)}")
        probes, total, final = branch
        if not isinstance(probes, list):
            raise StoreError(f"{bwhere}[0] (probe_answers) must be a list, got {type(probes).__name__}")
        for pi, p in enumerate(probes):
            if not isinstance(p, str):
                raise StoreError(f"{bwhere}[0][{pi}] (probe answer) must be a string, got {_short(p)}")
        if isinstance(total, bool) or not isinstance(total, int):
            raise StoreError(f"{bwhere}[1] (total_tokens) must be an integer, got {_short(total)}")
        if total < 0:
            raise StoreError(f"{bwhere}[1] (total_tokens) is negative: {total}")
        if not isinstance(final, str):
            raise StoreError(f"{bwhere}[2] (final_answer) must be a string, got {_short(final)}")
        if trace[bi] != final:
            raise StoreError(
                f"{where}: field 'final_answers_trace'[{bi}] is {_short(trace[bi])} but "
                f"'each_branch'[{bi}] ends with {_short(final)}"
            )
        pool.append((probes, total, final))
    return item["question"], item["gold_answer"], freq, pool


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def import_release(sources: Sequence[str | os.PathLike]) -> Store:
    """Read and validate release files (files or folders) into an in-memory store."""
    files = find_release_files(sources)
    splits = [read_release_file(f, model, bench) for f, model, bench in files]
    names = [s.name for s in splits]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise StoreError(f"two source files map to the same split(s): {', '.join(dupes)}")
    return Store(splits)
