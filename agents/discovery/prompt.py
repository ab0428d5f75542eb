"""The round's prompt: task, controller API, contract, example, then the history.

:func:`build_prompt` assembles, within a character limit,

1. the task: the replay MDP in brief, the objective, how candidates are evaluated and
   selected (search splits only: held-out data never appears here);
2. the controller API, generated from the engine's own docstrings for exactly the
   contract's actions and views, and the shared voting helpers;
3. the candidate contract (a beta family, or a free-parameter grid in that ablation)
   and an example module that satisfies it (the ASC baseline);
4. the history, newest rounds kept first when space runs out: every round's status,
   mechanisms and search-split sweep curve (or its diagnostic); the code of the best
   and the latest round, then of others while space lasts; execution traces of the
   latest and the best round's informative failures (unless traces are switched off).
"""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import agents.asc
from agents import base
from agents.discovery.contract import ALLOWED_MODULES, ENGINE_NAMES, EPISODE_ACTIONS, EPISODE_VIEWS, FORBIDDEN_NAMES
from agents.discovery.history import RoundRecord, select_best
from agents.discovery.traces import render_traces
from autotts_gym.engine import voting
from autotts_gym.engine.episode import Episode

MAX_DIAGNOSTIC_CHARS = 1500

SYSTEM_PROMPT = (
    "You are an expert in test-time scaling of language models and a careful Python programmer. "
    "You write controllers for a replayed reasoning MDP. Reply with exactly one Python module in one "
    "```python fenced block."
)

MDP_TEXT = """\
# Task: design a test-time-scaling controller

A language model has answered each question of a benchmark many times (a pool of reasoning
branches). Each branch is decoded in intervals of Delta tokens; after every interval the
answer the branch would give at that point (a "probe") can be read, and at its end it gives
a final answer. Your controller replays one question at a time (an *episode*): it decides
when to open a new branch (BRANCH), decode one more interval of a branch (CONTINUE), read a
branch's current answer (PROBE), abandon a branch (PRUNE), and when to stop and which
answer to give (ANSWER). Branches are opened in a fixed random order per episode seed.

Cost: every decoded interval costs Delta tokens (a branch's finishing step costs its
remaining tokens); probes are free. Score: accuracy (answer == gold) and mean tokens per
question. The answer string "ERR" marks an unparseable answer (it is observable through
episode.no_answer_id; you may treat it as an abstention).

A controller is a family in one scalar beta in [0, 1]: schedule(beta) maps beta to every
hyper-parameter, deterministically and monotonically (larger beta, larger budget), so a
sweep over beta traces an accuracy-cost curve.
"""

FREE_PARAMS_TASK = """\
In this run controllers have NO beta parameterization: instead of schedule(beta) a controller
declares grid(), a list of at most {n} parameter settings (dicts of field values), and each
setting is evaluated like one point of a sweep.
"""

FAMILY_CONTRACT = """\
- the class has `@staticmethod def schedule(beta: float) -> dict`: every hyper-parameter as a
  pure, monotone function of beta in [0, 1] (use clip01(beta) first; round_half_even for counts)
"""

GRID_CONTRACT = """\
- the class has `@staticmethod def grid() -> list[dict]`: 1 to {n} settings of its fields,
  each a dict of field values (missing fields keep their defaults); no schedule is needed
"""

REPLY_TEXT = """\
# Your reply

Write a NEW controller module that beats the history: a higher mean search accuracy, or the
same accuracy with fewer tokens. Learn from the curves and the traces: fix what made
earlier controllers wrong or expensive, keep what worked, and combine mechanisms. Give the
class a new descriptive `name`. Reply with the complete module in ONE ```python block.
"""


@dataclass(frozen=True)
class PromptSettings:
    """What the prompt says about the run.

    Attributes:
        search_splits: the names of the search splits.
        betas: the sweep.
        seeds: episodes per question.
        free_params: the ablation without beta parameterization.
        traces: include execution traces (the ablation without them: False).
        limit_chars: the prompt's size limit.
        trace_chars: the size limit of one round's traces.
        max_actions: the per-episode step limit.
        cpu_seconds: the CPU-time limit of one evaluation.
    """

    search_splits: tuple[str, ...]
    betas: tuple[float, ...]
    seeds: int
    free_params: bool = False
    traces: bool = True
    limit_chars: int = 60_000
    trace_chars: int = 8_000
    max_actions: int = 100_000
    cpu_seconds: float = 600.0


