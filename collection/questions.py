"""Question sets: read questions and gold answers from JSONL, JSON, CSV or Parquet.

The field names are configurable (``--question-field``, ``--answer-field``) because every
benchmark spells them differently (``problem``/``answer``, ``question``/``solution``, ...).
Errors name the file, the record and the field. JSON and JSONL are read strictly
(:func:`autotts_gym.data.validation.load_json`: no repeated keys, no lone surrogates, no
nesting too deep to parse); a question has at most ``MAX_QUESTION_CHARS`` characters and a
gold answer at most ``MAX_ANSWER_CHARS`` (docs/store-format.md, "Bounds on the data").
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotts_gym.data.validation import (
    MAX_ANSWER_CHARS,
    MAX_QUESTION_CHARS,
    JsonPath,
    JsonSyntaxError,
    StoreError,
    json_path_text,
    load_json,
    text_problem,
)

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
        text = _field(path, i, record, question_field, MAX_QUESTION_CHARS)
        gold = _field(path, i, record, answer_field, MAX_ANSWER_CHARS)
        questions.append(Question(index=i, text=text, gold=gold))
    return questions


def _field(path: Path, i: int, record: Any, name: str, max_chars: int) -> str:
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
    problem = text_problem(text, max_chars)
    if problem is not None:
        raise QuestionFileError(
            f"{path}: record {i}, field {name!r}: {problem} (allowed: at most {max_chars} characters, valid Unicode)"
        )
    return text


def _describe_record(json_path: JsonPath) -> str:
    """``record 3, field answer`` for a JSON path into a list of question objects."""
    if not json_path or not isinstance(json_path[0], int):
        return ""
    rest = json_path_text(json_path[1:]) if len(json_path) > 1 else ""
    return f"record {json_path[0]}" + (f", field {rest}" if rest else "")


def _read_jsonl(path: Path) -> list[Any]:
    records: list[Any] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise QuestionFileError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = load_json(path, _describe_line(len(records), lineno), text=line)
        except JsonSyntaxError as err:
            raise QuestionFileError(f"{path}: line {lineno} is not valid JSON: {err.msg} (column {err.colno})") from None
        except StoreError as err:
            raise QuestionFileError(str(err)) from None
        records.append(record)
    return records


def _describe_line(record: int, lineno: int) -> Any:
    def describe(json_path: JsonPath) -> str:
        rest = json_path_text(json_path) if json_path else ""
        return f"line {lineno} (record {record})" + (f", field {rest}" if rest else "")

    return describe


def _read_json(path: Path) -> list[Any]:
    try:
        data = load_json(path, _describe_record)
    except StoreError as err:
        raise QuestionFileError(str(err)) from None
    if not isinstance(data, list):
        raise QuestionFileError(f"{path}: expected a JSON list of question objects, got {type(data).__name__}")
    return data


def _read_csv(path: Path) -> list[Any]:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    except UnicodeDecodeError as err:
        raise QuestionFileError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def _read_parquet(path: Path) -> list[Any]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as err:  # pyarrow raises several types for a bad file
        raise QuestionFileError(f"{path}: unreadable Parquet file: {err}") from None


_READERS = {"jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv, "parquet": _read_parquet}
