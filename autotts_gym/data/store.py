"""The replay store: immutable, columnar reasoning trajectories of one or more splits.

A *split* is one (model, benchmark) pair: for every question, a pool of branches
(trajectories), each with the answers read at every interval boundary (the probes),
its total length in tokens and its final answer.

On disk a store is a folder::

    STORE/manifest.json                          format, version and one entry per split
    STORE/<model>/<benchmark>/questions.parquet  question_index, question, gold_answer
    STORE/<model>/<benchmark>/branches.parquet   question_index, branch_index,
                                                 probe_answers (list<string>),
                                                 total_tokens (int64), final_answer,
                                                 [probe_confidence (list<float32>)]

Both files are plain Parquet: pandas, DuckDB or Polars read them directly. In memory,
answers are interned to small integers *per question* (``QuestionData.vocab``) and token
counts are integer arrays; the engine reads a question through :meth:`Split.question`,
which builds (and caches) the Python lists its hot path indexes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from autotts_gym.data.validation import (
    ALLOWED_INTERVAL,
    ALLOWED_TOTAL_TOKENS,
    MAX_INTERVAL_TOKENS,
    MAX_TOTAL_TOKENS,
    MIN_INTERVAL_TOKENS,
    StoreError,
    bound_error,
    check_int,
    check_split,
    load_json,
    where,
)

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "NO_ANSWER", "QuestionData", "Split", "SplitInfo", "Store", "StoreError"]

FORMAT_NAME = "autotts-store"
FORMAT_VERSION = 1
NO_ANSWER = "ERR"


@dataclass(frozen=True)
class SplitInfo:
    """Metadata of one split.

    Attributes:
        model: name of the model that produced the trajectories.
        benchmark: name of the question set.
        interval_tokens: Delta, the number of tokens between two probes.
        sampling: sampling settings of the collection (temperature, max tokens, ...).
        source: where the data came from (a file, a collection run, a generator).
        no_answer: the answer string that marks an unparseable answer (``"ERR"``).
        extra: any further metadata (collection settings, calibration, ...).
    """

    model: str
    benchmark: str
    interval_tokens: int = 500
    sampling: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    no_answer: str = NO_ANSWER
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``model/benchmark``, the split's name on the command line."""
        return f"{self.model}/{self.benchmark}"


@dataclass(frozen=True)
class QuestionData:
    """One question of a split, laid out for the engine's hot path.

    Branch ``b`` has ``num_probes[b] = P`` probe answers. Its *depth* counts decoded
    intervals: depth ``k`` in ``1..P`` ends on probe ``k``; depth ``P + 1`` is the
    finishing step, which reveals the final answer. So ``answer_at[b][k]`` is the probe
    answer at depth ``k`` (index 0 is unused) and ``answer_at[b][P + 1]`` the final
    answer; ``tokens_at[b][k]`` is the cost charged to the branch once it reached depth
    ``k`` step by step: ``k * Delta`` up to ``P``, then ``max(total, P * Delta)``.

    Attributes:
        index: position of the question in its split.
        text: the question.
        gold: the gold answer string.
        gold_id: interned id of the gold answer, ``-1`` if no branch ever gave it.
        vocab: id -> answer string.
        no_answer_id: id of the no-answer string (``ERR``), ``-1`` if absent.
        interval_tokens: Delta.
        num_probes, total_tokens, final_answer: per branch.
        answer_at, tokens_at: per branch, indexed by depth (see above).
        probe_confidence: per branch, per probe depth ``k`` (index ``k``) the model's
            confidence in the probed answer, or ``None`` when the split has none.
    """

    index: int
    text: str
    gold: str
    gold_id: int
    vocab: tuple[str, ...]
    no_answer_id: int
    interval_tokens: int
    num_probes: tuple[int, ...]
    total_tokens: tuple[int, ...]
    final_answer: tuple[int, ...]
    answer_at: tuple[tuple[int, ...], ...]
    tokens_at: tuple[tuple[int, ...], ...]
    probe_confidence: tuple[tuple[float, ...], ...] | None = None

    @property
    def num_branches(self) -> int:
        """Size of the branch pool."""
        return len(self.num_probes)


# Key of ``SplitInfo.extra``: per question (by position), answers that take the first ids
# in that order, whether or not a branch holds them (the rest follow in first-seen order).
# A live run records its vocabulary in the order answers were revealed (its ids, ``ERR``
# first), so that replay numbers them as the run did.
ANSWER_ORDER_KEY = "answer_order"