def build_prompt(history: Sequence[RoundRecord], settings: PromptSettings) -> str:
    """The prompt of the next round (at most ``settings.limit_chars`` characters)."""
    head = "\n".join([task_text(settings), api_text(), contract_text(settings), example_text(settings)])
    tail = REPLY_TEXT
    budget = settings.limit_chars - len(head) - len(tail) - 4
    if budget < 0:
        raise ValueError(
            f"the prompt limit of {settings.limit_chars} characters is too small: task, API and contract alone "
            f"take {len(head) + len(tail)}"
        )
    return "\n".join([head, history_text(history, settings, budget), tail])


def task_text(settings: PromptSettings) -> str:
    """The MDP, the objective and the evaluation protocol."""
    betas = ", ".join(f"{b:g}" for b in settings.betas)
    text = MDP_TEXT
    if settings.free_params:
        text += "\n" + FREE_PARAMS_TASK.format(n=len(settings.betas))
        points = f"each of its grid settings (at most {len(settings.betas)})"
    else:
        points = f"beta = {betas}"
    text += (
        f"\nEvaluation: every candidate runs at {points} on the search split(s) "
        f"{', '.join(settings.search_splits)}, {settings.seeds} shuffle seeds per question. "
        "The selected controller is the one with the best mean search accuracy over all rounds and "
        "points, ties going to fewer tokens.\n"
    )
    return text


def api_text() -> str:
    """The episode's actions and views, and the shared helpers, from their docstrings."""
    lines = ["# Controller API: what `episode` offers", "", "Actions:"]
    lines += [_describe(Episode, name) for name in EPISODE_ACTIONS]
    lines += ["", "Read-only views:"]
    lines += [_describe(Episode, name) for name in EPISODE_VIEWS]
    lines += [
        "",
        "Branch numbers j are 0, 1, ... in opening order. Answers are small integer ids, labels private to "
        "each episode (-1 = none; the same answer has the same id within an episode, not across episodes); "
        "compare ids for equality; only ids revealed in the episode may be answered, as plain ints. "
        "`answer_text` is not available to candidates; `no_answer_id` is. "
        "Status constants ACTIVE=0, FINISHED=1, PRUNED=2 (from autotts_gym.engine). "
        "Candidates run isolated: `episode.answer(...)` returns None: end run() with "
        "`return episode.answer(...)`; nothing is remembered from one (seed, beta) to the next.",
        "",
        "Helpers:",
    ]
    helpers: list[tuple[str, Callable]] = [
        ("agents.base", base.clip01),
        ("agents.base", base.round_half_even),
        ("agents.base", base.geometric_count),
        ("autotts_gym.engine.voting", voting.majority),
        ("autotts_gym.engine.voting", voting.top_two),
        ("autotts_gym.engine.voting", voting.vote_counts),
        ("autotts_gym.engine.voting", voting.beta_confidence),
        ("autotts_gym.engine.voting", voting.vote_confidence),
    ]
    lines += [
        f"- from {module} import {fn.__name__}: {fn.__name__}{_signature(fn)}: {_first_paragraph(fn)}"
        for module, fn in helpers
    ]
    return "\n".join(lines) + "\n"


def _describe(cls: type, name: str) -> str:
    member = next(k.__dict__[name] for k in cls.__mro__ if name in k.__dict__)
    if isinstance(member, property) or inspect.isgetsetdescriptor(member):  # a compiled build's properties
        return f"- episode.{name}: {_first_paragraph(member)}"
    return f"- episode.{name}{_signature(member, drop_self=True)}: {_first_paragraph(member)}"


class _Annotation(str):
    """An annotation string printed without quotes (``int``, not ``'int'``)."""

    def __repr__(self) -> str:
        return str(self)


