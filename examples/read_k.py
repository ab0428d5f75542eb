"""A user's controller, as in the README: read k whole branches, answer their majority.

``autotts evaluate STORE --method examples/read_k.py:ReadK --set k=16`` evaluates it;
``--betas 0,0.5,1`` sweeps its family (k = 2 + round(30 * beta)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.base import Controller
from autotts_gym.engine.voting import majority


@dataclass(frozen=True)
class ReadK(Controller):
    """Read ``k`` whole branches (fewer if the pool is smaller); majority of their finals."""

    name = "read-k"
    k: int = 8

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """The family: one beta in [0, 1] -> every parameter."""
        return {"k": 2 + round(30 * beta)}

    def run(self, episode: Any) -> Any:
        """Read, vote, answer."""
        finals = [episode.read_whole()[1] for _ in range(min(self.k, episode.num_available))]
        return episode.answer(majority(finals)[0], reason="read-k")
