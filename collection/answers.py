"""Answers: read ``\\boxed{...}`` from model text, normalise it, grade it against the gold.

Collection keeps what the model wrote (the raw content of its last ``\\boxed{}``, or
``None``); building the store turns raw answers into the strings the replay compares:

* :func:`extract_boxed` finds the last ``\\boxed{...}`` (or ``\\fbox{...}``), nested
  braces included, and returns its content.
* :func:`normalize_answer` removes notation that does not change the value (``$``,
  ``\\left``, ``\\!``, ``\\text{}``, thousands separators, leading zeros, ...).
* :class:`AnswerCanonicalizer` maps every answer that math-verify finds equivalent to
  the gold answer onto the gold string, so the store's exact string comparison grades
  ``0.5`` and ``\\frac{1}{2}`` alike. An unparseable answer becomes ``NO_ANSWER``
  (``"ERR"``, as in the release), and so does one longer than the store's bound
  ``MAX_ANSWER_CHARS`` (4096 characters; no such box is an answer to compare).
"""

from __future__ import annotations

import re
import threading

from autotts_gym.data.store import NO_ANSWER
from autotts_gym.data.validation import MAX_ANSWER_CHARS

_BOX_COMMANDS = ("\\boxed", "\\fbox")


def boxed_close(text: str, start: int) -> int | None:
    """Index of the brace that closes the group opened just before ``text[start]``.

    ``text[start - 1]`` is the opening ``{``; nested groups are skipped and escaped
    braces (``\\{``) do not count. ``None`` if the group never closes.
    """
    depth = 1
    i = start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2  # an escaped character, e.g. \{ or \}, never opens or closes a group
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def extract_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``.

    >>> extract_boxed(r"so \\boxed{\\frac{1}{2}}.")
    '\\\\frac{1}{2}'
    """
    best: tuple[int, str] | None = None
    for command in _BOX_COMMANDS:
        pos = text.rfind(command + "{")
        while pos >= 0:
            open_at = pos + len(command) + 1
            close = boxed_close(text, open_at)
            if close is not None:
                if best is None or pos > best[0]:
                    best = (pos, text[open_at:close])
                break
            pos = text.rfind(command + "{", 0, pos)
    return None if best is None else best[1]


_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf|displaystyle)\s*\{([^{}]*)\}")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_LEADING_ZEROS = re.compile(r"^(-?)0+(?=\d)")
_SPACING = re.compile(r"\\[,;:! ]|\\quad|\\qquad|~")


def normalize_answer(raw: str) -> str:
    """A canonical spelling of one answer; ``NO_ANSWER`` if nothing is left.

    Only changes that cannot alter the value: math delimiters, spacing commands,
    ``\\left``/``\\right``, ``\\dfrac``/``\\tfrac``, text wrappers, degree marks, a
    trailing period, thousands separators and leading zeros of an integer.
    """
    s = raw.strip()
    s = s.replace("$", "").replace("\\left", "").replace("\\right", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("^\\circ", "").replace("^{\\circ}", "").replace("\\%", "")
    s = _SPACING.sub("", s)
    previous = None
    while previous != s:  # unwrap nested \text{...} from the inside out
        previous = s
        s = _TEXT_WRAPPER.sub(r"\1", s)
    s = s.strip().rstrip(".").strip()
    s = _THOUSANDS.sub("", s)
    if re.fullmatch(r"-?\d+", s):
        s = _LEADING_ZEROS.sub(r"\1", s)
    s = " ".join(s.split())
    return s or NO_ANSWER


class AnswerCanonicalizer:
    """Turns the raw answers of one question into the strings its store split holds.

    Args:
        gold: the question's gold answer (normalised too).
        use_math_verify: grade with math-verify (``pip install math-verify``); without
            it, answers are compared after normalisation only.

    Equivalence is decided once per distinct normalised answer and cached.
    """

    def __init__(self, gold: str, use_math_verify: bool = True) -> None:
        self.gold = normalize_answer(gold)
        self._cache: dict[str, str] = {self.gold: self.gold, NO_ANSWER: NO_ANSWER}
        self._gold_parsed = None
        self._verify = None
        if use_math_verify:
            from math_verify import parse, verify

            self._parse, self._verify = parse, verify
            self._gold_parsed = parse(f"${self.gold}$", parsing_timeout=_timeout())

    def __call__(self, raw: str | None) -> str:
        """The store string of one raw answer (``None`` or too long -> ``NO_ANSWER``)."""
        if raw is None:
            return NO_ANSWER
        norm = normalize_answer(raw)
        if len(norm) > MAX_ANSWER_CHARS:
            return NO_ANSWER
        known = self._cache.get(norm)
        if known is None:
            known = self.gold if self._equivalent_to_gold(norm) else norm
            self._cache[norm] = known
        return known

    def _equivalent_to_gold(self, answer: str) -> bool:
        if self._verify is None or not self._gold_parsed:
            return False
        parsed = self._parse(f"${answer}$", parsing_timeout=_timeout())
        return bool(parsed) and bool(self._verify(self._gold_parsed, parsed, timeout_seconds=_timeout()))


def _timeout() -> int | None:
    """math-verify's time limit: 5 s, enforced with ``signal.alarm``, which works only in
    the main thread; elsewhere (a live controller's worker thread) none."""
    return 5 if threading.current_thread() is threading.main_thread() else None
