"""``autotts run``: a controller answers a question set live, and the run is kept for replay.

:func:`live_run` runs one controller on every (question, seed), many episodes in flight
(:func:`collection.live.runner.run_live`), and writes to ``out``:

* ``records.csv``: one row per episode as it ends (``autotts evaluate``'s columns, plus
  what the episode asked of the model and its wall time; a failed episode has its error);
* ``pools/``: each question's decoded branches once all its episodes ended;
* ``store/``: the replay store of what was generated (:mod:`collection.live.recording`);
* ``summary.json``: the evaluation summary plus the live figures.

A killed run started again with the same settings resumes: questions whose pool was
saved are not run again, the others are run from scratch.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autotts_gym.data.store import SplitInfo
from autotts_gym.evaluation.evaluate import RECORD_FIELDS, Summary, summarize
from collection.config import CollectConfig, ConfigError
from collection.generation import Generator
from collection.live.recording import build_recorded_split, load_pools, save_pool, write_recorded_store
from collection.live.runner import LiveBackend, LiveOptions, LiveRecord, RunStats, run_live
from collection.questions import read_questions
from collection.shards import sampling_record

LIVE_FIELDS = (
    "answer_text", "sampled_tokens", "probe_tokens", "prompt_tokens", "cached_prompt_tokens", "requests", "rounds",
    "seconds", "error",
)  # fmt: skip
RECORD_COLUMNS = ("method", "beta", *RECORD_FIELDS, *LIVE_FIELDS)


@dataclass
class LiveSummary:
    """The figures of one live run.

    Attributes:
        evaluation: accuracy, tokens (charged, as replay counts them), sequential
            tokens, with 95% CIs over questions (``autotts evaluate``'s summary).
        episodes, failed: episodes recorded, and how many failed.
        sampled_tokens, probe_tokens: mean per episode of trajectory and probe tokens
            the model generated for it.
        prompt_tokens, cached_prompt_tokens: mean per episode of prompt tokens sent and
            of those served from the prefix cache (None if the backend does not say).
        seconds_median, seconds_p95: wall time of one question's episode.
        questions_per_second: questions finished per second of this run.
        generate_share: share of this run's wall time spent inside the model's generate calls.
        rounds, requests, deduplicated: batches sent, requests in them, identical requests merged.
    """

    evaluation: Summary
    episodes: int
    failed: int
    sampled_tokens: float
    probe_tokens: float
    prompt_tokens: float
    cached_prompt_tokens: float | None
    seconds_median: float
    seconds_p95: float
    questions_per_second: float
    generate_share: float
    rounds: int = 0
    requests: int = 0
    deduplicated: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


def record_row(record: LiveRecord, method: str, beta: float | None, split_name: str) -> dict[str, Any]:
    """One ``records.csv`` row of a live episode."""
    r, s = record.result, record.stats
    row: dict[str, Any] = {"method": method, "beta": beta, "split": split_name, "question": record.question,
                           "seed": record.seed}
    if r is not None:
        row.update(answer=r.answer, correct=r.correct, tokens=r.tokens, sequential_tokens=r.sequential_tokens,
                   intervals=r.intervals, branches_opened=r.branches_opened, probes=r.probes, actions=r.actions,
                   stop_reason=r.stop_reason, answer_text=r.answer_text)
    row.update(sampled_tokens=s.sampled_tokens, probe_tokens=s.probe_tokens, prompt_tokens=s.prompt_tokens,
               cached_prompt_tokens="" if s.cached_prompt_tokens is None else s.cached_prompt_tokens,
               requests=s.requests, rounds=s.rounds, seconds=round(record.seconds, 4), error=record.error)
    return row


def read_records(path: Path) -> list[dict[str, str]]:
    """The rows of an existing ``records.csv`` (empty if there is none)."""
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _write_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(RECORD_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _fingerprint(config: CollectConfig, method: str, seeds: Sequence[int], options: LiveOptions) -> dict[str, Any]:
    values = dict(config.fingerprint(), method=method, seeds=list(seeds), **asdict(options))
    return json.loads(json.dumps(values, default=str))


def live_run(
    config: CollectConfig,
    controller: Callable[[Any], Any],
    method: str,
    seeds: Sequence[int],
    options: LiveOptions,
    out: str | os.PathLike,
    make_generator: Callable[[CollectConfig], Generator] | None = None,
    make_prompts: Callable[[CollectConfig], Any] | None = None,
    max_in_flight: int = 64,
    progress: bool = True,
) -> LiveSummary:
    """Run ``controller`` live on every (question, seed) and write the run to ``out``
    (see the module docstring).

    Args:
        config: model, questions, Delta, sampling, probe and backend settings (the
            collector's); ``config.trajectories`` is not used, the pool size is
            ``options.pool_size``.
        controller: the controller (``controller(episode) -> EpisodeResult``).
        method: its spec (``dsr-lock@0.5``), recorded in the rows and the fingerprint.
        seeds: episode seeds; seed s opens branches in replay's order of seed s.
        options: pool size, order, budget, kappa_probe.
        out: the run folder.
        make_generator, make_prompts: backend and prompt builders (default: the
            collector's, offline vLLM or the ``config.endpoints`` servers).
        max_in_flight: episodes running at once.
        progress: print progress and the interruption note to stderr.
    """
    from collection.collect import default_prompts

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    questions = read_questions(config.questions, config.question_field, config.answer_field, config.limit)
    fingerprint = _fingerprint(config, method, seeds, options)
    run_file = out / "run.json"
    if run_file.exists() and json.loads(run_file.read_text()) != fingerprint:
        raise ConfigError(f"{out} holds a run with other settings (see {run_file}); use another --out to start anew")
    run_file.write_text(json.dumps(fingerprint, indent=2))
    pools_dir = out / "pools"
    done = set(load_pools(pools_dir))
    beta = getattr(controller, "beta", None)
    split_name = f"{config.store_model_name}/{config.store_benchmark_name}"
    records_path = out / "records.csv"
    rows = [r for r in read_records(records_path) if int(r["question"]) in done]
    _write_rows(records_path, rows)
    todo = [(q.index, s) for q in questions if q.index not in done for s in seeds]
    new_records: list[LiveRecord] = []
    stats = RunStats()
    interrupted = False
    if todo:
        prompts = (make_prompts or default_prompts)(config)
        generator = (make_generator or live_generator)(config)
        stats.started = time.perf_counter()  # the run's time, without loading the model
        try:
            backend = LiveBackend(config, questions, prompts, options,
                                  getattr(generator, "max_model_len", None) or config.max_model_len)
            left = {q: len(seeds) for q, _ in todo}
            failed: set[int] = set()
            fh = open(records_path, "a", newline="")
            writer = csv.DictWriter(fh, fieldnames=list(RECORD_COLUMNS))

            def on_record(record: LiveRecord) -> None:
                new_records.append(record)
                writer.writerow(record_row(record, method, beta, split_name))
                fh.flush()
                left[record.question] -= 1
                if record.error:
                    failed.add(record.question)
                if left[record.question] == 0:
                    pool = backend.pools.pop(record.question)
                    if record.question not in failed:  # a failed question is run again on resume
                        save_pool(pools_dir, pool)
                if progress:
                    print(f"\r{len(new_records)}/{len(todo)} episodes", end="", file=sys.stderr, flush=True)

            try:
                run_live(backend, controller, todo, generator, max_in_flight, on_record, stats)
            except KeyboardInterrupt:
                interrupted = True
            finally:
                fh.close()
                if progress:
                    print(file=sys.stderr)
        finally:
            generator.close()
    # Questions whose episodes did not all end are left out, failed ones kept with their
    # errors (a rerun redoes both).
    pools = load_pools(pools_dir)
    rows = [r for r in read_records(records_path) if int(r["question"]) in pools or r["error"]]
    _write_rows(records_path, rows)
    info = SplitInfo(
        model=config.store_model_name, benchmark=config.store_benchmark_name, interval_tokens=config.interval_tokens,
        sampling=dict(sampling_record(config), trajectories=options.pool_size),
        source=f"autotts run --method {method} on {os.path.abspath(config.questions)}",
        extra={"collection": config.record(), "method": method, "seeds": list(seeds),
               "grading": "math-verify" if config.use_math_verify else "normalised string equality"},
    )  # fmt: skip
    split = build_recorded_split(questions, pools, options.pool_size, info)
    write_recorded_store(split, out / "store")
    summary = summarize_rows(controller, split, rows, stats)
    (out / "summary.json").write_text(json.dumps(summary.as_dict(), indent=2, default=str) + "\n")
    if interrupted:
        raise KeyboardInterrupt(f"interrupted: {len(pools)} question(s) finished and written to {out}")
    return summary


def live_generator(config: CollectConfig) -> Generator:
    """The servers of ``config.endpoints`` (failures reported per request), else vLLM in
    this process."""
    if config.server_mode:
        from collection.live.endpoints import LiveServerGenerator

        return LiveServerGenerator(config)
    from collection.offline import OfflineGenerator

    return OfflineGenerator(config)


def summarize_rows(controller: Any, split: Any, rows: Sequence[dict[str, str]], stats: RunStats) -> LiveSummary:
    """The :class:`LiveSummary` of a run's ``records.csv`` rows."""
    ok = [r for r in rows if not r["error"]]

    def column(name: str, kind: type = float) -> np.ndarray:
        return np.array([kind(r[name]) for r in ok], dtype=kind)

    records = {
        "question": column("question", int), "seed": column("seed", int),
        "correct": np.array([r["correct"] == "True" for r in ok], dtype=bool),
        "tokens": column("tokens"), "sequential_tokens": column("sequential_tokens"),
        "branches_opened": column("branches_opened"), "stop_reason": np.array([r["stop_reason"] for r in ok], dtype=object),
    }  # fmt: skip
    evaluation = summarize(controller, split, records, stats.seconds)
    seconds = column("seconds")
    cached = [r["cached_prompt_tokens"] for r in ok]
    return LiveSummary(
        evaluation=evaluation,
        episodes=len(rows),
        failed=len(rows) - len(ok),
        sampled_tokens=_mean(column("sampled_tokens")),
        probe_tokens=_mean(column("probe_tokens")),
        prompt_tokens=_mean(column("prompt_tokens")),
        cached_prompt_tokens=None if any(c == "" for c in cached) else _mean(np.array(cached, dtype=float)),
        seconds_median=float(np.median(seconds)) if len(seconds) else math.nan,
        seconds_p95=float(np.percentile(seconds, 95)) if len(seconds) else math.nan,
        questions_per_second=len({r["question"] for r in rows}) / max(stats.seconds, 1e-9),
        generate_share=stats.generate_seconds / max(stats.seconds, 1e-9),
        rounds=stats.rounds,
        requests=stats.requests,
        deduplicated=stats.deduplicated,
        errors=sorted({r["error"] for r in rows if r["error"]})[:10],
    )


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else math.nan


def summary_lines(summary: LiveSummary) -> list[str]:
    """The closing lines ``autotts run`` prints (the evaluate line, then the live figures)."""
    from autotts_gym.reporting.tables import fmt_tokens, summary_line

    s = summary
    cached = "n/a" if s.cached_prompt_tokens is None else fmt_tokens(s.cached_prompt_tokens)
    computed = "n/a" if s.cached_prompt_tokens is None else fmt_tokens(s.prompt_tokens - s.cached_prompt_tokens)
    lines = [
        summary_line(s.evaluation),
        f"generated per episode: sampled {fmt_tokens(s.sampled_tokens)}, probe {fmt_tokens(s.probe_tokens)}; "
        f"prompt tokens {fmt_tokens(s.prompt_tokens)} (computed {computed}, from the prefix cache {cached})",
        f"wall time per question: median {s.seconds_median:.2f} s, p95 {s.seconds_p95:.2f} s; "
        f"{s.questions_per_second:.2f} questions/s; {100 * s.generate_share:.0f}% of the run inside generate "
        f"({s.rounds} batches, {s.requests} requests, {s.deduplicated} merged)",
    ]
    if s.failed:
        lines.append(f"{s.failed} of {s.episodes} episodes failed: " + "; ".join(s.errors))
    return lines
