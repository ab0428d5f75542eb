"""What a reply says about a live answer: the message text and the ``autotts`` decision field."""

from __future__ import annotations

from collections import Counter
from typing import Any

from collection.live.service import LiveAnswer
from collection.serve.openai_api import ChatRequest, usage_body
from collection.serve.upstream import RequestTrace


def message_text(answer: LiveAnswer) -> str:
    """The text of a branch whose final answer is the chosen one.

    A controller may answer from probes before any branch with that answer finished (DSR,
    Parallel-Probe); then the text is the branch, up to the probe that gave the answer,
    followed by the probe suffix and the answer: what the model wrote when it was asked to
    answer there. "" if the episode chose no answer.
    """
    if answer.text or answer.result.answer < 0:
        return answer.text
    episode = answer.episode
    pool = episode.live_pool
    chosen = answer.result.answer
    for j, depth, probed in reversed(episode.revealed_probes):
        if probed == chosen:
            tokens = pool.tokens[episode.order[j]][: depth * episode.question.interval_tokens]
            return pool.decode(tokens) + pool.suffix_text + answer.result.answer_text + "}"
    return ""


def usage(answer: LiveAnswer) -> dict[str, Any]:
    """OpenAI's ``usage`` of a live answer (every token it asked the upstream for)."""
    s = answer.stats
    return usage_body(s.sampled_tokens, s.probe_tokens, s.prompt_tokens, s.cached_prompt_tokens)


def decision(answer: LiveAnswer, chat: ChatRequest, trace: RequestTrace, seconds: float) -> dict[str, Any]:
    """The ``autotts`` field: what the controller decided and what it spent.

    ``votes`` counts the final answers of finished branches; ``branch_answers`` the latest
    answer (probe or final) of every branch opened; ``charged_tokens`` is the engine's cost
    (as ``autotts evaluate`` counts it), the ``*_tokens`` below it what the upstream generated
    and read; ``upstream_seconds`` the wall time with an upstream call in flight.
    """
    r, s, episode = answer.result, answer.stats, answer.episode
    votes = Counter(episode.answer_text(a) for a in episode.finished_answers)
    latest = Counter(episode.answer_text(a) for a in episode.latest_answers if a >= 0)
    return {
        "method": chat.spec,
        "answer": r.answer_text,
        "votes": dict(votes),
        "branch_answers": dict(latest),
        "branches_opened": r.branches_opened,
        "probes": r.probes,
        "stop_reason": r.stop_reason,
        "charged_tokens": r.tokens,
        "sequential_tokens": r.sequential_tokens,
        "sampled_tokens": s.sampled_tokens,
        "probe_tokens": s.probe_tokens,
        "prompt_tokens": s.prompt_tokens,
        "cached_prompt_tokens": s.cached_prompt_tokens,
        "upstream_requests": s.requests,
        "rounds": s.rounds,
        "budget_tokens": chat.budget_tokens,
        "seed": chat.seed,
        "episode_seed": chat.episode_seed,
        "seconds": round(seconds, 4),
        "upstream_seconds": round(trace.upstream_seconds, 4),
    }
