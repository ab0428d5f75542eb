"""Execution traces: which episodes to show the proposer, and how, compactly.

The engine records one dict per primitive action when an episode runs with
``trace=True`` (action, branch, depth, revealed answer, tokens so far).
:func:`annotate` turns that record into a structured trace: per decision the step, the
action, the branch, the revealed answer (as text), whether the branch finished, the
tokens so far and the vote state after it (the majority of the completed pool with its
Beta confidence, and the majority of the latest answers of unpruned branches).

:func:`choose_episodes` picks the informative episodes of an evaluation: wrong answers
first (those where the pool's own majority is the gold answer before others: the
controller could have got them), then the most expensive episodes.

:func:`render_trace` prints a trace in a few lines: consecutive actions of one kind on
one line (``step b0:25 b1:25 b2:33$``), the vote state at the line's end, and the middle
elided to fit a size limit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from autotts_gym.data.store import QuestionData
from autotts_gym.engine import EpisodeResult
from autotts_gym.engine.voting import beta_confidence, majority, top_two

LEGEND = (
    "Trace notation: one line per run of same-kind actions; bJ:A = branch J revealed answer A; "
    "A$ = a final answer (the branch finished); * marks the gold answer; "
    "open = BRANCH+PROBE, step = CONTINUE+PROBE, cont = CONTINUE without probe, read = read whole; "
    "'pool W v1-v2 c' = majority W of the finished branches' answers with counts and Beta confidence c; "
    "'live W n/m' = majority of the latest answers of the m unpruned branches that have one; "
    "tokens so far at the end of the line."
)
ITEMS_PER_LINE = 16
# The columns of a structured trace's ``steps`` rows (one row per primitive action).
STEP_FIELDS = (
    "step",
    "action",
    "branch",
    "depth",
    "answer",
    "finished",
    "tokens",
    "pool_winner",
    "pool_v1",
    "pool_v2",
    "pool_conf",
    "live_winner",
    "live_votes",
    "live_branches",
)


# ------------------------------------------------------------------------- choosing
def choose_episodes(evaluations: Sequence[Any], k: int) -> list[tuple[int, int, int, str]]:
    """Up to ``k`` informative episodes of one evaluated point, distinct questions.

    Args:
        evaluations: :class:`~autotts_gym.evaluation.evaluate.Evaluation` per split of the point.
        k: how many (about two thirds wrong answers, the rest most expensive).

    Returns:
        ``(evaluation index, question, seed, why)`` tuples.
    """
    wrong, everything = [], []
    for i, ev in enumerate(evaluations):
        rec = ev.records
        correct = np.asarray(rec["correct"], bool)
        qs = np.asarray(rec["question"])
        per_question = {int(q): float(correct[qs == q].mean()) for q in np.unique(qs)}
        for q, seed, ok, tokens in zip(qs.tolist(), rec["seed"].tolist(), correct.tolist(), rec["tokens"].tolist()):
            everything.append((i, q, seed, tokens))
            if not ok:
                why, rank = _why_wrong(ev.split.question(q))
                wrong.append((rank, -per_question[q], -tokens, i, q, seed, why))
    chosen: list[tuple[int, int, int, str]] = []
    seen: set[tuple[int, int]] = set()
    k_wrong = max(1, (2 * k + 2) // 3) if k > 1 else k
    for *_, i, q, seed, why in sorted(wrong):
        if len(chosen) >= k_wrong:
            break
        if (i, q) not in seen:
            seen.add((i, q))
            chosen.append((i, q, seed, why))
    for i, q, seed, tokens in sorted(everything, key=lambda e: -e[3]):
        if len(chosen) >= k:
            break
        if (i, q) not in seen:
            seen.add((i, q))
            chosen.append((i, q, seed, f"one of the most expensive episodes ({tokens / 1000:.1f}k tokens)"))
    return chosen


def _why_wrong(data: QuestionData) -> tuple[str, int]:
    winner = majority(data.final_answer)[0]
    if data.gold_id >= 0 and winner == data.gold_id:
        return "wrong answer although the majority of the whole pool is the gold answer", 0
    if data.gold_id >= 0:
        share = sum(1 for a in data.final_answer if a == data.gold_id) / max(1, data.num_branches)
        return f"wrong answer; {share:.0%} of the pool's branches end on the gold answer, not its majority", 1
    return "wrong answer; no branch of the pool ends on the gold answer", 2


# ------------------------------------------------------------------------ annotating
def annotate(raw: Sequence[dict[str, Any]], data: QuestionData, result: EpisodeResult, **meta: Any) -> dict[str, Any]:
    """A structured trace from the engine's per-action records: ``steps`` holds one row
    per primitive action with the columns :data:`STEP_FIELDS` (answers as strings; the
    vote state is the one after the action).

    Args:
        raw: ``episode.trace`` of an episode run with ``trace=True``.
        data: the question (for answer strings and the gold answer).
        result: the episode's result.
        meta: stored as they are (split, seed, point label, why it was chosen, ...).
    """
    vocab = data.vocab

    def text(a: int) -> str | None:
        return vocab[a] if a >= 0 else None

    pool: Counter = Counter()
    latest: dict[int, int] = {}
    pruned: set[int] = set()
    steps = []
    for i, rec in enumerate(raw):
        action, j, answer = rec["action"], rec["branch"], rec["answer"]
        finished = action == "READ_WHOLE" or (action in ("BRANCH", "CONTINUE") and answer >= 0)
        if action == "PROBE" or finished:
            latest[j] = answer
        if finished:
            pool[answer] += 1
        if action == "PRUNE":
            pruned.add(j)
        w, v1, v2 = top_two(pool)
        lw, l1, _ = majority(a for b, a in latest.items() if b not in pruned and a >= 0)
        live = sum(1 for b, a in latest.items() if b not in pruned and a >= 0)
        revealed = text(answer) if action != "CONTINUE" or finished else None
        conf = round(beta_confidence(v1, v2), 3)
        steps.append(
            [i, action, j, rec["depth"], revealed, finished, rec["tokens"], text(w), v1, v2, conf, text(lw), l1, live]
        )
    return {
        **meta,
        "question": data.index,
        "answer": result.answer_text,
        "gold": data.gold,
        "correct": bool(result.correct),
        "tokens": int(result.tokens),
        "branches_opened": int(result.branches_opened),
        "actions": int(result.actions),
        "stop_reason": result.stop_reason,
        "fields": list(STEP_FIELDS),
        "steps": steps,
    }


# ------------------------------------------------------------------------- rendering
def render_trace(trace: dict[str, Any], limit: int = 3000) -> str:
    """One trace in at most ``limit`` characters (the middle elided if needed)."""
    gold = trace["gold"]
    verdict = "correct" if trace["correct"] else f'wrong; gold "{gold}"'
    header = (
        f"{trace.get('split', '?')} question {trace['question']} seed {trace.get('seed', '?')} ({trace.get('point', '?')}): "
        f'answered "{trace["answer"]}" ({verdict}), {trace["tokens"] / 1000:.1f}k tokens, '
        f'{trace["branches_opened"]} branches, stop "{trace["stop_reason"]}". Chosen: {trace.get("why", "-")}.'
    )
    steps = [dict(zip(trace["fields"], row)) for row in trace["steps"]]
    lines = [_render_line(group, gold) for group in _groups(steps)]
    return _fit([header], lines, limit)


def render_traces(traces: Sequence[dict[str, Any]], limit: int) -> str:
    """Several traces sharing ``limit`` characters, with the notation legend first."""
    if not traces:
        return ""
    per_trace = max(400, (limit - len(LEGEND)) // len(traces) - 2)
    parts = [LEGEND]
    used = len(LEGEND)
    for trace in traces:
        block = render_trace(trace, per_trace)
        if used + len(block) + 2 > limit:
            break
        parts.append(block)
        used += len(block) + 2
    return "\n\n".join(parts) if len(parts) > 1 else ""


def _groups(steps: Sequence[dict[str, Any]]) -> list[list[tuple[str, dict[str, Any]]]]:
    """Steps merged into items (open/step/cont/probe/prune/read/answer), grouped in runs."""
    items: list[tuple[str, dict[str, Any]]] = []
    i = 0
    while i < len(steps):
        s = steps[i]
        nxt = steps[i + 1] if i + 1 < len(steps) else None
        paired = nxt is not None and nxt["action"] == "PROBE" and nxt["branch"] == s["branch"] and not s["finished"]
        if s["action"] in ("BRANCH", "CONTINUE") and paired:
            items.append(("open" if s["action"] == "BRANCH" else "step", {**nxt, "step": s["step"]}))
            i += 2
            continue
        verb = {"BRANCH": "open", "PROBE": "probe", "PRUNE": "prune", "READ_WHOLE": "read", "ANSWER": "ANSWER"}.get(
            s["action"]
        )
        if s["action"] == "CONTINUE":
            verb = "step" if s["finished"] else "cont"
        items.append((verb or s["action"].lower(), s))
        i += 1
    groups: list[list[tuple[str, dict[str, Any]]]] = []
    for verb, step in items:
        if groups and _extends(groups[-1], verb, step["branch"]):
            groups[-1].append((verb, step))
        else:
            groups.append([(verb, step)])
    return groups


def _extends(group: list[tuple[str, dict[str, Any]]], verb: str, branch: int) -> bool:
    """True if an item joins the line: same verb, room left, and not the start of a new
    pass over several branches (a branch seen again on a line of two or more)."""
    if group[0][0] != verb or verb == "ANSWER" or len(group) >= ITEMS_PER_LINE:
        return False
    branches = {s["branch"] for _, s in group}
    return not (branch in branches and len(branches) >= 2)


def _render_line(group: list[tuple[str, dict[str, Any]]], gold: str) -> str:
    verb = group[0][0]
    first, last = group[0][1], group[-1][1]
    if verb == "ANSWER":
        return (
            f"[{first['step']}] ANSWER {_answer(first['answer'], True, gold)} at {first['tokens'] / 1000:.1f}k tokens"
        )
    items = []
    for _, s in group:
        if verb == "prune":
            items.append(f"b{s['branch']}")
        elif s["answer"] is None:
            items.append(f"b{s['branch']}")
        else:
            items.append(f"b{s['branch']}:{_answer(s['answer'], s['finished'], gold)}")
    pw, lw = last["pool_winner"], last["live_winner"]
    pool = (
        f"pool {_answer(pw, False, gold)} {last['pool_v1']}-{last['pool_v2']} {last['pool_conf']:.2f}"
        if pw
        else "pool -"
    )
    latest = f"live {_answer(lw, False, gold)} {last['live_votes']}/{last['live_branches']}" if lw else "live -"
    steps = f"{first['step']}" if first is last else f"{first['step']}-{last['step']}"
    return f"[{steps}] {verb} {' '.join(items)} | {pool} | {latest} | {last['tokens'] / 1000:.1f}k"


def _answer(text: str | None, final: bool, gold: str) -> str:
    if text is None:
        return "-"
    return f"{text}{'$' if final else ''}{'*' if text == gold else ''}"


def _fit(head: list[str], lines: list[str], limit: int) -> str:
    """head + lines within ``limit`` characters; the middle lines elided if needed
    (lines kept alternately from the start and the end)."""
    text = "\n".join(head + lines)
    if len(text) <= limit:
        return text
    budget = limit - len("\n".join(head)) - len(f"\n... {len(lines)} lines omitted ...")
    first: list[str] = []
    last: list[str] = []
    while len(first) + len(last) < len(lines):
        line = lines[len(first)] if len(first) <= len(last) else lines[len(lines) - 1 - len(last)]
        if len(line) + 1 > budget:
            break
        budget -= len(line) + 1
        (first if len(first) <= len(last) else last).append(line)
    omitted = len(lines) - len(first) - len(last)
    return "\n".join([*head, *first, f"... {omitted} lines omitted ...", *reversed(last)])[:limit]
