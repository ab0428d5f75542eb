"""The replay MDP engine: the Episode protocol, the Episode that replays it, branch views,
voting and the Controller protocol. Imports autotts_gym.data and utils only.

Controllers import the engine's public names from here (``from autotts_gym.engine import
Episode, EpisodeResult, FINISHED``), as the committed discovery runs do.
"""

from autotts_gym.engine.episode import Aggregator, Episode, default_aggregate
from autotts_gym.engine.protocol import (
    ACTIVE,
    FINISHED,
    NO_ANSWER_ID,
    PRUNED,
    PUBLIC_ACTIONS,
    PUBLIC_VIEWS,
    BudgetExceeded,
    EpisodeResult,
    InvalidAction,
)

__all__ = [
    "ACTIVE",
    "FINISHED",
    "NO_ANSWER_ID",
    "PRUNED",
    "PUBLIC_ACTIONS",
    "PUBLIC_VIEWS",
    "Aggregator",
    "BudgetExceeded",
    "Episode",
    "EpisodeResult",
    "InvalidAction",
    "default_aggregate",
]
