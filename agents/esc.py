"""Early-stopping self-consistency (ESC): stop at a unanimous window (facts section 5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.base import Controller, geometric_count
from autotts_gym.engine import Episode, EpisodeResult
from autotts_gym.engine.voting import majority


@dataclass(frozen=True)
class EarlyStoppingConsistency(Controller):
    """ESC: read windows of ``window`` whole branches; stop with the answer of the first
    window whose answers all agree; after ``max_samples`` branches, answer the majority
    of everything read.

    Args:
        max_samples: most branches to read (the paper: 64).
        window: branches per window (the paper: 8).
    """

    name = "esc"
    max_samples: int = 64
    window: int = 8

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """max_samples grows geometrically from 8 (beta 0) to 64 (beta 1); window 8."""
        return {"max_samples": geometric_count(beta, 8, 64), "window": 8}

    def run(self, episode: Episode) -> EpisodeResult:
        limit = min(self.max_samples, episode.num_available)
        finals: list[int] = []
        while len(finals) < limit:
            size = min(self.window, limit - len(finals))
            window = episode.read_whole_many(size)
            finals.extend(window)
            if size == self.window and window.count(window[0]) == size:
                return episode.answer(window[0], reason="window-agrees")
        return episode.answer(majority(finals)[0], reason="max-samples")
