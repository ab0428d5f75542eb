"""Keep an agent that knows nothing of action masks (plain SB3 PPO) to admissible actions.

Two designs were possible:

* a ``Discrete(k)`` over the list of admissible actions (index i = the i-th admissible
  action now). Its index meanings shift from state to state (index 5 is PROBE(2) in one
  state, CONTINUE(7) in the next), so a policy network cannot tie an output unit to an
  action, and k changes with the state;
* the env's own ``Discrete(3 + 3N)`` where an inadmissible choice is replaced by a fixed,
  documented fallback. Indices keep their meaning, the admissible part of the MDP is
  unchanged, and the agent learns the cost of a wasted choice from its consequence.

We use the second, with ANSWER as the fallback: it is the one action admissible in every
running state (the engine's aggregation rule then answers from what was revealed), so
the wrapped env accepts every index and every episode still ends by the MDP's own rule.
An agent that picks an inadmissible action therefore *stops*, which it learns to avoid
where stopping is expensive. :func:`admissible_or_fallback` is shared with
:class:`agents.ppo.policy.PPOController`, so a plain-PPO policy acts the same in training,
through the env, and in the evaluator.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from autotts_gym.envs.spaces import ANSWER

FALLBACK_ACTION = ANSWER


def admissible_or_fallback(action: int, mask: np.ndarray) -> int:
    """``action`` if the mask admits it, else :data:`FALLBACK_ACTION` (ANSWER)."""
    a = int(action)
    return a if 0 <= a < len(mask) and mask[a] else FALLBACK_ACTION


class AdmissibleActionWrapper(gym.Wrapper):
    """AutoTTS-v0 for agents without masks: an inadmissible action becomes ANSWER.

    The action and observation spaces are the env's. ``info["fallback"]`` is True on a
    step whose chosen action was replaced; :attr:`fallbacks` counts them over the
    wrapper's life. The inner env only ever receives admissible actions.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.fallbacks = 0
        self._mask = np.zeros(env.action_space.n, bool)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        self._mask = info["action_mask"]
        return obs, info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        chosen = admissible_or_fallback(action, self._mask)
        obs, reward, terminated, truncated, info = self.env.step(chosen)
        self._mask = info["action_mask"]
        replaced = chosen != int(action)
        self.fallbacks += replaced
        info["fallback"] = replaced
        return obs, reward, terminated, truncated, info