def _signature(fn: Callable, drop_self: bool = False) -> str:
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())[1:] if drop_self else list(sig.parameters.values())
    params = [p.replace(annotation=_Annotation(p.annotation)) if isinstance(p.annotation, str) else p for p in params]
    ret = sig.return_annotation
    if ret is inspect.Signature.empty:
        ret = _source_return_annotation(fn) or ret
    ret = _Annotation(ret) if isinstance(ret, str) else ret
    return str(sig.replace(parameters=params, return_annotation=ret))


def _source_return_annotation(fn: Callable) -> str | None:
    # A function the engine's compiled build declares with a C return type (a cpdef in a
    # .pxd) keeps no return annotation; the source it was compiled from still has it.
    module = sys.modules[fn.__module__]
    source = Path(module.__file__).with_name(fn.__module__.rpartition(".")[2] + ".py")
    if not source.is_file():
        return None
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef) and node.name == fn.__name__ and node.returns is not None:
            return ast.unparse(node.returns)
    return None


def _first_paragraph(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n")[0].split())


def contract_text(settings: PromptSettings) -> str:
    """The rules a candidate module must follow."""
    family = GRID_CONTRACT.format(n=len(settings.betas)) if settings.free_params else FAMILY_CONTRACT
    imports = ", ".join(sorted(ALLOWED_MODULES - {"__future__", "autotts_gym.engine"}))
    return (
        "# Candidate contract (checked before your code runs; a violation fails the round)\n\n"
        "- ONE Python module with a module docstring that describes its mechanisms\n"
        "- exactly one subclass of agents.base.Controller, declared `@dataclass(frozen=True)`, with a class "
        'attribute `name = "..."`, its hyper-parameters as dataclass fields with defaults, and '
        "`def run(self, episode)` that ends with `return episode.answer(answer_id, reason=...)`\n"
        + family
        + f"- imports only from: {imports}, `from __future__ import annotations`, and from autotts_gym.engine "
        f"only {', '.join(sorted(ENGINE_NAMES))}; package modules via `from X import name`\n"
        "- use only the episode API above; no attribute starting with '_' (use `d.get`, not `d.__getitem__`), "
        "no `.question`, `.order`, `.result`, `.trace`, no str.format (use f-strings), no module as a value, "
        f"none of: {', '.join(sorted(n for n in FORBIDDEN_NAMES if not n.startswith('_')))}; no `global`, "
        "no bare `except:` or `except BaseException`\n"
        "- all state lives in local variables of run() (the controller is frozen and runs many episodes); "
        "define classes and helpers at module level (code generation at run time is blocked)\n"
        f"- limits: {settings.max_actions} attempted actions per episode, {settings.cpu_seconds:g} s CPU for "
        "the whole sweep; files, sockets and subprocesses are blocked\n"
    )


def example_text(settings: PromptSettings) -> str:
    """A module that satisfies the contract (the ASC baseline)."""
    source = inspect.getsource(agents.asc).strip()
    text = "# Example of a valid module (adaptive consistency, a baseline)\n\n```python\n" + source + "\n```\n"
    if settings.free_params:
        text += (
            "\nIn this run replace schedule(beta) by, for example:\n\n```python\n"
            "    @staticmethod\n"
            "    def grid() -> list[dict[str, Any]]:\n"
            '        return [{"max_samples": 8, "threshold": 0.9}, {"max_samples": 32, "threshold": 0.95}]\n'
            "```\n"
        )
    return text


# ----------------------------------------------------------------------------- history
def history_text(history: Sequence[RoundRecord], settings: PromptSettings, budget: int) -> str:
    """The history section within ``budget`` characters (see the module docstring)."""
    if not history:
        return "# History\n\nNo rounds yet: this is the first candidate.\n"
    chosen = select_best(history)
    best_round = chosen[0].round if chosen else None
    if chosen:
        rec, point = chosen
        header = (
            f"# History ({len(history)} rounds so far)\n\nBest so far: round {rec.round} ({rec.name}) at "
            f"{point['label']}: {point['accuracy']:.1f}% at {point['tokens'] / 1000:.1f}k tokens per question.\n"
        )
    else:
        header = f"# History ({len(history)} rounds so far)\n\nNo round has produced a working controller yet.\n"
    by_round = {rec.round: rec for rec in history}
    latest = history[-1].round
    latest_ok = next((rec.round for rec in reversed(history) if rec.ok), None)
    # What to show, most valuable first: the best and the latest round in full (brief,
    # code, traces), then briefs of the others newest first, then their code.
    wanted: list[tuple[int, str]] = [(best_round, "brief"), (latest, "brief"), (best_round, "code"), (latest, "code")]
    if settings.traces:
        wanted += [(latest_ok, "traces"), (best_round, "traces")]
    newest_first = [rec.round for rec in reversed(history)]
    wanted += [(r, "brief") for r in newest_first] + [(r, "code") for r in newest_first]
    parts: dict[int, dict[str, str]] = {rec.round: {} for rec in history}
    used = len(header) + 60
    for r, kind in wanted:
        if r is None or kind in parts[r] or (kind != "brief" and "brief" not in parts[r]):
            continue
        rec = by_round[r]
        if kind == "brief":
            text = round_brief(rec)
        elif kind == "code":
            text = code_block(rec)
        else:
            text = traces_block(rec, min(settings.trace_chars, budget - used))
        if text and used + len(text) <= budget:
            parts[r][kind] = text
            used += len(text)
    shown = [r for r in sorted(parts) if "brief" in parts[r]]
    out = [header]
    if len(shown) < len(history):
        out.append(f"({len(history) - len(shown)} older rounds omitted for space.)\n")
    for r in shown:
        out.append(parts[r]["brief"] + parts[r].get("code", "") + parts[r].get("traces", ""))
    return "\n".join(out)


def round_brief(rec: RoundRecord) -> str:
    """A round's status, mechanisms and search-split sweep table (or diagnostic)."""
    data = rec.data
    candidate = data.get("candidate") or {}
    title = f"## Round {rec.round}: {rec.name}" + (
        f" (class {candidate['class_name']})" if candidate.get("class_name") else ""
    )
    if not rec.ok:
        failure = data.get("failure") or {}
        message = str(failure.get("message", ""))[:MAX_DIAGNOSTIC_CHARS]
        return f"{title}: FAILED at {failure.get('stage', '?')} ({failure.get('kind', '?')})\n{message}\n"
    doc = textwrap.shorten(" ".join(str(candidate.get("docstring", "")).split()), 700, placeholder=" ...")
    lines = [f"{title}: evaluated", f"Mechanisms: {doc}", sweep_table(rec.points)]
    best = rec.best
    if best:
        lines.append(f"Best point: {best['label']}: {best['accuracy']:.1f}% at {best['tokens'] / 1000:.1f}k tokens.")
    for note in data.get("monotonicity") or []:
        lines.append(f"Monotonicity violation: {note}")
    return "\n".join(lines) + "\n"


def sweep_table(points: Sequence[dict]) -> str:
    """Accuracy (%) and mean tokens per point: the mean over splits, then each split."""
    if not points:
        return "(no points)"
    splits = list(points[0]["splits"])
    header = "| point | mean acc % | mean tokens | " + " | ".join(f"{s} acc % / tokens" for s in splits) + " |"
    rule = "|" + "---|" * (3 + len(splits))
    rows = []
    for p in points:
        cells = [f"{p['splits'][s]['accuracy']:.1f} / {p['splits'][s]['tokens'] / 1000:.1f}k" for s in splits]
        params = ""
        if p.get("beta") is None:
            params = " " + ", ".join(f"{k}={v}" for k, v in p["params"].items())
        rows.append(
            f"| {p['label']}{params} | {p['accuracy']:.1f} | {p['tokens'] / 1000:.1f}k | " + " | ".join(cells) + " |"
        )
    return "\n".join([header, rule, *rows])


def code_block(rec: RoundRecord) -> str:
    """The round's module as a fenced block ('' if there is none)."""
    if not rec.code.strip():
        return ""
    return f"Code of round {rec.round}:\n```python\n{rec.code.strip()}\n```\n"


def traces_block(rec: RoundRecord, limit: int) -> str:
    """The round's execution traces within ``limit`` characters ('' if none fit)."""
    if not rec.traces or limit < 500:
        return ""
    text = render_traces(rec.traces, limit - 80)
    if not text:
        return ""
    return f"Execution traces of round {rec.round} (informative episodes at its best point):\n{text}\n"
