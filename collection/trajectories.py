"""The collection loop: decode trajectories interval by interval and probe every boundary.

A trajectory is decoded in chunks that end on interval boundaries (multiples of Delta
tokens). At each step every live trajectory contributes up to two requests, submitted
together in one batch:

* its next chunk (sampled, at most Delta tokens, seeded by question, trajectory and
  chunk, so a rerun draws the same tokens), and
* if its last chunk ended on a boundary without stopping, a *probe*: the same prefix plus
  the probe suffix, decoded greedily for a few tokens with log-probabilities.

Both requests share the prefix that the previous step just computed, so vLLM's prefix
cache serves it and only the last partial block and the suffix are computed again.

A trajectory ends when its model stops (EOS) or reaches its token cap. Its probes are the
answers at ``Delta, 2 Delta, ...`` while it had not stopped; its final answer is read
from its whole text. Trajectories are grouped into *shards* (a question and a range of
trajectory indices); a shard is handed to ``on_shard_done`` as soon as all its
trajectories ended, and new shards join the batch while fewer than ``batch_trajectories``
are live.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from collection.answers import extract_boxed
from collection.config import CollectConfig
from collection.generation import Completion, Generator, Request, derive_seed
from collection.stats import CollectionStats, Progress

PROBE_SEED_SALT = -1  # probes are greedy; the seed only keeps requests reproducible


@dataclass(frozen=True)
class ShardSpec:
    """A unit of resumable work: trajectories ``first .. first + count - 1`` of a question."""

    question: int
    first: int
    count: int

    @property
    def name(self) -> str:
        """File stem of the shard, e.g. ``q000012-t00064``."""
        return f"q{self.question:06d}-t{self.first:05d}"


@dataclass
class TrajectoryRecord:
    """What the store keeps of one trajectory (answers raw: ``None`` = no box)."""

    index: int
    probe_answers: list[str | None]
    probe_confidence: list[float]
    total_tokens: int
    final_answer: str | None
    stopped: bool


@dataclass
class _Trajectory:
    shard: ShardSpec
    index: int
    prompt: tuple[int, ...]
    cap: int
    tokens: list[int] = field(default_factory=list)
    stopped: bool = False
    probes: list[str | None] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)

    def probe_due(self, delta: int) -> bool:
        n = len(self.tokens)
        return n > 0 and n % delta == 0 and not self.stopped and len(self.probes) < n // delta

    def decoding(self) -> bool:
        return not self.stopped and len(self.tokens) < self.cap

    def done(self, delta: int) -> bool:
        return not self.decoding() and not self.probe_due(delta)


def read_probe(
    suffix_text: str, tokens: Sequence[int], logprobs: Sequence[float], decode: Callable[[Sequence[int]], str]
) -> tuple[str | None, float]:
    """The answer of one probe and the model's confidence in it.

    The answer is the content of the first box completed in ``suffix_text`` + the decoded
    probe tokens (``None`` if no box closes). The confidence is the mean log-probability
    of the tokens up to the one that closes that box (of all tokens when none does).
    """
    if not tokens:
        return None, math.nan
    if extract_boxed(suffix_text + decode(tokens)) is None:
        return None, _mean(logprobs)
    lo, hi = 1, len(tokens)  # a box once closed stays closed: bisect for the first closing token
    while lo < hi:
        mid = (lo + hi) // 2
        if extract_boxed(suffix_text + decode(tokens[:mid])) is None:
            lo = mid + 1
        else:
            hi = mid
    return extract_boxed(suffix_text + decode(tokens[:lo])), _mean(logprobs[:lo])


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan


class TrajectoryCollector:
    """Runs the step loop over shards with one :class:`Generator`.

    Args:
        generator: the model backend.
        config: run settings (Delta, N, sampling, probe settings, batch size).
        prompts: question index -> prompt token ids.
        probe_suffix: probe suffix token ids.
        decode: token ids -> text.
        max_model_len: context length; a trajectory's cap leaves room for a probe.
    """

    def __init__(
        self,
        generator: Generator,
        config: CollectConfig,
        prompts: dict[int, tuple[int, ...]],
        probe_suffix: tuple[int, ...],
        decode: Callable[[Sequence[int]], str],
        max_model_len: int | None = None,
    ) -> None:
        self.generator = generator
        self.config = config
        self.prompts = prompts
        self.probe_suffix = probe_suffix
        self.suffix_text = decode(probe_suffix)
        self.decode = decode
        self.max_model_len = max_model_len
        self.stats = CollectionStats()
        self._prompt_seen: set[int] = set()

    def token_cap(self, question: int) -> int:
        """Tokens one trajectory of ``question`` may generate."""
        cap = self.config.max_tokens
        if self.max_model_len is not None:
            room = self.max_model_len - len(self.prompts[question]) - len(self.probe_suffix) - self.config.probe_tokens
            if room < 1:
                raise ValueError(
                    f"question {question}: its prompt has {len(self.prompts[question])} tokens; with the probe "
                    f"suffix and {self.config.probe_tokens} probe tokens it does not fit max_model_len "
                    f"{self.max_model_len}"
                )
            cap = min(cap, room)
        return cap

    def run(
        self,
        shards: Iterable[ShardSpec],
        on_shard_done: Callable[[ShardSpec, list[TrajectoryRecord]], None],
        total_trajectories: int | None = None,
        initial: int = 0,
    ) -> CollectionStats:
        """Collect every shard, calling ``on_shard_done`` as each one completes.

        ``total_trajectories`` and ``initial`` (trajectories collected by an earlier run)
        only size the progress bar.
        """
        pending = deque(shards)
        total = total_trajectories if total_trajectories is not None else sum(s.count for s in pending)
        progress = Progress(total, self.config.progress, self.stats, initial=initial)
        live: list[_Trajectory] = []
        remaining: dict[ShardSpec, int] = {}
        finished: dict[ShardSpec, list[_Trajectory]] = {}
        try:
            while pending or live:
                while pending and len(live) < self.config.batch_trajectories:
                    spec = pending.popleft()
                    cap = self.token_cap(spec.question)
                    prompt = self.prompts[spec.question]
                    live.extend(_Trajectory(spec, spec.first + i, prompt, cap) for i in range(spec.count))
                    remaining[spec] = spec.count
                    finished[spec] = []
                self._step(live)
                still_live = []
                done_now = 0
                for t in live:
                    if not t.done(self.config.interval_tokens):
                        still_live.append(t)
                        continue
                    done_now += 1
                    finished[t.shard].append(t)
                    remaining[t.shard] -= 1
                    if remaining[t.shard] == 0:
                        on_shard_done(t.shard, [self._record(x) for x in sorted(finished.pop(t.shard), key=_index)])
                        del remaining[t.shard]
                live = still_live
                self.stats.trajectories += done_now
                progress.update(done_now)
        finally:
            progress.close()
        return self.stats

    # ------------------------------------------------------------ one step
    def _step(self, live: list[_Trajectory]) -> None:
        cfg = self.config
        delta = cfg.interval_tokens
        requests: list[Request] = []
        targets: list[tuple[_Trajectory, bool]] = []  # (trajectory, is_probe)
        reusable: list[int] = []
        for t in live:
            prefix = t.prompt + tuple(t.tokens)
            route = t.shard.question * cfg.trajectories + t.index
            # Tokens an earlier request already computed: the whole prefix except its
            # last sampled token, or the question prompt once a sibling has sent it.
            shared = len(prefix) - 1 if t.tokens else (len(prefix) if t.shard.question in self._prompt_seen else 0)
            if t.probe_due(delta):
                requests.append(
                    Request(
                        prompt=prefix + self.probe_suffix,
                        max_tokens=cfg.probe_tokens,
                        temperature=0.0,
                        seed=derive_seed(cfg.seed, t.shard.question, t.index, len(t.probes), PROBE_SEED_SALT),
                        logprobs=True,
                        route=route,
                    )
                )
                targets.append((t, True))
                reusable.append(shared)
            if t.decoding():
                chunk = len(t.tokens) // delta
                requests.append(
                    Request(
                        prompt=prefix,
                        max_tokens=min(delta - len(t.tokens) % delta, t.cap - len(t.tokens)),
                        temperature=cfg.temperature,
                        seed=derive_seed(cfg.seed, t.shard.question, t.index, chunk),
                        route=route,
                        top_p=cfg.top_p,
                        top_k=cfg.top_k,
                    )
                )
                targets.append((t, False))
                reusable.append(shared)
            self._prompt_seen.add(t.shard.question)
        completions = self.generator.generate(requests)
        if len(completions) != len(requests):
            raise RuntimeError(f"the backend returned {len(completions)} completions for {len(requests)} requests")
        self.stats.steps += 1
        for (t, is_probe), request, completion, shared in zip(targets, requests, completions, reusable):
            self.stats.add_request(len(request.prompt), shared, completion.cached_prompt_tokens)
            if is_probe:
                self._apply_probe(t, completion)
            else:
                self._apply_chunk(t, completion)

    def _apply_probe(self, t: _Trajectory, c: Completion) -> None:
        answer, confidence = read_probe(self.suffix_text, c.tokens, c.logprobs, self.decode)
        t.probes.append(answer)
        t.confidence.append(confidence)
        self.stats.probes += 1
        self.stats.probe_tokens += len(c.tokens)

    def _apply_chunk(self, t: _Trajectory, c: Completion) -> None:
        t.tokens.extend(c.tokens)
        t.stopped = c.stopped or not c.tokens  # an empty chunk would loop forever
        self.stats.trajectory_tokens += len(c.tokens)

    def _record(self, t: _Trajectory) -> TrajectoryRecord:
        return TrajectoryRecord(
            index=t.index,
            probe_answers=list(t.probes),
            probe_confidence=list(t.confidence),
            total_tokens=len(t.tokens),
            final_answer=extract_boxed(self.decode(t.tokens)),
            stopped=t.stopped,
        )


def _index(t: _Trajectory) -> int:
    return t.index


def plan_shards(num_questions: int, trajectories: int, shard_size: int) -> list[ShardSpec]:
    """All shards of a run, in question order."""
    return [
        ShardSpec(q, first, min(shard_size, trajectories - first))
        for q in range(num_questions)
        for first in range(0, trajectories, shard_size)
    ]
