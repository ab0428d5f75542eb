"""Resumable, sharded collection output, and the final store built from it.

The work folder (``OUT.work`` by default) holds::

    run.json                   the run's fingerprint (settings that determine the data)
    shards/q000003-t00000.json one finished shard: a question and a range of trajectories
    runs.jsonl                 one line of throughput figures per collecting process

A shard is written to a temporary file and renamed into place, so a shard file exists
only once it is complete: a run killed at any point loses at most the shards it was
decoding, and a rerun collects exactly the shards that have no file (nothing is lost,
nothing is collected twice). A rerun with different data settings is refused.

When every shard exists, :func:`build_split` grades the raw answers and
:func:`write_store` writes the store atomically (``Store.save``) and reloads it to
validate it like any other store.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autotts_gym.data.store import Split, SplitInfo, Store, StoreError
from autotts_gym.data.validation import (
    ALLOWED_TOTAL_TOKENS,
    MAX_TOTAL_TOKENS,
    JsonPath,
    bound_error,
    check_int,
    check_probe_count,
    json_path_text,
    load_json,
    short,
)
from collection.answers import AnswerCanonicalizer
from collection.config import CollectConfig, ConfigError
from collection.questions import Question
from collection.trajectories import ShardSpec, TrajectoryRecord

RUN_FILE = "run.json"
RUNS_LOG = "runs.jsonl"


class ShardStore:
    """The shards of one run in its work folder.

    Args:
        work_dir: the folder (created if missing).
        fingerprint: the run's data settings; must match the folder's ``run.json``.
    """

    def __init__(self, work_dir: str | os.PathLike, fingerprint: dict[str, Any]) -> None:
        self.root = Path(work_dir)
        self.shard_dir = self.root / "shards"
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        self._claim_or_check(fingerprint)
        self.interval_tokens = int(fingerprint.get("interval_tokens") or 0)

    def _claim_or_check(self, fingerprint: dict[str, Any]) -> None:
        run_file = self.root / RUN_FILE
        if not run_file.exists():
            tmp = _write_temp(self.root, json.dumps(fingerprint, indent=2, sort_keys=True))
            try:
                os.link(tmp, run_file)  # atomic create-if-absent: parallel ranks race safely
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
        recorded = json.loads(run_file.read_text())
        differing = sorted(k for k in set(recorded) | set(fingerprint) if recorded.get(k) != fingerprint.get(k))
        if differing:
            details = "; ".join(f"{k}: {recorded.get(k)!r} then, {fingerprint.get(k)!r} now" for k in differing)
            raise ConfigError(
                f"{run_file}: the work folder belongs to a run with other settings ({details}); "
                "use the same settings to resume, or another --work-dir"
            )

    def path(self, spec: ShardSpec) -> Path:
        """File of one shard."""
        return self.shard_dir / f"{spec.name}.json"

    def is_done(self, spec: ShardSpec) -> bool:
        """True if the shard's file exists (files appear only complete)."""
        return self.path(spec).is_file()

    def pending(self, plan: Sequence[ShardSpec]) -> list[ShardSpec]:
        """The shards of ``plan`` without a file."""
        return [s for s in plan if not self.is_done(s)]

    def write(self, spec: ShardSpec, records: Sequence[TrajectoryRecord]) -> Path:
        """Write one finished shard atomically."""
        if sorted(r.index for r in records) != list(range(spec.first, spec.first + spec.count)):
            raise ValueError(f"shard {spec.name}: trajectories {[r.index for r in records]} do not match the shard")
        payload = {
            "question": spec.question,
            "first": spec.first,
            "count": spec.count,
            "trajectories": [_record_to_json(r) for r in records],
        }
        target = self.path(spec)
        os.replace(_write_temp(self.shard_dir, json.dumps(payload)), target)
        return target

    def read(self, spec: ShardSpec) -> list[TrajectoryRecord]:
        """The trajectories of one shard, checked against the shard's identity."""
        path = self.path(spec)
        try:
            payload = load_json(path, describe=_describe_shard_path)
        except StoreError as err:
            raise StoreError(f"{err}; delete the shard file to collect it again") from None
        if not isinstance(payload, dict):
            raise StoreError(f"{path}: expected a JSON object, got {type(payload).__name__}")
        if (payload.get("question"), payload.get("first"), payload.get("count")) != (spec.question, spec.first, spec.count):
            raise StoreError(f"{path}: fields question/first/count do not match shard {spec.name}")
        trajectories = payload.get("trajectories")
        if not isinstance(trajectories, list):
            raise StoreError(f"{path}: field 'trajectories' must be a list, got {short(trajectories)}")
        records = [
            _record_from_json(r, f"{path}: question {spec.question}, branch {spec.first + i}", self.interval_tokens)
            for i, r in enumerate(trajectories)
        ]
        if [r.index for r in records] != list(range(spec.first, spec.first + spec.count)):
            raise StoreError(f"{path}: field 'trajectories' lacks or repeats trajectory indices")
        return records

    def log_run(self, summary: dict[str, Any]) -> None:
        """Append one process's throughput figures to ``runs.jsonl``."""
        with open(self.root / RUNS_LOG, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(summary) + "\n")

    def runs(self) -> list[dict[str, Any]]:
        """Throughput figures of every process that collected into this folder."""
        path = self.root / RUNS_LOG
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_temp(folder: Path, text: str) -> str:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp


