"""Adaptive consistency (ASC): read whole branches until the vote is confident (facts section 5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.base import Controller, geometric_count
from autotts_gym.engine import Episode, EpisodeResult
from autotts_gym.engine.voting import beta_confidence, majority


@dataclass(frozen=True)
class AdaptiveConsistency(Controller):
    """ASC: read one whole branch at a time; from the second on, stop as soon as the
    Beta-majority confidence of the leader exceeds ``threshold``; else answer the
    majority after ``max_samples`` branches.

    Args:
        max_samples: most branches to read (the paper: 64).
        threshold: confidence at which to stop (the paper: 0.95).
    """

    name = "asc"
    max_samples: int = 64
    threshold: float = 0.95

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """max_samples grows geometrically from 2 (beta 0) to 64 (beta 1); threshold 0.95."""
        return {"max_samples": geometric_count(beta, 2, 64), "threshold": 0.95}

    def run(self, episode: Episode) -> EpisodeResult:
        finals: list[int] = []
        for _ in range(min(self.max_samples, episode.num_available)):
            finals.append(episode.read_whole()[1])
            if len(finals) >= 2:
                leader, v1, v2 = majority(finals)
                if beta_confidence(v1, v2) > self.threshold:
                    return episode.answer(leader, reason="confident")
        return episode.answer(majority(finals)[0], reason="max-samples")
