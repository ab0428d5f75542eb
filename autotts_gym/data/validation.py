"""Bounds on replay data and the strict JSON reader every loader uses.

Every file that brings trajectories into the package (release JSON, a store's
``manifest.json`` and Parquet files, the collector's question and shard files) is checked
once, where it is read, against the bounds below. A violation is a :class:`StoreError`
whose message names the file, the question, the branch and the field::

    <file>: question 3, branch 17, field 'total_tokens' (each_branch[17][1]): is 10000000000000000000000000 (allowed: integers 0..10000000)

The bounds and the figures of the real release they were chosen from are documented in
docs/store-format.md ("Bounds on the data").
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from autotts_gym.data.store import Split

# ----------------------------------------------------------------------------- bounds
MAX_TOTAL_TOKENS = 10_000_000
"""Longest trajectory, in tokens (the release's longest has 41,509)."""
MIN_INTERVAL_TOKENS = 1
"""Smallest Delta (``probe_freq``, ``interval_tokens``)."""
MAX_INTERVAL_TOKENS = MAX_TOTAL_TOKENS
"""Largest Delta: an interval longer than the longest trajectory could never end (release: 500)."""
PROBES_ABOVE = 2
"""``len(probe_answers) <= total_tokens / Delta + PROBES_ABOVE`` (release: at most +0.822)."""
PROBES_BELOW = 16
"""``len(probe_answers) >= total_tokens / Delta - PROBES_BELOW`` (release: at least -8.4)."""
MAX_ANSWER_CHARS = 4096
"""Longest answer string (probe, final or gold), in characters (release: 121)."""
MAX_QUESTION_CHARS = 1_000_000
"""Longest question text, in characters (release: 1,734)."""
MAX_JSON_DEPTH = 64
"""Deepest JSON nesting reported when a file is too deep to parse (release files have 5 levels)."""
MAX_PROBES_PER_SPLIT = 2**31 - 1
"""Probe answers of one split: the Parquet list offsets of ``probe_answers`` are int32."""

ALLOWED_TOTAL_TOKENS = f"integers 0..{MAX_TOTAL_TOKENS}"
ALLOWED_INTERVAL = f"integers {MIN_INTERVAL_TOKENS}..{MAX_INTERVAL_TOKENS}"
ALLOWED_ANSWER = f"a non-empty string of at most {MAX_ANSWER_CHARS} characters, valid Unicode"
ALLOWED_QUESTION = f"a non-empty string of at most {MAX_QUESTION_CHARS} characters, valid Unicode"
ALLOWED_PROBES = (
    f"total_tokens / Delta - {PROBES_BELOW} <= len(probe_answers) <= total_tokens / Delta + {PROBES_ABOVE}"
)


class StoreError(ValueError):
    """A store or source file is malformed; the message names file, question and field."""


class JsonSyntaxError(StoreError):
    """Malformed JSON; ``lineno``, ``colno`` and ``msg`` as in :class:`json.JSONDecodeError`."""

    def __init__(self, message: str, lineno: int, colno: int, msg: str) -> None:
        super().__init__(message)
        self.lineno, self.colno, self.msg = lineno, colno, msg


# ----------------------------------------------------------------------------- messages
def where(
    file: str | os.PathLike | None = None,
    *,
    split: str | None = None,
    question: int | None = None,
    branch: int | None = None,
    field: str | None = None,
) -> str:
    """``"<file>: split S, question Q, branch B, field F"`` with the parts that are known."""
    parts = []
    if split is not None:
        parts.append(f"split {split}")
    if question is not None:
        parts.append(f"question {question}")
    if branch is not None:
        parts.append(f"branch {branch}")
    if field is not None:
        parts.append(f"field {field}")
    text = ", ".join(parts)
    if file is None:
        return text
    return f"{file}: {text}" if text else str(file)


def bound_error(location: str, problem: str, allowed: str | None = None) -> StoreError:
    """``StoreError("<location>: <problem> (allowed: <allowed>)")``."""
    return StoreError(f"{location}: {problem}" + (f" (allowed: {allowed})" if allowed else ""))


def short(value: Any, limit: int = 60) -> str:
    """A short printable form of a JSON value for an error message."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError, RecursionError):
            text = repr(value)
    if isinstance(value, int) and not isinstance(value, bool) and len(text) > limit:
        return f"an integer of {len(text.lstrip('-'))} digits ({text[:12]}...)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------- scalar checks
def check_int(value: Any, lo: int, hi: int, location: str, allowed: str) -> int:
    """``value`` if it is a JSON integer (not a bool, not a float) in ``lo..hi``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise bound_error(location, f"must be an integer, got {type(value).__name__} {short(value)}", allowed)
    if not lo <= value <= hi:
        what = "is negative" if value < 0 <= lo else "is out of range"
        raise bound_error(location, f"{what}: {short(value)}", allowed)
    return value


def text_problem(value: Any, max_chars: int) -> str | None:
    """What is wrong with ``value`` as a non-empty string of at most ``max_chars`` characters."""
    if not isinstance(value, str):
        return "must be a string, got " + ("null" if value is None else f"{type(value).__name__} {short(value)}")
    if not value:
        return "is empty"
    if len(value) > max_chars:
        return f"has {len(value)} characters"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            return f"holds a lone surrogate {value[err.start]!r} at character {err.start}"
    return None


def check_text(value: Any, max_chars: int, location: str, allowed: str) -> str:
    """``value`` if it is a non-empty string of at most ``max_chars`` characters."""
    problem = text_problem(value, max_chars)
    if problem is not None:
        raise bound_error(location, problem, allowed)
    return value


def answers_ok(values: Any) -> bool:
    """True if ``values`` is a list of non-empty strings of at most MAX_ANSWER_CHARS characters.

    C-level passes only (the common case); a surrogate is not looked for (:func:`load_json`
    refuses them, and a Parquet string is always valid Unicode).
    """
    if type(values) is not list:
        return False
    if not values:
        return True
    if set(map(type, values)) != {str}:
        return False
    lengths = list(map(len, values))
    return min(lengths) > 0 and max(lengths) <= MAX_ANSWER_CHARS


def check_answers(values: Any, location: str, item_location: Callable[[int], str] | None = None) -> list[str]:
    """``values`` if it is a list of answer strings within the bounds (fast path first).

    ``item_location(i)`` names item ``i`` in a message (default: ``location[i]``).
    """
    if not isinstance(values, list):
        raise bound_error(location, f"must be a list of strings, got {type(values).__name__} {short(values)}")
    if answers_ok(values):
        return values
    for i, v in enumerate(values):
        check_text(v, MAX_ANSWER_CHARS, item_location(i) if item_location else f"{location}[{i}]", ALLOWED_ANSWER)
    return values


def check_probe_count(num_probes: int, total_tokens: int, delta: int, location: str) -> None:
    """``len(probe_answers)`` must agree with ``total_tokens / Delta`` within the slack."""
    if num_probes * delta > total_tokens + PROBES_ABOVE * delta:
        raise bound_error(
            location,
            f"{num_probes} probe answers for total_tokens {total_tokens} (at most {total_tokens // delta + PROBES_ABOVE} "
            f"with Delta {delta})",
            ALLOWED_PROBES,
        )
    if num_probes * delta < total_tokens - PROBES_BELOW * delta:
        raise bound_error(
            location,
            f"{num_probes} probe answers for total_tokens {total_tokens} (at least "
            f"{-((PROBES_BELOW * delta - total_tokens) // delta)} with Delta {delta})",
            ALLOWED_PROBES,
        )


# ----------------------------------------------------------------------------- strict JSON
JsonPath = tuple[Any, ...]
"""Keys and list indices from the document's root to a value."""

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.S)
_LONE_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_LONG_INTEGER = re.compile(r"\d{4000,}")