def _in_answer_order(
    order: Sequence[Sequence[str]],
    branch_offsets: np.ndarray,
    probe_offsets: np.ndarray,
    probe_ids: np.ndarray,
    final_ids: np.ndarray,
    vocabs: tuple[tuple[str, ...], ...],
) -> tuple[np.ndarray, np.ndarray, tuple[tuple[str, ...], ...]]:
    """Renumber each question's answer ids so that ``order[q]``'s answers come first."""
    probe_ids, final_ids = np.array(probe_ids, np.int32), np.array(final_ids, np.int32)
    out = []
    for q, vocab in enumerate(vocabs):
        first = order[q] if q < len(order) else ()
        renumbered = tuple(dict.fromkeys([*first, *vocab]))
        if renumbered != vocab:
            index = {a: i for i, a in enumerate(renumbered)}
            new_id = np.array([index[a] for a in vocab], np.int32)
            b0, b1 = int(branch_offsets[q]), int(branch_offsets[q + 1])
            p0, p1 = int(probe_offsets[b0]), int(probe_offsets[b1])
            probe_ids[p0:p1] = new_id[probe_ids[p0:p1]]
            final_ids[b0:b1] = new_id[final_ids[b0:b1]]
        out.append(renumbered)
    return probe_ids, final_ids, tuple(out)


