"""What the collector asks of a model backend, and what it gets back.

The collector works in token ids: every request is a prompt of token ids plus sampling
settings, every completion returns the new token ids (and their log-probabilities when
asked). The offline backend (:mod:`collection.offline`, vLLM's ``LLM``) and the server
backend (:mod:`collection.server`, OpenAI-compatible endpoints) implement
:class:`Generator`; tests use a fake one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Request:
    """One generation request.

    Attributes:
        prompt: prompt token ids.
        max_tokens: tokens to generate at most.
        temperature: 0 means greedy.
        seed: per-request sampling seed (makes a resumed run draw the same tokens).
        logprobs: return the log-probability of every generated token.
        route: a key that keeps one trajectory's requests on one server (prefix cache).
        top_p, top_k: nucleus and top-k sampling.
    """

    prompt: tuple[int, ...]
    max_tokens: int
    temperature: float
    seed: int
    logprobs: bool = False
    route: int = 0
    top_p: float = 1.0
    top_k: int = -1


@dataclass(frozen=True)
class Completion:
    """The answer to one :class:`Request`.

    Attributes:
        tokens: generated token ids.
        stopped: True if generation ended on a stop token (EOS), False if it ran into
            ``max_tokens``.
        logprobs: one log-probability per generated token (empty if not requested).
        cached_prompt_tokens: prompt tokens the backend served from its prefix cache,
            ``None`` if the backend does not say.
    """

    tokens: tuple[int, ...]
    stopped: bool
    logprobs: tuple[float, ...] = ()
    cached_prompt_tokens: int | None = None


class Generator(Protocol):
    """A model backend: completes a batch of requests, all submitted together."""

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """One completion per request, in order."""
        ...

    def describe(self) -> dict:
        """Settings of the backend worth recording in the store (engine version, ...)."""
        ...

    def close(self) -> None:
        """Release the backend's resources."""
        ...


def derive_seed(base: int, *parts: int) -> int:
    """A 63-bit seed from the base seed and integers (question, trajectory, step).

    Stable across runs and machines (a hash, not Python's ``hash``), so that a resumed
    run asks for the very requests the interrupted one would have made.
    """
    text = ":".join(str(int(p)) for p in (base, *parts))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1