class _DuplicateKeys(dict):
    """An object with a repeated key (the last value wins in ``dict``; we refuse it)."""

    duplicate: str = ""


def _pairs_hook(found: list[bool]) -> Callable[[list[tuple[str, Any]]], dict]:
    def hook(pairs: list[tuple[str, Any]]) -> dict:
        out = dict(pairs)
        if len(out) == len(pairs):
            return out
        seen: set[str] = set()
        dup = _DuplicateKeys(out)
        dup.duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))
        found.append(True)
        return dup

    return hook


def path_at(text: str, offset: int, max_depth: int | None = None) -> JsonPath:
    """The JSON path of the value at character ``offset`` of ``text``.

    With ``max_depth``, the path of the first point where the nesting exceeds it (if that
    comes before ``offset``). Used only to locate an error; tolerant of broken JSON.
    """
    stack: list[list[Any]] = []  # [kind, index or key, awaiting a key]
    for m in _TOKEN.finditer(text, 0, offset):
        tok = m.group()
        c = tok[0]
        if c == '"':
            if stack and stack[-1][0] == "{" and stack[-1][2]:
                try:
                    stack[-1][1] = json.loads(tok)
                except ValueError:
                    stack[-1][1] = tok[1:-1]
                stack[-1][2] = False
        elif c in "[{":
            stack.append([c, 0 if c == "[" else None, c == "{"])
            if max_depth is not None and len(stack) > max_depth:
                break
        elif c in "]}":
            if stack:
                stack.pop()
        elif stack:  # a comma
            if stack[-1][0] == "[":
                stack[-1][1] += 1
            else:
                stack[-1][2] = True
    return tuple(e[1] for e in stack if e[1] is not None)