class Split:
    """One (model, benchmark) split in columnar form; immutable after construction.

    Answer ids number each question's answers in first-seen order (probes of branch 0,
    its final, branch 1, ...), after the answers ``info.extra["answer_order"]`` lists
    for that question, if any (those take the first ids, even one no branch holds).

    Args:
        info: the split's metadata.
        questions: question texts.
        gold_answers: gold answer strings.
        branch_offsets: ``int64[num_questions + 1]``, question q owns branches
            ``branch_offsets[q]:branch_offsets[q + 1]``.
        probe_offsets: ``int64[num_branches + 1]``, branch b owns probes
            ``probe_offsets[b]:probe_offsets[b + 1]``.
        probe_ids: ``int32[num_probes]``, answer ids interned per question.
        final_ids: ``int32[num_branches]``, interned per question.
        total_tokens: ``int64[num_branches]``.
        vocabs: per question, id -> answer string.
        probe_confidence: optional ``float32[num_probes]`` (NaN where unknown).
    """

    def __init__(
        self,
        info: SplitInfo,
        questions: Sequence[str],
        gold_answers: Sequence[str],
        branch_offsets: np.ndarray,
        probe_offsets: np.ndarray,
        probe_ids: np.ndarray,
        final_ids: np.ndarray,
        total_tokens: np.ndarray,
        vocabs: Sequence[Sequence[str]],
        probe_confidence: np.ndarray | None = None,
    ) -> None:
        self.info = info
        self.questions = tuple(questions)
        self.gold_answers = tuple(gold_answers)
        self.branch_offsets = _frozen(branch_offsets, np.int64)
        self.probe_offsets = _frozen(probe_offsets, np.int64)
        vocabs = tuple(tuple(v) for v in vocabs)
        if info.extra.get(ANSWER_ORDER_KEY):
            probe_ids, final_ids, vocabs = _in_answer_order(
                info.extra[ANSWER_ORDER_KEY], self.branch_offsets, self.probe_offsets, probe_ids, final_ids, vocabs
            )
        self.probe_ids = _frozen(probe_ids, np.int32)
        self.final_ids = _frozen(final_ids, np.int32)
        self.total_tokens = _frozen(total_tokens, np.int64)
        self.vocabs = vocabs
        self.probe_confidence = (
            None if probe_confidence is None else _frozen(probe_confidence, np.float32)
        )
        self._cache: OrderedDict[int, QuestionData] = OrderedDict()
        self._cache_size = 1024
        self._check_shapes()

    # ----------------------------------------------------------------- shape
    def _check_shapes(self) -> None:
        nq = len(self.questions)
        if len(self.gold_answers) != nq or len(self.vocabs) != nq:
            raise StoreError(f"split {self.info.name}: questions, gold answers and vocabularies differ in length")
        if len(self.branch_offsets) != nq + 1 or self.branch_offsets[0] != 0:
            raise StoreError(f"split {self.info.name}: branch_offsets must have num_questions + 1 entries from 0")
        nb = int(self.branch_offsets[-1])
        if len(self.final_ids) != nb or len(self.total_tokens) != nb or len(self.probe_offsets) != nb + 1:
            raise StoreError(f"split {self.info.name}: per-branch arrays do not match branch_offsets")
        if int(self.probe_offsets[-1]) != len(self.probe_ids):
            raise StoreError(f"split {self.info.name}: probe_offsets do not match probe_ids")
        if self.probe_confidence is not None and len(self.probe_confidence) != len(self.probe_ids):
            raise StoreError(f"split {self.info.name}: probe_confidence does not match probe_ids")

    # ----------------------------------------------------------------- views
    @property
    def name(self) -> str:
        """``model/benchmark``."""
        return self.info.name

    @property
    def num_questions(self) -> int:
        """Number of questions."""
        return len(self.questions)

    def num_branches(self, question: int) -> int:
        """Size of the branch pool of ``question``."""
        return int(self.branch_offsets[question + 1] - self.branch_offsets[question])

    def question(self, index: int) -> QuestionData:
        """The engine's view of question ``index`` (built once, then cached)."""
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        if not 0 <= index < self.num_questions:
            raise IndexError(f"split {self.name} has {self.num_questions} questions; question {index} does not exist")
        data = self._build_question(index)
        self._cache[index] = data
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return data

    def _build_question(self, q: int) -> QuestionData:
        delta = self.info.interval_tokens
        b0, b1 = int(self.branch_offsets[q]), int(self.branch_offsets[q + 1])
        offsets = self.probe_offsets[b0 : b1 + 1].tolist()
        probes = self.probe_ids[offsets[0] : offsets[-1]].tolist()
        finals = self.final_ids[b0:b1].tolist()
        totals = self.total_tokens[b0:b1].tolist()
        conf = None
        if self.probe_confidence is not None:
            conf_flat = self.probe_confidence[offsets[0] : offsets[-1]].tolist()
        answer_at, tokens_at, num_probes, confs = [], [], [], []
        base = offsets[0]
        for i in range(b1 - b0):
            lo, hi = offsets[i] - base, offsets[i + 1] - base
            p = hi - lo
            num_probes.append(p)
            answer_at.append((-1, *probes[lo:hi], finals[i]))
            tokens_at.append((*range(0, (p + 1) * delta, delta), max(totals[i], p * delta)))
            if self.probe_confidence is not None:
                confs.append((float("nan"), *conf_flat[lo:hi], float("nan")))
        vocab = self.vocabs[q]
        index_of = {a: i for i, a in enumerate(vocab)}
        if self.probe_confidence is not None:
            conf = tuple(confs)
        return QuestionData(
            index=q,
            text=self.questions[q],
            gold=self.gold_answers[q],
            gold_id=index_of.get(self.gold_answers[q], -1),
            vocab=vocab,
            no_answer_id=index_of.get(self.info.no_answer, -1),
            interval_tokens=delta,
            num_probes=tuple(num_probes),
            total_tokens=tuple(totals),
            final_answer=tuple(finals),
            answer_at=tuple(answer_at),
            tokens_at=tuple(tokens_at),
            probe_confidence=conf,
        )

    def branch_answers(self, question: int, branch: int) -> tuple[list[str], int, str]:
        """``(probe_answers, total_tokens, final_answer)`` of one branch, as strings."""
        b = int(self.branch_offsets[question]) + branch
        vocab = self.vocabs[question]
        lo, hi = int(self.probe_offsets[b]), int(self.probe_offsets[b + 1])
        probes = [vocab[i] for i in self.probe_ids[lo:hi].tolist()]
        return probes, int(self.total_tokens[b]), vocab[int(self.final_ids[b])]

    def summary(self) -> dict[str, Any]:
        """Counts and token statistics, as ``autotts info`` prints them."""
        sizes = np.diff(self.branch_offsets)
        probes = np.diff(self.probe_offsets)
        tokens = self.total_tokens
        gold_hits = 0
        for q in range(self.num_questions):
            b0, b1 = self.branch_offsets[q], self.branch_offsets[q + 1]
            vocab = self.vocabs[q]
            finals = self.final_ids[b0:b1]
            gold = self.gold_answers[q]
            gold_hits += sum(1 for f in finals.tolist() if vocab[f] == gold)
        nb = int(self.branch_offsets[-1])
        no_answer_probes = 0
        for q in range(self.num_questions):
            if self.info.no_answer in self.vocabs[q]:
                nid = self.vocabs[q].index(self.info.no_answer)
                lo = int(self.probe_offsets[self.branch_offsets[q]])
                hi = int(self.probe_offsets[self.branch_offsets[q + 1]])
                no_answer_probes += int(np.count_nonzero(self.probe_ids[lo:hi] == nid))
        return {
            "model": self.info.model,
            "benchmark": self.info.benchmark,
            "questions": self.num_questions,
            "branches": nb,
            "branches_per_question": [int(sizes.min()), int(sizes.max())] if len(sizes) else [0, 0],
            "interval_tokens": self.info.interval_tokens,
            "probes": int(len(self.probe_ids)),
            "tokens_mean": float(tokens.mean()) if nb else 0.0,
            "tokens_median": float(np.median(tokens)) if nb else 0.0,
            "tokens_p90": float(np.percentile(tokens, 90)) if nb else 0.0,
            "tokens_max": int(tokens.max()) if nb else 0,
            "probes_per_branch_mean": float(probes.mean()) if nb else 0.0,
            "branch_accuracy": gold_hits / nb if nb else 0.0,
            "no_answer_probe_rate": no_answer_probes / max(1, len(self.probe_ids)),
            "has_probe_confidence": self.probe_confidence is not None,
            "source": self.info.source,
            "sampling": self.info.sampling,
        }

    # ----------------------------------------------------------------- build
    @classmethod
    def from_lists(
        cls,
        info: SplitInfo,
        questions: Sequence[str],
        gold_answers: Sequence[str],
        branches: Sequence[Sequence[tuple[Sequence[str], int, str]]],
        probe_confidence: Sequence[Sequence[Sequence[float]]] | None = None,
    ) -> Split:
        """Build a split from plain Python lists.

        ``branches[q]`` is the list of ``(probe_answers, total_tokens, final_answer)``
        triples of question ``q``; ``probe_confidence[q][b]`` (optional) has one float
        per probe answer of that branch.
        """
        branch_offsets = [0]
        probe_offsets = [0]
        probe_ids: list[int] = []
        final_ids: list[int] = []
        totals: list[int] = []
        confs: list[float] = []
        vocabs = []
        for q, pool in enumerate(branches):
            index_of: dict[str, int] = {}
            intern = index_of.setdefault
            for b, (probe_answers, total, final) in enumerate(pool):
                probe_ids.extend(intern(a, len(index_of)) for a in probe_answers)
                final_ids.append(intern(final, len(index_of)))
                totals.append(int(total))
                probe_offsets.append(len(probe_ids))
                if probe_confidence is not None:
                    values = list(probe_confidence[q][b])
                    if len(values) != len(probe_answers):
                        raise StoreError(
                            f"split {info.name}: question {q}, branch {b}: probe_confidence has "
                            f"{len(values)} values for {len(probe_answers)} probe answers"
                        )
                    confs.extend(values)
            branch_offsets.append(len(totals))
            vocabs.append(tuple(index_of))
        return cls(
            info,
            questions,
            gold_answers,
            np.asarray(branch_offsets),
            np.asarray(probe_offsets),
            np.asarray(probe_ids, dtype=np.int32),
            np.asarray(final_ids, dtype=np.int32),
            np.asarray(totals, dtype=np.int64),
            vocabs,
            None if probe_confidence is None else np.asarray(confs, dtype=np.float32),
        )


