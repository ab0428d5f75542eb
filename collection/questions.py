"""Question sets: read questions and gold answers from JSONL, JSON, CSV or Parquet.

The field names are configurable (``--question-field``, ``--answer-field``) because every
benchmark spells them differently (``problem``/``answer``, ``question``/``solution``, ...).
Errors name the file, the record and the field.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMATS = ("jsonl", "json", "csv", "parquet")


class QuestionFileError(ValueError):
    """A question file cannot be read; the message names file, record and field."""


@dataclass(frozen=True)
class Question:
    """One question of a question set.

    Attributes:
        index: position in the file (0-based, the store's question index).
        text: the question.
        gold: the gold answer as a string.
    """

    index: int
    text: str
    gold: str


def detect_format(path: Path) -> str:
    """``jsonl``, ``json``, ``csv`` or ``parquet`` from the file name."""
    suffix = path.suffix.lower().lstrip(".")
    aliases = {"jsonl": "jsonl", "ndjson": "jsonl", "json": "json", "csv": "csv", "parquet": "parquet", "pq": "parquet"}
    if suffix not in aliases:
        raise QuestionFileError(f"{path}: unknown question file type {path.suffix!r}; use one of {', '.join(FORMATS)}")
    return aliases[suffix]


def read_questions(
    path: str | os.PathLike,
    question_field: str = "question",
    answer_field: str = "answer",
    limit: int | None = None,
) -> list[Question]:
    """Read a question set.

    Args:
        path: a ``.jsonl``, ``.json`` (a list of objects), ``.csv`` or ``.parquet`` file.
        question_field: the field holding the question text.
        answer_field: the field holding the gold answer (numbers are turned into strings).
        limit: keep only the first ``limit`` questions.
    """
    path = Path(path)
    if not path.is_file():
        raise QuestionFileError(f"{path}: no such question file")
    records = _READERS[detect_format(path)](path)
    if limit is not None:
        records = records[:limit]
    if not records:
        raise QuestionFileError(f"{path}: no questions")
    questions = []
    for i, record in enumerate(records):
        text = _field(path, i, record, question_field)
        gold = _field(path, i, record, answer_field)
        questions.append(Question(index=i, text=text, gold=gold))
    return questions


def _field(path: Path, i: int, record: Any, name: str) -> str:
    if not isinstance(record, dict):
        raise QuestionFileError(f"{path}: record {i} is a {type(record).__name__}, expected an object")
    if name not in record:
        raise QuestionFileError(f"{path}: record {i} has no field {name!r}; its fields are {', '.join(map(repr, record))}")
    value = record[name]
    if isinstance(value, bool) or value is None or not isinstance(value, (str, int, float)):
        raise QuestionFileError(f"{path}: record {i}, field {name!r} must be a string or a number, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 42.0 from a CSV/Parquet float column is the answer 42
    text = str(value).strip()
    if not text:
        raise QuestionFileError(f"{path}: record {i}, field {name!r} is empty")
    return text


def _read_jsonl(path: Path) -> list[Any]:
    records = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise QuestionFileError(f"{path}: line {lineno} is not valid JSON: {err.msg}") from None
    return records


def _read_json(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise QuestionFileError(f"{path}: malformed JSON at line {err.lineno}: {err.msg}") from None
    if not isinstance(data, list):
        raise QuestionFileError(f"{path}: expected a JSON list of question objects, got {type(data).__name__}")
    return data


def _read_csv(path: Path) -> list[Any]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _read_parquet(path: Path) -> list[Any]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as err:  # pyarrow raises several types for a bad file
        raise QuestionFileError(f"{path}: unreadable Parquet file: {err}") from None


_READERS = {"jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv, "parquet": _read_parquet}
