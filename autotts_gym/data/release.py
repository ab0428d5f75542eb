"""Import the AutoTTS public release format (facts section 3) into a :class:`Store`.

A release file is a JSON list of questions; each question is an object with
``question`` (str), ``gold_answer`` (str), ``probe_freq`` (int, Delta),
``final_answers_trace`` (list of str, one per branch) and ``each_branch`` (list of
``[probe_answers: list[str], total_tokens: int, final_answer: str]``).

Every problem is reported as :class:`~autotts_gym.data.store.StoreError` naming the file,
the question index, the branch and the field; the bounds are those of
:mod:`autotts_gym.data.validation` (docs/store-format.md, "Bounds on the data"). Nothing is
written unless every file is valid.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autotts_gym.data.store import Split, SplitInfo, Store, StoreError
from autotts_gym.data.validation import (
    ALLOWED_ANSWER,
    ALLOWED_INTERVAL,
    ALLOWED_QUESTION,
    ALLOWED_TOTAL_TOKENS,
    MAX_ANSWER_CHARS,
    MAX_INTERVAL_TOKENS,
    MAX_QUESTION_CHARS,
    MAX_TOTAL_TOKENS,
    MIN_INTERVAL_TOKENS,
    PROBES_ABOVE,
    PROBES_BELOW,
    JsonPath,
    answers_ok,
    check_answers,
    check_int,
    check_probe_count,
    check_text,
    load_json,
    short,
    where,
)

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
    """Validate one release JSON file (strict JSON, every bound) and build its split."""
    path = Path(path)
    data = load_json(path, describe=describe_release_path)
    if not isinstance(data, list):
        raise StoreError(f"{path}: expected a JSON list of questions, got {type(data).__name__}")
    if not data:
        raise StoreError(f"{path}: the list of questions is empty")
    questions, golds, pools = [], [], []
    delta = None
    for qi, item in enumerate(data):
        q, gold, freq, pool = _validate_question(item, path, qi)
        if delta is None:
            delta = freq
        elif freq != delta:
            raise StoreError(f"{where(path, question=qi, field=repr('probe_freq'))}: is {freq}, but question 0 has {delta}")
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


BRANCH_PARTS = ("probe_answers", "total_tokens", "final_answer")


def describe_release_path(path: JsonPath) -> str:
    """``question 3, branch 5, field 'total_tokens' (each_branch[5][1])`` for a JSON path."""
    if not path or not isinstance(path[0], int):
        return ""
    question = path[0]
    if len(path) == 1:
        return where(question=question)
    name = path[1]
    if name == "each_branch" and len(path) >= 3 and isinstance(path[2], int):
        branch = path[2]
        rest = "".join(f"[{p}]" for p in path[3:])
        if len(path) >= 4 and isinstance(path[3], int) and 0 <= path[3] < 3:
            inner = "".join(f"[{p}]" for p in path[4:])
            return where(
                question=question, branch=branch, field=f"{BRANCH_PARTS[path[3]]!r}{inner} (each_branch[{branch}]{rest})"
            )
        return where(question=question, branch=branch, field=f"each_branch[{branch}]{rest}")
    rest = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[2:])
    return where(question=question, field=f"{name!r}{rest}")


def _validate_question(item: Any, path: Path, qi: int) -> tuple[str, str, int, list[tuple[list[str], int, str]]]:
    at = where(path, question=qi)
    if not isinstance(item, dict):
        raise StoreError(f"{at}: expected an object, got {type(item).__name__}")
    missing = [f for f in REQUIRED_FIELDS if f not in item]
    if missing:
        raise StoreError(f"{at}: missing field(s) {', '.join(repr(m) for m in missing)}")
    unknown = sorted(set(item) - set(REQUIRED_FIELDS))
    if unknown:
        raise StoreError(f"{at}: unknown field(s) {', '.join(repr(u) for u in unknown)}")

    def field(name: str, branch: int | None = None) -> str:
        return where(path, question=qi, branch=branch, field=name)

    text = check_text(item["question"], MAX_QUESTION_CHARS, field("'question'"), ALLOWED_QUESTION)
    gold = check_text(item["gold_answer"], MAX_ANSWER_CHARS, field("'gold_answer'"), ALLOWED_ANSWER)
    freq = check_int(item["probe_freq"], MIN_INTERVAL_TOKENS, MAX_INTERVAL_TOKENS, field("'probe_freq'"), ALLOWED_INTERVAL)
    branches = item["each_branch"]
    if not isinstance(branches, list):
        raise StoreError(f"{field(repr('each_branch'))}: must be a list, got {type(branches).__name__}")
    if not branches:
        raise StoreError(f"{field(repr('each_branch'))}: is empty")
    trace = item["final_answers_trace"]
    if not isinstance(trace, list):
        raise StoreError(f"{field(repr('final_answers_trace'))}: must be a list, got {type(trace).__name__}")
    if len(trace) != len(branches):
        raise StoreError(
            f"{field(repr('final_answers_trace'))}: has {len(trace)} answers for {len(branches)} branches in 'each_branch'"
        )
    pool = []
    for bi, branch in enumerate(branches):
        if type(branch) is not list or len(branch) != 3:
            raise StoreError(
                f"{field(f'each_branch[{bi}]', bi)}: must be [probe_answers, total_tokens, final_answer], got {short(branch)}"
            )
        probes, total, final = branch
        # Inline fast checks; the checkers (which build the messages) run only on a failure.
        if not answers_ok(probes):
            check_answers(
                probes,
                field(f"'probe_answers' (each_branch[{bi}][0])", bi),
                lambda i, bi=bi: field(f"'probe_answers'[{i}] (each_branch[{bi}][0][{i}])", bi),
            )
        if type(total) is not int or not 0 <= total <= MAX_TOTAL_TOKENS:
            check_int(total, 0, MAX_TOTAL_TOKENS, field(f"'total_tokens' (each_branch[{bi}][1])", bi),
                      ALLOWED_TOTAL_TOKENS)
        if type(final) is not str or not 0 < len(final) <= MAX_ANSWER_CHARS:
            check_text(final, MAX_ANSWER_CHARS, field(f"'final_answer' (each_branch[{bi}][2])", bi), ALLOWED_ANSWER)
        n = len(probes)
        if n * freq > total + PROBES_ABOVE * freq or n * freq < total - PROBES_BELOW * freq:
            check_probe_count(n, total, freq, field(f"'probe_answers' (each_branch[{bi}][0])", bi))
        if trace[bi] != final:
            raise StoreError(
                f"{field(f'final_answers_trace[{bi}]', bi)}: is {short(trace[bi])} but "
                f"'each_branch'[{bi}] ends with {short(final)}"
            )
        pool.append((probes, total, final))
    return text, gold, freq, pool


def import_release(sources: Sequence[str | os.PathLike]) -> Store:
    """Read and validate release files (files or folders) into an in-memory store."""
    files = find_release_files(sources)
    splits = [read_release_file(f, model, bench) for f, model, bench in files]
    names = [s.name for s in splits]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise StoreError(f"two source files map to the same split(s): {', '.join(dupes)}")
    return Store(splits)