def _frozen(array: Any, dtype: Any) -> np.ndarray:
    out = np.ascontiguousarray(array, dtype=dtype)
    out.setflags(write=False)
    return out


class Store:
    """A collection of splits. Load with :func:`autotts_gym.data.sources.load_store` or :meth:`Store.load`.

    A store read from disk reads a split's Parquet files only when the split is first
    asked for (:meth:`select`, :meth:`split`, iteration), so a broken split stops only
    what asks for it, and its error names the broken file.
    """

    def __init__(self, splits: Sequence[Split], path: str | None = None) -> None:
        self._init([s.info for s in splits], list(splits), path)

    def _init(self, infos: Sequence[SplitInfo], splits: list[Split | None], path: str | None, loaders: Any = None) -> None:
        names = [info.name for info in infos]
        if len(set(names)) != len(names):
            raise StoreError(f"store has duplicate splits: {sorted(names)}")
        if not infos:
            raise StoreError("a store needs at least one split")
        self._infos: tuple[SplitInfo, ...] = tuple(infos)
        self._splits = splits
        self._loaders = loaders
        self.path = path

    @classmethod
    def lazy(cls, infos: Sequence[SplitInfo], loaders: Sequence[Callable[[], Split]], path: str | None = None) -> Store:
        """A store whose split ``i`` is ``loaders[i]()``, called on first use."""
        store = cls.__new__(cls)
        store._init(infos, [None] * len(infos), path, list(loaders))
        return store

    def _split_at(self, i: int) -> Split:
        split = self._splits[i]
        if split is None:
            split = self._splits[i] = self._loaders[i]()
        return split

    @property
    def splits(self) -> tuple[Split, ...]:
        """Every split (each read on first use)."""
        return tuple(self._split_at(i) for i in range(len(self._infos)))

    @property
    def names(self) -> list[str]:
        """The split names, ``model/benchmark``, without reading any split."""
        return [info.name for info in self._infos]

    def __iter__(self) -> Iterator[Split]:
        return iter(self.splits)

    def __len__(self) -> int:
        return len(self._infos)

    @property
    def models(self) -> list[str]:
        """Models in first-seen order."""
        return list(dict.fromkeys(info.model for info in self._infos))

    @property
    def benchmarks(self) -> list[str]:
        """Benchmarks in first-seen order."""
        return list(dict.fromkeys(info.benchmark for info in self._infos))

    def split(self, name: str | None = None, *, model: str | None = None, benchmark: str | None = None) -> Split:
        """One split by ``"model/benchmark"`` name, or by model and/or benchmark.

        With no argument the store must hold exactly one split.
        """
        if name is not None:
            model, _, benchmark = name.rpartition("/") if "/" in name else (None, "", name)
            model = model or None
        found = [
            i
            for i, info in enumerate(self._infos)
            if (model is None or info.model == model) and (benchmark is None or info.benchmark == benchmark)
        ]
        if len(found) != 1:
            what = name or f"model={model} benchmark={benchmark}"
            raise KeyError(
                f"{what!r} matches {len(found)} splits of store {self.path or '<memory>'}; "
                f"it holds: {', '.join(self.names)}"
            )
        return self._split_at(found[0])

    def select(self, names: Sequence[str] | None) -> list[Split]:
        """The splits named (``model/benchmark``, ``model/*`` or ``*/benchmark``); all for None.

        Only the splits selected are read."""
        if not names:
            return list(self.splits)
        chosen: list[int] = []
        for name in names:
            model, _, bench = name.rpartition("/") if "/" in name else ("*", "", name)
            matched = [
                i for i, info in enumerate(self._infos) if model in ("*", info.model) and bench in ("*", info.benchmark)
            ]
            if not matched:
                raise KeyError(f"no split matches {name!r}; the store holds: {', '.join(self.names)}")
            chosen.extend(i for i in matched if i not in chosen)
        return [self._split_at(i) for i in chosen]

    # ----------------------------------------------------------------- disk
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the store to the folder ``path`` atomically (temporary folder, then rename)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        target = Path(path)
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite) to replace it")
        for split in self.splits:  # refuse to write a store that would not load
            check_split(split)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            # mkdtemp makes the folder 0700; the store gets the usual mode (a lab shares stores).
            tmp.chmod(0o777 & ~_umask())
            entries = []
            for split in self.splits:
                rel = Path(_safe_name(split.info.model)) / _safe_name(split.info.benchmark)
                folder = tmp / rel
                folder.mkdir(parents=True)
                qtable = pa.table(
                    {
                        "question_index": pa.array(np.arange(split.num_questions), pa.int32()),
                        "question": pa.array(split.questions, pa.string()),
                        "gold_answer": pa.array(split.gold_answers, pa.string()),
                    }
                )
                pq.write_table(qtable, folder / "questions.parquet")
                pq.write_table(_branches_table(split), folder / "branches.parquet")
                entries.append(
                    {
                        "model": split.info.model,
                        "benchmark": split.info.benchmark,
                        "path": rel.as_posix(),
                        "interval_tokens": split.info.interval_tokens,
                        "sampling": split.info.sampling,
                        "source": split.info.source,
                        "no_answer": split.info.no_answer,
                        "extra": split.info.extra,
                        "num_questions": split.num_questions,
                        "num_branches": int(split.branch_offsets[-1]),
                        "has_probe_confidence": split.probe_confidence is not None,
                    }
                )
            manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "splits": entries}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
                os.replace(target, old / "store")
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.path = str(target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike) -> Store:
        """Read a store folder written by :meth:`save`."""
        folder = Path(path)
        manifest_path = folder / "manifest.json"
        if not manifest_path.is_file():
            raise StoreError(f"{folder}: not a store (no manifest.json)")
        manifest = load_json(manifest_path)
        if not isinstance(manifest, dict):
            raise StoreError(f"{manifest_path}: expected a JSON object, got {type(manifest).__name__}")
        if manifest.get("format") != FORMAT_NAME:
            raise StoreError(f"{manifest_path}: field 'format' is {manifest.get('format')!r}, expected {FORMAT_NAME!r}")
        if manifest.get("version") != FORMAT_VERSION:
            raise StoreError(f"{manifest_path}: unsupported store version {manifest.get('version')!r}")
        entries = manifest.get("splits")
        if not isinstance(entries, list) or not entries:
            raise StoreError(f"{manifest_path}: field 'splits' must be a non-empty list, got {entries!r}")
        infos = [_manifest_split_info(entry, i, manifest_path) for i, entry in enumerate(entries)]
        loaders = [partial(_load_split, folder / entry["path"], info) for entry, info in zip(entries, infos)]
        return cls.lazy(infos, loaders, path=str(folder))


