"""autotts-gym: the AutoTTS replay MDP for test-time-scaling research."""

from autotts_gym.engine import ACTIVE, FINISHED, PRUNED, Episode, EpisodeResult, InvalidAction
from autotts_gym.store import QuestionData, Split, SplitInfo, Store, StoreError, load_store

__version__ = "0.1.0"

__all__ = [
    "ACTIVE",
    "FINISHED",
    "PRUNED",
    "Episode",
    "EpisodeResult",
    "InvalidAction",
    "QuestionData",
    "Split",
    "SplitInfo",
    "Store",
    "StoreError",
    "load_store",
]
