"""What a live run generated, kept as a replay store (``autotts run ... --out DIR`` writes
``DIR/store``).

Each question's pool is saved when all its episodes ended (``DIR/pools/qNNNNNN.json``,
which also lets a killed run resume question by question), and the store is built from
those files. In the store, pool branch ``b`` of a question holds:

* a branch that ended (EOS or token cap): its probe answers at every full interval
  (:data:`~autotts_gym.recorded.NOT_GENERATED` where no episode probed), its length
  and its final answer, as a collected store would (same seeds, same requests);
* a branch cut where the controllers stopped it, ``c`` intervals in: ``c`` probe
  entries, ``c * Delta`` tokens and the final answer ``NOT_GENERATED``;
* a branch never opened: no probes, 0 tokens, final ``NOT_GENERATED``; if the
  question's data holds no ``ERR``, the first such branch gets one probe entry ``ERR``
  (still 0 tokens, so replay refuses to open it), which keeps ``ERR`` in the question's
  vocabulary: a live episode knows ``no_answer_id`` from the start, and so does replay.

Answer ids are the live run's: each pool file keeps its question's vocabulary in the
order answers were revealed, and the split's ``extra["answer_order"]`` numbers them first
(see :class:`~autotts_gym.data.store.Split`), so ``answer`` columns and every controller
that breaks ties by id (a PPO policy's observation) agree between the run and its replay.

The split's metadata marks it as recorded (``extra["live_run"]``), so
``autotts evaluate`` replays it with :class:`~autotts_gym.recorded.RecordedEpisode`:
the same controller, seeds and budget replay the live run's actions exactly; any other
request for a piece marked ``NOT_GENERATED`` stops with an error.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autotts_gym.data.store import ANSWER_ORDER_KEY, NO_ANSWER, Split, SplitInfo, Store
from autotts_gym.engine.recorded import NOT_GENERATED, RECORDED_KEY
from collection.answers import normalize_answer
from collection.live.pool import QuestionPool
from collection.questions import Question

Branch = tuple[list[str], int, str, list[float]]


def pool_branches(pool: QuestionPool) -> dict[int, Branch]:
    """The decoded branches of a pool: ``{branch: (probe answers, tokens, final, confidences)}``."""
    q = pool.data
    delta = q.interval_tokens
    out: dict[int, Branch] = {}
    for b in range(q.num_branches):
        chunks = pool.chunks[b]
        if chunks == 0:
            continue
        probes = q.num_probes[b] if pool.ended[b] else chunks
        answers = [q.vocab[q.answer_at[b][d]] if d in pool.probed[b] else NOT_GENERATED for d in range(1, probes + 1)]
        confidence = [q.probe_confidence[b][d] if d in pool.probed[b] else math.nan for d in range(1, probes + 1)]
        if pool.ended[b]:
            out[b] = (answers, q.total_tokens[b], q.vocab[q.final_answer[b]], confidence)
        else:
            out[b] = (answers, chunks * delta, NOT_GENERATED, confidence)
    return out


def save_pool(folder: str | os.PathLike, pool: QuestionPool) -> Path:
    """Write one question's decoded branches to ``folder/qNNNNNN.json`` (atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"q{pool.data.index:06d}.json"
    branches = {str(b): [a, t, f, [None if math.isnan(c) else c for c in conf]]
                for b, (a, t, f, conf) in pool_branches(pool).items()}
    record = {"question": pool.data.index, "gold": pool.data.gold, "vocab": list(pool.data.vocab), "branches": branches}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)
    return path


def load_pools(folder: str | os.PathLike) -> dict[int, dict[str, Any]]:
    """Every saved pool of ``folder`` by question index (empty if there is none)."""
    folder = Path(folder)
    out = {}
    for path in sorted(folder.glob("q*.json")) if folder.is_dir() else []:
        record = json.loads(path.read_text())
        out[int(record["question"])] = record
    return out


def build_recorded_split(
    questions: Sequence[Question],
    pools: dict[int, dict[str, Any]],
    pool_size: int,
    info: SplitInfo,
) -> Split:
    """The recorded split of a run: every question, every pool branch (see the module
    docstring); ``info.extra`` gets the recorded-run mark."""
    branches, confidences, vocabs = [], [], []
    for q in questions:
        saved = pools.get(q.index, {"branches": {}})["branches"]
        vocabs.append(pools.get(q.index, {}).get("vocab", [NO_ANSWER]))
        rows, confs = [], []
        for b in range(pool_size):
            answers, total, final, conf = saved.get(str(b), ([], 0, NOT_GENERATED, []))
            rows.append((list(answers), int(total), final))
            confs.append([math.nan if c is None else float(c) for c in conf])
        _keep_no_answer(rows, confs)
        branches.append(rows)
        confidences.append(confs)
    extra = dict(info.extra)
    extra[ANSWER_ORDER_KEY] = vocabs  # replay numbers answers as the live run did
    extra[RECORDED_KEY] = {
        "not_generated": NOT_GENERATED,
        "questions_recorded": sorted(pools),
        "pool_size": pool_size,
    }
    info = SplitInfo(info.model, info.benchmark, info.interval_tokens, info.sampling, info.source, info.no_answer, extra)
    return Split.from_lists(info, [q.text for q in questions], [normalize_answer(q.gold) for q in questions], branches, probe_confidence=confidences)


def _keep_no_answer(rows: list[tuple[list[str], int, str]], confs: list[list[float]]) -> None:
    if any(final == NO_ANSWER or NO_ANSWER in answers for answers, _, final in rows):
        return
    for b, (answers, total, final) in enumerate(rows):
        if total == 0 and final == NOT_GENERATED and not answers:
            answers.append(NO_ANSWER)
            confs[b].append(math.nan)
            return


def write_recorded_store(split: Split, out: str | os.PathLike) -> Store:
    """Save the recorded store (replacing an earlier one) and load it back."""
    Store([split]).save(out, overwrite=True)
    return Store.load(out)
