"""autotts-gym: the AutoTTS replay MDP for test-time-scaling research."""

from autotts_gym.engine import ACTIVE, FINISHED, PRUNED, BudgetExceeded, Episode, EpisodeResult, InvalidAction
from autotts_gym.sources import load_store
from autotts_gym.store import QuestionData, Split, SplitInfo, Store, StoreError

__version__ = "0.1.0"

__all__ = [
    "ACTIVE",
    "BudgetExceeded",
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

import gymnasium as _gym

# Registered on import, as Gymnasium's own environments are: gym.make("AutoTTS-v0", ...).
if "AutoTTS-v0" not in _gym.registry:
    _gym.register(id="AutoTTS-v0", entry_point="autotts_gym.env:AutoTTSEnv")