def _manifest_split_info(entry: Any, i: int, manifest_path: Path) -> SplitInfo:
    """Validate ``splits[i]`` of a manifest and build its SplitInfo."""
    loc = f"{manifest_path}: splits[{i}]"
    if not isinstance(entry, dict):
        raise StoreError(f"{loc} must be an object, got {type(entry).__name__}")
    for key in ("model", "benchmark", "path", "interval_tokens"):
        if key not in entry:
            raise StoreError(f"{loc} lacks field {key!r}")
    for key in ("model", "benchmark", "path"):
        if not isinstance(entry[key], str) or not entry[key]:
            raise StoreError(f"{loc}: field {key!r} must be a non-empty string, got {entry[key]!r}")
    rel = Path(entry["path"])
    if rel.is_absolute() or ".." in rel.parts:
        raise bound_error(f"{loc}: field 'path'", f"{entry['path']!r} leaves the store folder",
                          "a relative path inside the store, without '..'")
    delta = check_int(entry["interval_tokens"], MIN_INTERVAL_TOKENS, MAX_INTERVAL_TOKENS,
                      f"{loc}: field 'interval_tokens'", ALLOWED_INTERVAL)
    for key, kind, default in (("sampling", dict, {}), ("extra", dict, {}), ("source", str, ""),
                               ("no_answer", str, NO_ANSWER)):
        value = entry.get(key, default)
        if not isinstance(value, kind) or (key == "no_answer" and not value):
            raise bound_error(f"{loc}: field {key!r}", f"got {type(value).__name__} {value!r:.60}",
                              "an object" if kind is dict else ("a non-empty string" if key == "no_answer" else "a string"))
    return SplitInfo(
        model=entry["model"],
        benchmark=entry["benchmark"],
        interval_tokens=delta,
        sampling=entry.get("sampling", {}),
        source=entry.get("source", ""),
        no_answer=entry.get("no_answer", NO_ANSWER),
        extra=entry.get("extra", {}),
    )


