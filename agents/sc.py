"""Self-consistency (SC@k): read k branches whole, answer the majority (facts section 5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.base import Controller, geometric_count
from autotts_gym.engine import Episode, EpisodeResult
from autotts_gym.engine.voting import majority


@dataclass(frozen=True)
class SelfConsistency(Controller):
    """SC@k. Ties go to the answer read first.

    Args:
        k: branches to read whole (the paper: 64).
    """

    name = "sc"
    k: int = 64

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """k grows geometrically from 1 (beta 0) to 64 (beta 1)."""
        return {"k": geometric_count(beta, 1, 64)}

    def run(self, episode: Episode) -> EpisodeResult:
        n = min(self.k, episode.num_available)
        finals = episode.read_whole_many(n)
        return episode.answer(majority(finals)[0], reason="read-k")
