"""The controller base class and the schedule helpers, for controller files: ``from
agents.base import Controller``. They live in the core (:mod:`autotts_gym.engine.controller`),
beside the Episode protocol; this module re-exports them."""

from autotts_gym.engine.controller import Controller, clip01, coerce_override, geometric_count, round_half_even

__all__ = ["Controller", "clip01", "coerce_override", "geometric_count", "round_half_even"]