def _record_to_json(r: TrajectoryRecord) -> dict[str, Any]:
    return {
        "index": r.index,
        "probe_answers": r.probe_answers,
        "probe_confidence": [None if math.isnan(c) else c for c in r.probe_confidence],
        "total_tokens": r.total_tokens,
        "final_answer": r.final_answer,
        "stopped": r.stopped,
    }


def _describe_shard_path(path: JsonPath) -> str:
    if len(path) >= 2 and path[0] == "trajectories" and isinstance(path[1], int):
        rest = json_path_text(path[2:]) if len(path) > 2 else ""
        return f"trajectory {path[1]}" + (f", field {rest}" if rest else "")
    return f"field {json_path_text(path)}" if path else ""


def _record_from_json(d: Any, at: str, delta: int) -> TrajectoryRecord:
    """One trajectory of a shard file, checked field by field (``at`` names it)."""
    if not isinstance(d, dict):
        raise StoreError(f"{at}: expected an object, got {short(d)}")
    missing = [k for k in ("index", "probe_answers", "probe_confidence", "total_tokens", "final_answer", "stopped")
               if k not in d]
    if missing:
        raise StoreError(f"{at}: missing field(s) {', '.join(map(repr, missing))}")
    index = check_int(d["index"], 0, 2**31 - 1, f"{at}, field 'index'", "integers 0..2**31-1")
    total = check_int(d["total_tokens"], 0, MAX_TOTAL_TOKENS, f"{at}, field 'total_tokens'", ALLOWED_TOTAL_TOKENS)
    probes, conf = d["probe_answers"], d["probe_confidence"]
    if not isinstance(probes, list) or not all(p is None or isinstance(p, str) for p in probes):
        raise bound_error(f"{at}, field 'probe_answers'", f"got {short(probes)}", "a list of strings or nulls")
    if delta:
        check_probe_count(len(probes), total, delta, f"{at}, field 'probe_answers'")
    if not isinstance(conf, list) or len(conf) != len(probes) or not all(
        c is None or (isinstance(c, (int, float)) and not isinstance(c, bool)) for c in conf
    ):
        raise bound_error(f"{at}, field 'probe_confidence'", f"got {short(conf)} for {len(probes)} probe answers",
                          "one number or null per probe answer")
    if not (d["final_answer"] is None or isinstance(d["final_answer"], str)):
        raise bound_error(f"{at}, field 'final_answer'", f"got {short(d['final_answer'])}", "a string or null")
    if not isinstance(d["stopped"], bool):
        raise bound_error(f"{at}, field 'stopped'", f"got {short(d['stopped'])}", "true or false")
    return TrajectoryRecord(
        index=index,
        probe_answers=list(probes),
        probe_confidence=[math.nan if c is None else float(c) for c in conf],
        total_tokens=total,
        final_answer=d["final_answer"],
        stopped=d["stopped"],
    )


def sampling_record(config: CollectConfig) -> dict[str, Any]:
    """The sampling settings as ``SplitInfo.sampling`` records them."""
    return {
        "trajectories": config.trajectories,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "top_k": config.top_k,
        "max_tokens": config.max_tokens,
        "seed": config.seed,
        "probe_suffix": config.probe_suffix,
        "probe_tokens": config.probe_tokens,
        "probe_decoding": "greedy",
    }


def build_split(
    config: CollectConfig,
    questions: Sequence[Question],
    shards: ShardStore,
    plan: Sequence[ShardSpec],
) -> Split:
    """Grade every shard's raw answers and assemble the split (all shards must exist)."""
    missing = shards.pending(plan)
    if missing:
        raise StoreError(f"{shards.root}: {len(missing)} shard(s) not collected yet, e.g. {missing[0].name}")
    by_question: dict[int, list[ShardSpec]] = {}
    for spec in plan:
        by_question.setdefault(spec.question, []).append(spec)
    golds, pools, confidences = [], [], []
    for question in questions:
        canon = AnswerCanonicalizer(question.gold, use_math_verify=config.use_math_verify)
        records = [r for spec in by_question[question.index] for r in shards.read(spec)]
        if [r.index for r in records] != list(range(config.trajectories)):
            raise StoreError(f"{shards.root}: question {question.index} does not have trajectories 0..N-1 exactly once")
        golds.append(canon.gold)
        pools.append([([canon(a) for a in r.probe_answers], r.total_tokens, canon(r.final_answer)) for r in records])
        confidences.append([r.probe_confidence for r in records])
    info = SplitInfo(
        model=config.store_model_name,
        benchmark=config.store_benchmark_name,
        interval_tokens=config.interval_tokens,
        sampling=sampling_record(config),
        source=f"autotts collect from {os.path.abspath(config.questions)}",
        extra={
            "collection": config.record(),
            "grading": "math-verify" if config.use_math_verify else "normalised string equality",
            "probe_confidence": "mean log-probability of the greedy probe tokens up to the closing brace",
            "runs": shards.runs(),
        },
    )
    return Split.from_lists(info, [q.text for q in questions], golds, pools, probe_confidence=confidences)


def write_store(split: Split, out: str | os.PathLike, overwrite: bool) -> Store:
    """Save the store atomically, then load it back (validation as for any store)."""
    Store([split]).save(out, overwrite=overwrite)
    return Store.load(out)
