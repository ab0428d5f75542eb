"""PPO on AutoTTS-v0 (needs the ``rl`` extra: torch, stable-baselines3, sb3-contrib).

* :mod:`agents.ppo.train`: ``train(TrainConfig(...))`` trains MaskablePPO (or plain PPO
  through :class:`~agents.ppo.wrappers.AdmissibleActionWrapper`) on vector envs, with
  checkpoints, TensorBoard and a held-out evaluation callback; ``autotts train-ppo`` is
  its command line.
* :mod:`agents.ppo.policy`: :class:`~agents.ppo.policy.PPOController` runs a saved
  ``model.zip`` as a controller, so the evaluator scores it under the same protocol as
  SC, ASC, ESC, Parallel-Probe and CMC (``--method ppo:path/to/model.zip``).
* :mod:`agents.ppo.wrappers`: the wrapper that keeps an unmasked agent admissible.
* :mod:`agents.ppo.callbacks`: training-time evaluation and episode statistics.

Nothing is imported here, so ``import agents.ppo`` stays light.
"""