def _find(value: Any, test: Callable[[Any], Any]) -> tuple[JsonPath, Any] | None:
    """Depth-first: the path and the result of the first node for which ``test`` is truthy."""
    todo: list[tuple[JsonPath, Any]] = [((), value)]
    while todo:
        path, node = todo.pop()
        hit = test(node)
        if hit:
            return path, hit
        if isinstance(node, dict):
            todo.extend(reversed([(path + (k,), v) for k, v in node.items()]))
        elif isinstance(node, list):
            todo.extend(reversed([(path + (i,), v) for i, v in enumerate(node)]))
    return None


def _lone_surrogate(node: Any) -> str | None:
    if isinstance(node, dict):
        for k in node:
            if not k.isascii():
                try:
                    k.encode("utf-8")
                except UnicodeEncodeError:
                    return f"key {k!r} holds a lone surrogate"
        return None
    if isinstance(node, str) and not node.isascii():
        try:
            node.encode("utf-8")
        except UnicodeEncodeError as err:
            return f"holds a lone surrogate {node[err.start]!r} at character {err.start}"
    return None


def json_path_text(path: JsonPath) -> str:
    """``splits[0].sampling`` style text of a JSON path."""
    text = ""
    for p in path:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text or "(top level)"


def default_describe(path: JsonPath) -> str:
    """A location for a JSON path in a file of no particular shape (``""`` for the top level)."""
    return f"field {json_path_text(path)}" if path else ""


def _at(file: Path, location: str) -> str:
    return f"{file}: {location}" if location else str(file)


def load_json(
    path: str | os.PathLike,
    describe: Callable[[JsonPath], str] = default_describe,
    text: str | None = None,
) -> Any:
    """Parse a JSON file strictly; every failure is a :class:`StoreError` naming the file.

    Refused: bytes that are not UTF-8, malformed JSON, nesting too deep for the parser,
    integers too long to convert, a key repeated in one object, and strings holding a
    lone surrogate (``"\\ud800"``). ``describe(path)`` turns the JSON path of the culprit
    into words (``"question 3, branch 5, field 'gold_answer'"``). ``text``, if given, is
    parsed instead of the file's content (the file name is still reported).
    """
    path = Path(path)
    if text is None:
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            prefix = raw[: err.start].decode("utf-8", errors="replace")
            line = prefix.count("\n") + 1
            raise bound_error(
                _at(path, describe(path_at(prefix, len(prefix)))),
                f"not UTF-8 text: byte {raw[err.start]:#04x} at line {line} ({err.reason})",
                "UTF-8 text",
            ) from None
    else:
        raw = text.encode("utf-8", errors="surrogatepass")
    if text.startswith("\ufeff"):
        text = text[1:]
    found: list[bool] = []
    try:
        data = json.loads(text, object_pairs_hook=_pairs_hook(found))
    except json.JSONDecodeError as err:
        loc = _at(path, describe(path_at(text, err.pos)))
        raise JsonSyntaxError(
            f"{loc}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}", err.lineno, err.colno, err.msg
        ) from None
    except RecursionError:
        deep = path_at(text, len(text), max_depth=MAX_JSON_DEPTH)
        raise bound_error(
            _at(path, describe(deep[:6])),
            f"JSON nested deeper than {MAX_JSON_DEPTH} levels below this point",
            f"at most {MAX_JSON_DEPTH} levels of lists and objects",
        ) from None
    except ValueError as err:  # e.g. an integer of more than 4300 digits
        m = _LONG_INTEGER.search(text)
        loc = _at(path, describe(path_at(text, m.start())) if m else "")
        digits = f"an integer of {len(m.group())} digits" if m else str(err)
        raise bound_error(loc, f"unreadable number: {digits}", "JSON numbers within the field's bounds") from None
    if found:
        hit = _find(data, lambda n: isinstance(n, _DuplicateKeys) and n.duplicate)
        if hit is not None:
            obj_path, key = hit
            raise bound_error(
                _at(path, describe(obj_path + (key,))), f"key {key!r} appears twice in one object", "each key once"
            )
    if _LONE_SURROGATE_ESCAPE.search(raw):
        hit = _find(data, _lone_surrogate)
        if hit is not None:
            raise bound_error(_at(path, describe(hit[0])), hit[1], "valid Unicode, surrogates only in pairs")
    return data