def _umask() -> int:
    """The process's umask (read by setting it and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _safe_name(name: str) -> str:
    bad = set('/\\:*?"<>|') | {"\0"}
    cleaned = "".join("_" if c in bad else c for c in name).strip(". ")
    return cleaned or "_"


def _branches_table(split: Split):  # -> pa.Table
    import pyarrow as pa

    nb = int(split.branch_offsets[-1])
    question_of = np.repeat(np.arange(split.num_questions, dtype=np.int32), np.diff(split.branch_offsets))
    branch_index = (np.arange(nb) - np.repeat(split.branch_offsets[:-1], np.diff(split.branch_offsets))).astype(np.int32)
    # Answers are written as dictionary-encoded strings (readable by any tool). The
    # dictionary is built from the per-question vocabularies, so no per-probe string is
    # ever made: per-question id -> position in the concatenated vocabularies -> global id.
    encoded = pa.array([a for vocab in split.vocabs for a in vocab], pa.string()).dictionary_encode()
    global_of = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    vocab_start = np.concatenate([[0], np.cumsum([len(v) for v in split.vocabs])]).astype(np.int64)
    probes_per_question = np.diff(split.probe_offsets[split.branch_offsets])
    probe_global = global_of[split.probe_ids + np.repeat(vocab_start[:-1], probes_per_question)]
    final_global = global_of[split.final_ids + vocab_start[:-1][question_of]]
    offsets = pa.array(split.probe_offsets.astype(np.int32), pa.int32())
    columns = {
        "question_index": pa.array(question_of, pa.int32()),
        "branch_index": pa.array(branch_index, pa.int32()),
        "probe_answers": pa.ListArray.from_arrays(
            offsets, pa.DictionaryArray.from_arrays(pa.array(probe_global, pa.int32()), encoded.dictionary)
        ),
        "total_tokens": pa.array(split.total_tokens, pa.int64()),
        "final_answer": pa.DictionaryArray.from_arrays(pa.array(final_global, pa.int32()), encoded.dictionary),
    }
    if split.probe_confidence is not None:
        columns["probe_confidence"] = pa.ListArray.from_arrays(offsets, pa.array(split.probe_confidence, pa.float32()))
    return pa.table(columns)


def _load_split(folder: Path, info: SplitInfo) -> Split:
    """Read one split, then hand the Parquet buffers back to the system."""
    import pyarrow as pa

    split = _read_split(folder, info)
    pa.default_memory_pool().release_unused()
    return split


def _read_split(folder: Path, info: SplitInfo) -> Split:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    qpath, bpath = folder / "questions.parquet", folder / "branches.parquet"
    for p in (qpath, bpath):
        if not p.is_file():
            raise StoreError(f"{p}: missing file of split {info.name}")
    try:
        qtable = pq.read_table(qpath)
    except (pa.ArrowInvalid, OSError) as err:
        raise StoreError(f"{qpath}: unreadable Parquet file of split {info.name}: {err}") from None
    try:
        btable = pq.read_table(bpath, read_dictionary=["probe_answers.list.element", "final_answer"])
    except (pa.ArrowInvalid, OSError) as err:
        raise StoreError(f"{bpath}: unreadable Parquet file of split {info.name}: {err}") from None
    for name in ("question", "gold_answer"):
        if name not in qtable.column_names:
            raise StoreError(f"{qpath}: missing column {name!r}")
    for name in ("question_index", "probe_answers", "total_tokens", "final_answer"):
        if name not in btable.column_names:
            raise StoreError(f"{bpath}: missing column {name!r}")
    _check_column_types(qpath, qtable, bpath, btable, info.name)
    questions = _strings(qpath, qtable.column("question"), info.name, "question")
    golds = _strings(qpath, qtable.column("gold_answer"), info.name, "gold_answer")
    qidx = btable.column("question_index").to_numpy()
    if len(qidx) and np.any(np.diff(qidx) < 0):
        raise StoreError(f"{bpath}: rows must be sorted by question_index")
    if len(qidx) and (qidx[0] < 0 or qidx[-1] >= len(questions)):
        row = int(np.argmax((qidx < 0) | (qidx >= len(questions))))
        raise bound_error(where(bpath, split=info.name, field="question_index"),
                          f"row {row} refers to question {int(qidx[row])}", f"0..{len(questions) - 1}, the rows of {qpath}")
    counts = np.bincount(qidx, minlength=len(questions)) if len(qidx) else np.zeros(len(questions), np.int64)
    branch_offsets = np.concatenate([[0], np.cumsum(counts)])
    if "branch_index" in btable.column_names:
        bidx = btable.column("branch_index").to_numpy()
        expected = np.arange(len(qidx)) - np.repeat(branch_offsets[:-1], counts)
        if np.any(bidx != expected):
            row = int(np.argmax(bidx != expected))
            q = int(qidx[row])
            raise bound_error(where(bpath, split=info.name, question=q, branch=int(expected[row]), field="branch_index"),
                              f"is {int(bidx[row])} in row {row}", "0, 1, ... within each question, in row order")

    probes = btable.column("probe_answers")
    lengths = np.concatenate([pc.list_value_length(c).to_numpy(zero_copy_only=False) for c in probes.chunks] or [[]])
    probe_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    for column in ("probe_answers", "final_answer"):
        _check_dictionary_utf8(bpath, btable.column(column), info.name, column, qidx, branch_offsets, probe_offsets)
    # Intern answers: one global dictionary for the split, then per question a small
    # vocabulary (ids are per question so that a vote array stays tiny). Ids are given
    # in first-seen order over (probes of branch 0, its final, probes of branch 1, ...),
    # exactly as Split.from_lists interns them, so a saved and reloaded split has the
    # same ids as the one it was saved from.
    index: dict[str, int] = {}  # answer string -> global id, over both columns and all chunks
    probe_global = _global_ids([c.flatten() for c in probes.chunks], index)
    final_global = _global_ids(btable.column("final_answer").chunks, index)
    dictionary = list(index)
    probe_ids = np.empty(len(probe_global), np.int32)
    final_ids = np.empty(len(final_global), np.int32)
    vocabs = []
    for q in range(len(questions)):
        b0, b1 = branch_offsets[q], branch_offsets[q + 1]
        p0, p1 = probe_offsets[b0], probe_offsets[b1]
        # The question's answers in reading order: probes of branch b0, its final, ...
        per_branch = np.diff(probe_offsets[b0 : b1 + 1])
        probe_pos = np.arange(p1 - p0) + np.repeat(np.arange(b1 - b0), per_branch)
        final_pos = (probe_offsets[b0 + 1 : b1 + 1] - p0) + np.arange(b1 - b0)
        sequence = np.empty(p1 - p0 + b1 - b0, np.int64)
        sequence[probe_pos] = probe_global[p0:p1]
        sequence[final_pos] = final_global[b0:b1]
        uniq, first, inverse = np.unique(sequence, return_index=True, return_inverse=True)
        order = np.argsort(first)
        rank = np.empty(len(order), np.int32)
        rank[order] = np.arange(len(order), dtype=np.int32)
        local = rank[inverse.reshape(-1)]
        probe_ids[p0:p1] = local[probe_pos]
        final_ids[b0:b1] = local[final_pos]
        vocabs.append(tuple(dictionary[g] for g in uniq[order].tolist()))
    del probe_global, final_global
    conf = None
    if "probe_confidence" in btable.column_names:
        column = btable.column("probe_confidence")
        conf_lengths = np.concatenate(
            [pc.list_value_length(c).fill_null(-1).to_numpy(zero_copy_only=False) for c in column.chunks] or [[]]
        )
        if np.any(conf_lengths != lengths):
            row = int(np.argmax(conf_lengths != lengths))
            q = int(qidx[row])
            raise bound_error(
                where(bpath, split=info.name, question=q, branch=row - int(branch_offsets[q]), field="probe_confidence"),
                f"has {max(0, int(conf_lengths[row]))} values for {int(lengths[row])} probe answers",
                "one float (or NaN) per probe answer",
            )
        conf = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
        conf = np.nan_to_num(conf.astype(np.float32), nan=np.nan)
    totals = btable.column("total_tokens").to_numpy()
    split = Split(info, questions, golds, branch_offsets, probe_offsets, probe_ids, final_ids,
                  _checked_totals(bpath, totals, info.name, qidx, branch_offsets), vocabs, conf)
    check_split(split, bpath, qpath)
    return split


def _check_column_types(qpath: Path, qtable: Any, bpath: Path, btable: Any, name: str) -> None:
    """Arrow types and nulls of the columns (a hand-edited store fails here, by file and field)."""
    import pyarrow as pa

    def is_string(t: Any) -> bool:
        return pa.types.is_string(t) or pa.types.is_large_string(t) or (
            pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type))
        )

    checks = [
        (qpath, qtable, "question", is_string, "strings"),
        (qpath, qtable, "gold_answer", is_string, "strings"),
        (bpath, btable, "question_index", pa.types.is_integer, "integers"),
        (bpath, btable, "branch_index", pa.types.is_integer, "integers"),
        (bpath, btable, "total_tokens", pa.types.is_integer, ALLOWED_TOTAL_TOKENS),
        (bpath, btable, "final_answer", is_string, "strings"),
        (bpath, btable, "probe_answers",
         lambda t: (pa.types.is_list(t) or pa.types.is_large_list(t)) and is_string(t.value_type), "lists of strings"),
        (bpath, btable, "probe_confidence",
         lambda t: (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_floating(t.value_type),
         "lists of floats"),
    ]
    for path, table, column, ok, allowed in checks:
        if column not in table.column_names:
            continue
        col = table.column(column)
        if not ok(col.type):
            raise bound_error(where(path, split=name, field=column), f"has Arrow type {col.type}", allowed)
        if col.null_count:
            row = int(np.argmax(np.concatenate([c.is_null().to_numpy(zero_copy_only=False) for c in col.chunks])))
            raise bound_error(where(path, split=name, field=column), f"is null in row {row}", f"{allowed}, no nulls")
    if any(c.flatten().null_count for c in btable.column("probe_answers").chunks):
        raise bound_error(where(bpath, split=name, field="probe_answers"), "holds a null answer", "strings, no nulls")
    if "question_index" in qtable.column_names:
        qi = qtable.column("question_index")
        if not pa.types.is_integer(qi.type) or qi.null_count or np.any(qi.to_numpy() != np.arange(len(qi))):
            raise bound_error(where(qpath, split=name, field="question_index"), "is not the row number",
                              "integers 0, 1, 2, ... in row order")


def _strings(path: Path, column: Any, name: str, field: str) -> list[str]:
    """A string column as Python strings; invalid UTF-8 names the row."""
    try:
        return column.to_pylist()
    except UnicodeDecodeError:
        row = next(i for i in range(len(column)) if _bad_utf8(column, i))
        raise bound_error(where(path, split=name, question=row, field=field), "is not valid UTF-8", "UTF-8 text") from None


def _bad_utf8(column: Any, i: int) -> bool:
    try:
        column[i].as_py()
    except UnicodeDecodeError:
        return True
    return False


def _check_dictionary_utf8(path: Path, column: Any, name: str, field: str, qidx: np.ndarray,
                           branch_offsets: np.ndarray, probe_offsets: np.ndarray) -> None:
    """Invalid UTF-8 in the (small) answer dictionaries, located at its first row."""
    import pyarrow as pa

    start = 0  # first flattened value of the chunk
    for chunk in column.chunks:
        values = chunk.flatten() if field == "probe_answers" else chunk
        if pa.types.is_dictionary(values.type):
            dictionary = values.dictionary
            try:
                dictionary.validate(full=True)
            except pa.ArrowInvalid:
                bad = [i for i in range(len(dictionary)) if _bad_utf8(dictionary, i)]
                pos = int(np.flatnonzero(np.isin(values.indices.to_numpy(zero_copy_only=False), bad))[0]) + start
                row = pos if field == "final_answer" else int(np.searchsorted(probe_offsets, pos, "right") - 1)
                q = int(qidx[row])
                raise bound_error(where(path, split=name, question=q, branch=row - int(branch_offsets[q]), field=field),
                                  "holds an answer that is not valid UTF-8", "UTF-8 text") from None
        start += len(values)


def _checked_totals(path: Path, totals: np.ndarray, name: str, qidx: np.ndarray, branch_offsets: np.ndarray) -> np.ndarray:
    """``total_tokens`` as int64 once every value is in 0..MAX_TOTAL_TOKENS (uint64 too)."""
    bad = (totals < 0) | (totals > MAX_TOTAL_TOKENS)
    if bad.any():
        row = int(np.argmax(bad))
        q = int(qidx[row])
        raise bound_error(where(path, split=name, question=q, branch=row - int(branch_offsets[q]), field="total_tokens"),
                          f"is {'negative' if totals[row] < 0 else 'out of range'}: {int(totals[row])}",
                          ALLOWED_TOTAL_TOKENS)
    return totals.astype(np.int64, copy=False)


def _global_ids(chunks, index: dict[str, int]) -> np.ndarray:
    """Global answer ids of string chunks, dictionary-encoded or not; ``index`` grows."""
    import pyarrow as pa

    out = [np.zeros(0, np.int32)]
    for chunk in chunks:
        if not pa.types.is_dictionary(chunk.type):
            chunk = chunk.cast(pa.string()).dictionary_encode()
        # Map the chunk's (small) dictionary once, then its indices in one numpy take.
        mapping = np.fromiter((index.setdefault(a, len(index)) for a in chunk.dictionary.to_pylist()), np.int32)
        out.append(mapping[chunk.indices.to_numpy(zero_copy_only=False)] if len(mapping) else np.zeros(0, np.int32))
    return np.concatenate(out)
