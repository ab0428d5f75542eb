"""Running untrusted controller code: OS containment, and an engine it cannot reach.

Lives here: the container (bubblewrap), the sandbox-side runtime, the wire format and
the engine-side broker. May import the core (store, engine, evaluation); not agents.
"""

from autotts_gym.isolation.broker import IsolationLimits, UnitFailed
from autotts_gym.isolation.container import ContainerLimits, IsolationUnavailable, support
from autotts_gym.isolation.runner import IsolatedRun, evaluate_isolated, new_key

__all__ = [
    "ContainerLimits",
    "IsolatedRun",
    "IsolationLimits",
    "IsolationUnavailable",
    "UnitFailed",
    "evaluate_isolated",
    "new_key",
    "support",
]