# ----------------------------------------------------------------------------- columnar checks
def check_split(
    split: Split,
    file: str | os.PathLike | None = None,
    question_file: str | os.PathLike | None = None,
) -> None:
    """The bounds on one split in columnar form, vectorised (a store on load and on save).

    ``file`` names the branches' source (``branches.parquet``) and ``question_file`` the
    questions' one (default: ``file``); with neither, the split is named alone.
    """
    name = split.info.name
    qfile = question_file if question_file is not None else file
    delta = split.info.interval_tokens
    check_int(delta, MIN_INTERVAL_TOKENS, MAX_INTERVAL_TOKENS, where(file, split=name, field="interval_tokens"),
              ALLOWED_INTERVAL)
    branch_offsets, probe_offsets = split.branch_offsets, split.probe_offsets
    if int(probe_offsets[-1]) > MAX_PROBES_PER_SPLIT:
        raise bound_error(where(file, split=name, field="probe_answers"),
                          f"{int(probe_offsets[-1])} probe answers in one split", f"at most {MAX_PROBES_PER_SPLIT}")
    question_of = np.repeat(np.arange(split.num_questions), np.diff(branch_offsets))

    def fail_at(b: int, field: str, problem: str, allowed: str) -> StoreError:
        q = int(question_of[b])
        return bound_error(
            where(file, split=name, question=q, branch=b - int(branch_offsets[q]), field=field), problem, allowed
        )

    totals = split.total_tokens
    bad = (totals < 0) | (totals > MAX_TOTAL_TOKENS)
    if bad.any():
        b = int(np.argmax(bad))
        raise fail_at(b, "total_tokens", f"is {'negative' if totals[b] < 0 else 'out of range'}: {int(totals[b])}",
                      ALLOWED_TOTAL_TOKENS)
    counts = np.diff(probe_offsets)
    scaled = counts * np.int64(delta)  # < 2**31 * 10**7 < 2**63: no overflow
    bad = (scaled > totals + PROBES_ABOVE * delta) | (scaled < totals - PROBES_BELOW * delta)
    if bad.any():
        b = int(np.argmax(bad))
        raise fail_at(b, "probe_answers", f"{int(counts[b])} probe answers for total_tokens {int(totals[b])} "
                      f"with Delta {delta}", ALLOWED_PROBES)
    for q, (text, gold) in enumerate(zip(split.questions, split.gold_answers)):
        check_text(text, MAX_QUESTION_CHARS, where(qfile, split=name, question=q, field="question"), ALLOWED_QUESTION)
        check_text(gold, MAX_ANSWER_CHARS, where(qfile, split=name, question=q, field="gold_answer"), ALLOWED_ANSWER)
    for q, vocab in enumerate(split.vocabs):
        if not vocab or (min(map(len, vocab)) > 0 and max(map(len, vocab)) <= MAX_ANSWER_CHARS
                         and all(map(str.isascii, vocab))):
            continue
        for a, answer in enumerate(vocab):
            problem = text_problem(answer, MAX_ANSWER_CHARS)
            if problem is not None:
                b0, b1 = int(branch_offsets[q]), int(branch_offsets[q + 1])
                finals = np.flatnonzero(split.final_ids[b0:b1] == a)
                probes = np.flatnonzero(split.probe_ids[probe_offsets[b0] : probe_offsets[b1]] == a)
                probe_branch = np.searchsorted(probe_offsets[b0 : b1 + 1], probes[0] + probe_offsets[b0], "right") - 1 \
                    if len(probes) else b1 - b0
                final_branch = int(finals[0]) if len(finals) else b1 - b0
                field = "probe_answers" if probe_branch <= final_branch else "final_answer"
                raise fail_at(b0 + min(probe_branch, final_branch), field, problem, ALLOWED_ANSWER)
