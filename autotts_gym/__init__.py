"""autotts-gym: the AutoTTS replay MDP for test-time-scaling research."""

from autotts_gym.utils import build as _build

if _build.pure_python_requested():  # AUTOTTS_PURE_PYTHON=1: the .py sources, not the compiled engine
    _build.install_source_first()

from autotts_gym.data.sources import load_store
from autotts_gym.data.store import QuestionData, Split, SplitInfo, Store, StoreError
from autotts_gym.engine import ACTIVE, FINISHED, PRUNED, BudgetExceeded, Episode, EpisodeResult, InvalidAction

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
    _gym.register(id="AutoTTS-v0", entry_point="autotts_gym.envs.autotts_env:AutoTTSEnv")
