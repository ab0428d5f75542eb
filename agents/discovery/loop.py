"""The discovery loop: prompt, propose, check, evaluate in the sandbox, record; repeat.

:func:`run_discovery` runs rounds ``1..R`` of a run directory (see
:mod:`~agents.discovery.history`), skipping rounds already finished (``resume``).
Each round

1. builds the prompt from the earlier rounds (search-split results only);
2. asks the proposer for a module and extracts the code;
3. checks and evaluates it in the sandbox on the search splits (its beta sweep, or its
   grid with free parameters), tracing informative episodes of its best point;
4. writes the round folder atomically and logs it to TensorBoard.

A candidate that fails in any way is a failed round with its diagnostic; the run goes
on. A round that fails at ``setup`` (the sandbox could not load the search splits) is
not the candidate's fault and would fail the same way every round: the run stops there,
and the round is not kept. A proposer that fails (API error) stops the run; ``resume``
continues it. Store paths are made absolute before anything starts, since the sandbox
runs in a folder of its own.

At the end the best (round, point) by mean search accuracy, ties to fewer tokens, is
selected; only then, and only for the report, it is evaluated on the held-out splits.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from agents.discovery.checks import extract_code
from agents.discovery.history import (
    RoundRecord,
    clean_partial,
    load_history,
    monotonicity,
    round_folder,
    select_best,
    to_json,
    write_json_atomic,
    write_round,
)
from agents.discovery.prompt import PromptSettings, build_prompt
from agents.discovery.proposers import Proposer
from agents.discovery.sandbox import SandboxLimits, SweepJob, SweepOutcome, best_point, evaluate_candidate, failed
from agents.discovery.traces import render_traces
from agents.discovery.tracking import DiscoveryTracker
from autotts_gym.data.sources import load_store
from autotts_gym.data.store import Store
from autotts_gym.reporting.tables import fmt_tokens

DEFAULT_BETAS = (0.0, 0.25, 0.5, 0.75, 1.0)
DEFAULT_SEEDS = 20  # small for speed in search; held-out figures use DEFAULT_HELDOUT_SEEDS
DEFAULT_HELDOUT_SEEDS = 100
# Default search splits, first match wins: the paper's search benchmark, then the
# embedded synthetic store's search split.
DEFAULT_SEARCH_PATTERNS = (("*/aime24",), ("*/search",))
# Settings a resumed run must share with the run it continues.
RESUME_KEYS = ("search_store", "search", "betas", "seeds", "shuffle", "traces", "trace_episodes", "free_params")


@dataclass(frozen=True)
class DiscoveryConfig:
    """The settings of a discovery run.

    Attributes:
        out: the run directory.
        rounds: rounds to run in all (a resumed run continues up to this number).
        proposer: the proposer spec (recorded; the proposer object is passed separately).
        search_store: the store of the search splits (``default``: the synthetic store).
        search: search split patterns (empty: ``*/aime24``, else ``*/search``).
        heldout: held-out split patterns (evaluated once, at the end, for the report).
        heldout_store: the held-out splits' store (None: the search store).
        betas: the sweep of every candidate.
        seeds: episode seeds per question in search (0..seeds-1).
        heldout_seeds: episode seeds per question on held-out splits.
        shuffle: branch order protocol.
        traces: feed execution traces back (False: the ablation without traces).
        trace_episodes: informative episodes traced per round.
        free_params: candidates declare a grid instead of a beta schedule (ablation).
        prompt_chars: the prompt's size limit.
        trace_chars: the size limit of one round's rendered traces.
        limits: sandbox limits.
        workers: sandbox processes per evaluation.
        tensorboard: TensorBoard log directory (None: ``out/tensorboard``).
    """

    out: str
    rounds: int
    proposer: str
    search_store: str = "default"
    search: tuple[str, ...] = ()
    heldout: tuple[str, ...] = ()
    heldout_store: str | None = None
    betas: tuple[float, ...] = DEFAULT_BETAS
    seeds: int = DEFAULT_SEEDS
    heldout_seeds: int = DEFAULT_HELDOUT_SEEDS
    shuffle: str = "release"
    traces: bool = True
    trace_episodes: int = 3
    free_params: bool = False
    prompt_chars: int = 60_000
    trace_chars: int = 8_000
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    workers: int = 1
    tensorboard: str | None = None


@dataclass
class DiscoveryResult:
    """What a run produced: every round, the selection, the held-out report.

    ``stopped`` is the reason the run stopped early (a setup failure), else None.
    """

    rounds: list[RoundRecord]
    selection: dict[str, Any] | None
    heldout: dict[str, Any] | None
    stopped: str | None = None

    @property
    def error(self) -> str | None:
        """One sentence when no round could be evaluated (the run failed), else None."""
        if self.stopped:
            return self.stopped
        if self.selection is None:
            failures = [h.data.get("failure") or {} for h in self.rounds]
            kinds = sorted({f"{f.get('stage')}/{f.get('kind')}" for f in failures})
            return (
                f"no round produced a working controller ({len(self.rounds)} round(s) failed: {', '.join(kinds) or '-'}); "
                "see round.json and sandbox.log in each round's folder"
            )
        return None


def parse_split_source(text: str) -> tuple[str, tuple[str, ...]]:
    """``STORE[:PATTERN[,PATTERN...]]`` as ``(store, patterns)``; a bare existing path
    or ``default`` is a store without patterns."""
    if text in ("", "default") or Path(text).exists():
        return text or "default", ()
    store, sep, patterns = text.rpartition(":")
    if not sep or not store:
        return text, ()
    return store, tuple(p for p in patterns.split(",") if p)


def absolute_store(store: str | None) -> str | None:
    """A store path made absolute (``default`` and None stay as they are): the sandbox
    and resumed runs work in other folders."""
    if store is None or store in ("", "default"):
        return store
    return str(Path(store).expanduser().resolve())


def resolve_splits(store: Store, patterns: Sequence[str], what: str) -> list[str]:
    """The split names that patterns select (with defaults for the search splits)."""
    if patterns:
        return [s.name for s in store.select(list(patterns))]
    for candidate in DEFAULT_SEARCH_PATTERNS:
        try:
            return [s.name for s in store.select(list(candidate))]
        except KeyError:
            continue
    raise ValueError(
        f"no default {what} splits (*/aime24 or */search) in store {store.path or '<memory>'}; "
        f"name them, e.g. STORE:model/benchmark; it holds: {', '.join(s.name for s in store)}"
    )


def run_discovery(
    config: DiscoveryConfig,
    proposer: Proposer,
    *,
    resume: bool = False,
    say: Callable[[str], None] = print,
) -> DiscoveryResult:
    """Run (or continue) a discovery run; see the module docstring.

    Args:
        config: the run's settings.
        proposer: who writes the candidates.
        resume: continue the run in ``config.out`` (its finished rounds are kept as they are).
        say: where progress lines go.
    """
    config = replace(
        config,
        search_store=absolute_store(config.search_store),
        heldout_store=absolute_store(config.heldout_store),
    )
    out = Path(config.out)
    search_names = resolve_splits(load_store(config.search_store), config.search, "search")
    heldout_names: list[str] = []
    if config.heldout:
        heldout_names = resolve_splits(
            load_store(config.heldout_store or config.search_store), config.heldout, "held-out"
        )
        same_store = (config.heldout_store or config.search_store) == config.search_store
        overlap = set(heldout_names) & set(search_names) if same_store else set()
        if overlap:
            raise ValueError(f"split(s) {', '.join(sorted(overlap))} cannot be both search and held-out")
    _prepare_run_dir(out, config, resume, say)
    job = SweepJob(
        store=config.search_store,
        splits=tuple(search_names),
        betas=tuple(config.betas),
        seeds=tuple(range(config.seeds)),
        shuffle=config.shuffle,
        free_params=config.free_params,
        trace_episodes=config.trace_episodes if config.traces else 0,
        key=run_secret(out),
    )
    settings = PromptSettings(
        search_splits=tuple(search_names),
        betas=tuple(config.betas),
        seeds=config.seeds,
        free_params=config.free_params,
        traces=config.traces,
        limit_chars=config.prompt_chars,
        trace_chars=config.trace_chars,
        max_actions=config.limits.max_actions,
        cpu_seconds=config.limits.cpu_seconds,
    )
    history = load_history(out)
    points = "grid settings" if config.free_params else "betas " + ", ".join(f"{b:g}" for b in config.betas)
    say(
        f"discover: {config.rounds} rounds, proposer {proposer.spec}, search {', '.join(search_names)} "
        f"({config.seeds} seeds, {points}){', no traces' if not config.traces else ''}; run directory {out}"
    )
    if history:
        say(f"resuming: rounds {', '.join(str(h.round) for h in history)} are finished and kept as they are")
    tracker = DiscoveryTracker(config.tensorboard or out / "tensorboard")
    stopped = None
    try:
        for r in range(1, config.rounds + 1):
            if any(h.round == r for h in history):
                continue
            record = run_round(r, [h for h in history if h.round < r], proposer, job, settings, config, say)
            failure = record.data.get("failure") or {}
            if failure.get("stage") == "setup":
                # Not the candidate's fault, and every later round would fail the same way.
                shutil.rmtree(round_folder(out, r), ignore_errors=True)
                stopped = f"round {r} could not be evaluated: {failure.get('message')}; the run stopped (round {r} is not kept)"
                say(f"round {r}/{config.rounds}: FAILED at setup: {failure.get('message')}")
                break
            history.append(record)
            best = select_best(history)
            tracker.log_round(record, _sweep_rows(out, r), best, _sweep_rows(out, best[0].round) if best else [])
            say(_round_line(record, config.rounds))
            if best:
                say(f"  best so far: {_point_text(*best)}")
    finally:
        tracker.close()
    result = _finish(out, history, config, search_names, heldout_names, say)
    result.stopped = stopped
    return result


def run_round(
    r: int,
    prior: Sequence[RoundRecord],
    proposer: Proposer,
    job: SweepJob,
    settings: PromptSettings,
    config: DiscoveryConfig,
    say: Callable[[str], None] = print,
) -> RoundRecord:
    """Run round ``r`` on the history ``prior`` and write its folder; its record."""
    started = time.perf_counter()
    prompt = build_prompt(prior, settings)
    prompted = time.perf_counter()
    say(f"round {r}/{config.rounds}: asking {proposer.spec} (prompt of {len(prompt)} characters)")
    proposal = proposer.propose(prompt, r)
    answered = time.perf_counter()
    code = extract_code(proposal.text)
    if code is None:
        outcome = failed("extract", "no-code", "the reply holds no Python code block")
    else:
        outcome = evaluate_candidate(code, job, config.limits, workers=config.workers)
    evaluated = time.perf_counter()
    data = _round_data(r, proposer.spec, outcome, config)
    data["usage"] = proposal.usage()
    files = {"prompt.md": prompt, "response.md": proposal.text}
    if code is not None:
        files["candidate.py"] = code
    if outcome.points:
        files["sweep.json"] = to_json(_sweep_json(outcome))
    if outcome.traces:
        files["traces.json"] = json.dumps(outcome.traces) + "\n"  # compact: thousands of step rows
        files["traces.txt"] = render_traces(outcome.traces, config.trace_chars) + "\n"
    if outcome.log:
        files["sandbox.log"] = outcome.log
    llm = answered - prompted
    total = time.perf_counter() - started
    data["timing"] = {
        "prompt_seconds": round(prompted - started, 3),
        "llm_seconds": round(llm, 3),
        "evaluation_seconds": round(evaluated - answered, 3),
        "total_seconds": round(total, 3),
        "outside_llm_seconds": round(total - llm, 3),
        "sandbox": outcome.timing,
    }
    files["round.json"] = to_json(data)
    write_round(config.out, r, files)
    return RoundRecord(round=r, data=data, code=code or "", traces=outcome.traces)


def _round_data(r: int, proposer: str, outcome: SweepOutcome, config: DiscoveryConfig) -> dict[str, Any]:
    """``round.json`` without usage and timing."""
    points = [_compact_point(p) for p in outcome.points]
    return {
        "round": r,
        "status": "ok" if outcome.ok else "failed",
        "proposer": proposer,
        "candidate": outcome.candidate or None,
        "failure": outcome.failure,
        "points": points,
        "best_point": best_point(points) if outcome.ok else None,
        "monotonicity": monotonicity(points) if outcome.ok and not config.free_params else [],
        "traced_point": outcome.traces[0].get("point") if outcome.traces else None,
    }


def _compact_point(p: dict[str, Any]) -> dict[str, Any]:
    keep = ("accuracy", "accuracy_ci", "tokens", "tokens_ci", "sequential_tokens", "branches_opened", "episodes")
    splits = {name: {k: s[k] for k in keep if k in s} for name, s in p["splits"].items()}
    return {k: p[k] for k in ("index", "label", "beta", "params", "accuracy", "tokens", "sequential_tokens")} | {
        "splits": splits
    }


def _sweep_json(outcome: SweepOutcome) -> list[dict[str, Any]]:
    return [
        {
            "index": p["index"],
            "label": p["label"],
            "beta": p["beta"],
            "params": p["params"],
            "summaries": list(p["splits"].values()),
        }
        for p in outcome.points
    ]


def _sweep_rows(out: Path, r: int) -> list[dict[str, Any]]:
    path = round_folder(out, r) / "sweep.json"
    return json.loads(path.read_text()) if path.is_file() else []


def run_secret(out: Path) -> str:
    """The run's secret for the candidates' per-episode answer labels (``.secret`` in the
    run directory, readable by its owner only; containers never see this folder), so a
    resumed run labels every episode as before."""
    path = out / ".secret"
    if not path.is_file():
        from autotts_gym.isolation import new_key

        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new_key())
    return path.read_text().strip()


def _prepare_run_dir(out: Path, config: DiscoveryConfig, resume: bool, say: Callable[[str], None]) -> None:
    """Create the run directory, or check that a resumed run matches its config."""
    settings = json.loads(json.dumps(asdict(config), default=str))
    path = out / "config.json"
    if resume:
        if not path.is_file():
            raise ValueError(f"{out}: nothing to resume (no config.json); start the run without --resume")
        old = json.loads(path.read_text())
        old["search_store"] = absolute_store(old.get("search_store"))  # runs started before paths were made absolute
        for key in RESUME_KEYS:
            if old.get(key) != settings.get(key):
                raise ValueError(
                    f"{path}: the run was started with {key}={old.get(key)!r}; resuming with {key}={settings.get(key)!r} "
                    "would mix incomparable rounds"
                )
        for p in clean_partial(out):
            say(f"removed the partial round {p.name}")
        write_json_atomic(path, {**old, "rounds": config.rounds, "proposer": config.proposer, "resumed": True})
        return
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(
            f"{out} exists and is not empty; pass --resume to continue that run, or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, settings)


def _finish(
    out: Path,
    history: list[RoundRecord],
    config: DiscoveryConfig,
    search_names: list[str],
    heldout_names: list[str],
    say: Callable[[str], None],
) -> DiscoveryResult:
    """Select, write the selection, evaluate held-out, print the totals."""
    chosen = select_best(history)
    selection = heldout = None
    if chosen is None:
        say("selected: none: no round produced a working controller")
    else:
        rec, point = chosen
        selection = {
            "round": rec.round,
            "name": rec.name,
            "class_name": (rec.data.get("candidate") or {}).get("class_name"),
            "point": point,
            "candidate": f"{round_folder(out, rec.round).name}/candidate.py",
            "search_splits": search_names,
            "seeds": config.seeds,
            "rule": "best mean search accuracy over all rounds and points, ties to fewer tokens",
        }
        write_json_atomic(out / "selection.json", selection)
        (out / "selected.py").write_text(rec.code, encoding="utf-8")
        say(f"selected: {_point_text(rec, point)} (search accuracy, mean over {len(search_names)} split(s))")
        if heldout_names:
            heldout = evaluate_heldout(rec, point, config, heldout_names)
            write_json_atomic(out / "heldout.json", heldout)
            say(_heldout_line(heldout))
    llm = sum((h.data.get("timing") or {}).get("llm_seconds", 0.0) for h in history)
    outside = [(h.data.get("timing") or {}).get("outside_llm_seconds", 0.0) for h in history]
    costs = [(h.data.get("usage") or {}).get("cost_usd") for h in history]
    cost = "unknown (no price for the model; pass --price-table)" if None in costs else f"${sum(costs):.4f}"
    if history:
        say(
            f"time: LLM {llm:.1f} s; outside the LLM {sum(outside):.1f} s ({sum(outside) / len(history):.1f} s per round); "
            f"cost {cost}"
        )
    written = [p.name for p in sorted(out.iterdir()) if not p.name.startswith(".")]
    say(f"wrote {out}: {', '.join(written)}")
    return DiscoveryResult(rounds=history, selection=selection, heldout=heldout)


def evaluate_heldout(
    rec: RoundRecord, point: dict[str, Any], config: DiscoveryConfig, splits: list[str]
) -> dict[str, Any]:
    """The selected candidate's sweep on the held-out splits (in the sandbox): for the
    report only, never read back by the loop."""
    job = SweepJob(
        store=config.heldout_store or config.search_store,
        splits=tuple(splits),
        betas=tuple(config.betas),
        seeds=tuple(range(config.heldout_seeds)),
        shuffle=config.shuffle,
        free_params=config.free_params,
        trace_episodes=0,
        key=run_secret(Path(config.out)),
    )
    # More seeds than in search: the time limits grow with the work.
    scale = max(1.0, config.heldout_seeds / config.seeds)
    limits = replace(
        config.limits, cpu_seconds=config.limits.cpu_seconds * scale, wall_seconds=config.limits.wall_seconds * scale
    )
    outcome = evaluate_candidate(rec.code, job, limits, workers=config.workers)
    points = [_compact_point(p) for p in outcome.points]
    return {
        "round": rec.round,
        "name": rec.name,
        "selected_point": point["label"],
        "splits": splits,
        "seeds": config.heldout_seeds,
        "ok": outcome.ok,
        "failure": outcome.failure,
        "selected": next((p for p in points if p["label"] == point["label"]), None),
        "points": points,
    }


# ------------------------------------------------------------------------------ printing
def _point_text(rec: RoundRecord, point: dict[str, Any]) -> str:
    return f"round {rec.round} ({rec.name}) at {point['label']}: {point['accuracy']:.1f}%, {fmt_tokens(point['tokens'])} tokens"


def _round_line(rec: RoundRecord, rounds: int) -> str:
    t = rec.data.get("timing") or {}
    usage = rec.data.get("usage") or {}
    source = f" [{usage['source']}]" if usage.get("source") else ""
    timing = f"(LLM {t.get('llm_seconds', 0):.1f} s, outside the LLM {t.get('outside_llm_seconds', 0):.1f} s)"
    if rec.ok and rec.best:
        b = rec.best
        curve = ", ".join(f"{p['label']} {p['accuracy']:.1f}%/{fmt_tokens(p['tokens'])}" for p in rec.points)
        return f"round {rec.round}/{rounds}{source}: {rec.name}: best {b['label']}: {b['accuracy']:.1f}% at {fmt_tokens(b['tokens'])} tokens {timing}\n  sweep: {curve}"
    f = rec.data.get("failure") or {}
    message = str(f.get("message", "")).splitlines()[0] if f.get("message") else ""
    return f"round {rec.round}/{rounds}{source}: FAILED at {f.get('stage')} ({f.get('kind')}): {message} {timing}"


def _heldout_line(heldout: dict[str, Any]) -> str:
    where = f"held-out {', '.join(heldout['splits'])} ({heldout['seeds']} seeds)"
    if not heldout["ok"]:
        return f"{where}: evaluation failed: {(heldout['failure'] or {}).get('message')}"
    s = heldout["selected"]
    curve = ", ".join(f"{p['label']} {p['accuracy']:.1f}%/{fmt_tokens(p['tokens'])}" for p in heldout["points"])
    return f"{where}: {s['label']}: {s['accuracy']:.1f}% at {fmt_tokens(s['tokens'])} tokens\n  held-out sweep: {curve}"
