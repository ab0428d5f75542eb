"""A question's branch pool, generated on demand: the data a live episode reveals.

A live episode is a replay episode over a pool that is decoded only where a controller
looks. Pool branch ``b`` of question ``q`` is the collector's trajectory ``b``: chunk ``k``
(tokens ``(k-1) Delta .. k Delta``) is sampled with the seed
``derive_seed(seed, q, b, k - 1)`` and its probe at depth ``k`` decoded greedily with
``derive_seed(seed, q, b, k - 1, PROBE_SEED_SALT)``, exactly the requests of
:class:`collection.trajectories.TrajectoryCollector`. So every episode of a question
(every seed) sees the same branch ``b``, a rerun asks for the same tokens, and a
collected store of the same settings holds the same trajectories.

:class:`LiveQuestion` has the attributes of :class:`autotts_gym.store.QuestionData` that
the engine reads, as lists that grow in place (the engine's accounting runs on them
unchanged). Until a branch ends, its ``num_probes`` is :data:`UNKNOWN_PROBES` (larger
than any depth), so the engine never finishes it early; when a chunk ends it (EOS or the
token cap), ``num_probes``, ``total_tokens``, ``final_answer`` and the finishing entries
of ``answer_at``/``tokens_at`` are set as the store would hold them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from autotts_gym.data.store import NO_ANSWER
from autotts_gym.engine.protocol import NO_ANSWER_ID
from collection.answers import AnswerCanonicalizer, extract_boxed
from collection.config import CollectConfig
from collection.generation import Completion, Request, derive_seed
from collection.trajectories import PROBE_SEED_SALT, read_probe

# num_probes of a branch that has not ended yet: deeper than any episode goes.
UNKNOWN_PROBES = 1 << 40

CHUNK, PROBE = 0, 1


@dataclass(frozen=True)
class Need:
    """One piece of a branch an action needs: chunk ``depth`` (``CHUNK``) or the probe at
    ``depth`` (``PROBE``) of pool branch ``branch``."""

    kind: int
    branch: int
    depth: int


class LiveQuestion:
    """The engine's view of one question (``QuestionData``'s attributes), filled in as
    branches are decoded. Answers are interned in the order they are revealed, after the
    no-answer string ``ERR``."""

    def __init__(self, index: int, text: str, gold: str, interval_tokens: int, pool_size: int) -> None:
        self.index = index
        self.text = text
        self.gold = gold
        self.gold_id = NO_ANSWER_ID
        self.vocab: list[str] = []
        self.no_answer_id = NO_ANSWER_ID
        self.interval_tokens = interval_tokens
        self.num_probes = [UNKNOWN_PROBES] * pool_size
        self.total_tokens = [0] * pool_size
        self.final_answer = [NO_ANSWER_ID] * pool_size
        self.answer_at: list[list[int]] = [[NO_ANSWER_ID] for _ in range(pool_size)]
        self.tokens_at: list[list[int]] = [[0] for _ in range(pool_size)]
        self.probe_confidence: list[list[float]] = [[math.nan] for _ in range(pool_size)]
        self._ids: dict[str, int] = {}
        # The no-answer string has an id from the start: a controller may compare
        # answers with ``no_answer_id`` before any branch gave it (the recorded store
        # keeps it in every question's vocabulary, so replay agrees).
        self.intern(NO_ANSWER)

    @property
    def num_branches(self) -> int:
        """Size of the branch pool."""
        return len(self.num_probes)

    def intern(self, answer: str) -> int:
        """The id of an answer string (a new id the first time it is seen)."""
        known = self._ids.get(answer)
        if known is None:
            known = self._ids[answer] = len(self.vocab)
            self.vocab.append(answer)
            if answer == self.gold:
                self.gold_id = known
            if answer == NO_ANSWER:
                self.no_answer_id = known
        return known


class QuestionPool:
    """The decoding state of one question's branches and the requests that extend them.

    Args:
        index: question index (part of every request's seed).
        text, gold: the question and its gold answer.
        prompt: prompt token ids.
        config: the collection settings (Delta, sampling, probe suffix and tokens, seed).
        pool_size: branches in the pool (the most an episode can open).
        cap: tokens one branch may generate (see ``TrajectoryCollector.token_cap``).
        probe_suffix: probe suffix token ids.
        decode: token ids -> text.
        canonicalize: raw answer -> store string (default: an ``AnswerCanonicalizer``
            of the gold with the config's grading).
    """

    def __init__(
        self,
        index: int,
        text: str,
        gold: str,
        prompt: tuple[int, ...],
        config: CollectConfig,
        pool_size: int,
        cap: int,
        probe_suffix: tuple[int, ...],
        decode: Callable[[Sequence[int]], str],
        canonicalize: Callable[[str | None], str] | None = None,
    ) -> None:
        canon = canonicalize or AnswerCanonicalizer(gold, use_math_verify=config.use_math_verify)
        self.canonicalize = canon
        gold_string = canon.gold if isinstance(canon, AnswerCanonicalizer) else gold
        self.data = LiveQuestion(index, text, gold_string, config.interval_tokens, pool_size)
        self.prompt = prompt
        self.config = config
        self.cap = cap
        self.probe_suffix = probe_suffix
        self.suffix_text = decode(probe_suffix)
        self.decode = decode
        self.tokens: list[list[int]] = [[] for _ in range(pool_size)]
        self.chunks = [0] * pool_size  # chunks decoded
        self.ended = [False] * pool_size  # EOS or token cap reached
        self.stopped = [False] * pool_size  # ended on EOS
        self.probed: list[dict[int, str | None]] = [{} for _ in range(pool_size)]  # depth -> raw answer

    # ------------------------------------------------------------- needs
    def missing(self, need: Need) -> bool:
        """True if ``need`` is not decoded yet (and can be: a branch that ended needs no chunk)."""
        b, d = need.branch, need.depth
        if need.kind == CHUNK:
            return not self.ended[b] and self.chunks[b] < d
        return d not in self.probed[b]

    def request(self, need: Need) -> Request:
        """The request that decodes ``need`` (for a chunk: the branch's *next* chunk)."""
        cfg = self.config
        b = need.branch
        tokens = self.tokens[b]
        route = self.data.index * self.data.num_branches + b
        if need.kind == CHUNK:
            delta = cfg.interval_tokens
            return Request(
                prompt=self.prompt + tuple(tokens),
                max_tokens=min(delta - len(tokens) % delta, self.cap - len(tokens)),
                temperature=cfg.temperature,
                seed=derive_seed(cfg.seed, self.data.index, b, self.chunks[b]),
                route=route,
                top_p=cfg.top_p,
                top_k=cfg.top_k,
            )
        d = need.depth
        if d > self.chunks[b] or d < 1:
            raise RuntimeError(f"question {self.data.index}: probe of branch {b} at depth {d} before its chunk")
        return Request(
            prompt=self.prompt + tuple(tokens[: d * cfg.interval_tokens]) + self.probe_suffix,
            max_tokens=cfg.probe_tokens,
            temperature=0.0,
            seed=derive_seed(cfg.seed, self.data.index, b, d - 1, PROBE_SEED_SALT),
            logprobs=True,
            route=route,
        )

    def apply(self, need: Need, request: Request, completion: Completion) -> bool:
        """Record the completion of ``request`` (made for ``need``); False if another
        episode's identical request already did (the pool is shared by every seed)."""
        b = need.branch
        if need.kind == PROBE:
            if need.depth in self.probed[b]:
                return False
            raw, confidence = read_probe(self.suffix_text, completion.tokens, completion.logprobs, self.decode)
            self.probed[b][need.depth] = raw
            self.data.answer_at[b][need.depth] = self.data.intern(self.canonicalize(raw))
            self.data.probe_confidence[b][need.depth] = confidence
            return True
        if self.ended[b] or len(self.prompt) + len(self.tokens[b]) != len(request.prompt):
            return False  # this chunk was already applied
        self._apply_chunk(b, completion)
        return True

    def _apply_chunk(self, b: int, c: Completion) -> None:
        delta = self.config.interval_tokens
        tokens = self.tokens[b]
        tokens.extend(c.tokens)
        self.chunks[b] += 1
        k = self.chunks[b]
        q = self.data
        stopped = c.stopped or not c.tokens  # an empty chunk would loop forever
        at_cap = len(tokens) >= self.cap
        if not stopped and not at_cap:
            q.answer_at[b].append(NO_ANSWER_ID)  # the probe at depth k, hidden until PROBE
            q.tokens_at[b].append(k * delta)
            q.probe_confidence[b].append(math.nan)
            return
        # The branch ended. Probes were due at every full interval it had not stopped by:
        # the collector's rule (a chunk that reaches the cap on a boundary still has one).
        full = not stopped and len(tokens) % delta == 0
        probes = k if full else k - 1
        if full:
            q.answer_at[b].append(NO_ANSWER_ID)
            q.tokens_at[b].append(k * delta)
            q.probe_confidence[b].append(math.nan)
        self.ended[b] = True
        self.stopped[b] = stopped
        final = q.intern(self.canonicalize(extract_boxed(self.decode(tokens))))
        q.num_probes[b] = probes
        q.total_tokens[b] = len(tokens)
        q.final_answer[b] = final
        q.answer_at[b].append(final)
        q.tokens_at[b].append(max(len(tokens), probes * delta))
