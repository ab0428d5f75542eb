"""The Controller protocol: a controller drives one episode; a family maps beta to controllers.

It lives in the core, beside the Episode protocol it programs against
(:mod:`autotts_gym.engine.protocol`), so the engine's evaluators and the isolated runtime know
the type without importing the controllers above them (``agents/``, which re-exports it
as ``agents.base``).

A controller is ordinary Python against the Episode protocol (the replay engine's
:class:`autotts_gym.engine.Episode`, an isolated channel, a live model)::

    class FirstFinisher(Controller):
        name = "first-finisher"

        def run(self, episode):
            j, answer = episode.read_whole()
            return episode.answer(answer, reason="first")

A *family* is a controller class whose ``schedule(beta)`` (a pure, documented function of
one scalar beta in [0, 1]) gives every hyper-parameter; ``Family.from_beta(beta)`` builds
the controller. Larger beta should mean a larger budget: the evaluator checks that the
mean cost is non-decreasing in beta.

Controllers hold no per-episode state on ``self`` (everything lives in local variables
of ``run``), so one instance can run many episodes, in any order, in any process.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from autotts_gym.engine.protocol import BudgetExceeded, EpisodeProtocol, EpisodeResult


class Controller:
    """Base class of controllers. Subclasses set ``name`` and implement :meth:`run`.

    Hyper-parameters are dataclass fields of the subclass (declare it with
    ``@dataclasses.dataclass(frozen=True)``); :meth:`params` lists them.
    """

    name: ClassVar[str] = "controller"
    # Relative cost of one episode, so an evaluator can hand out the slow cells first.
    cost_hint: ClassVar[float] = 1.0

    def run(self, episode: EpisodeProtocol) -> EpisodeResult:
        """Drive ``episode`` to its end and return ``episode.answer(...)``'s result."""
        raise NotImplementedError

    # ------------------------------------------------------------- family
    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        """The hyper-parameters at ``beta`` (families override this)."""
        raise NotImplementedError("this controller has no beta schedule")

    @classmethod
    def from_beta(cls, beta: float, **overrides: Any) -> Controller:
        """The controller of this family at ``beta``; ``overrides`` replace scheduled values."""
        if not 0.0 <= float(beta) <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {beta}")
        params = cls.schedule(float(beta))
        params.update(overrides)
        controller = cls(**params)
        # The beta that built it, reported by the evaluator. object.__setattr__ because the
        # dataclass is frozen; a slotted class without a `beta` slot just goes untagged.
        try:
            object.__setattr__(controller, "beta", float(beta))
        except AttributeError:
            pass
        return controller

    @classmethod
    def has_schedule(cls) -> bool:
        """True if the class defines its own beta schedule."""
        return cls.schedule is not Controller.schedule

    def params(self) -> dict[str, Any]:
        """The controller's hyper-parameters as a dict."""
        if dataclasses.is_dataclass(self):
            return dataclasses.asdict(self)
        return {}

    def describe(self) -> str:
        """``name(k=v, ...)`` for tables and logs."""
        args = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params().items())
        return f"{self.name}({args})" if args else self.name

    def __call__(self, episode: EpisodeProtocol) -> EpisodeResult:
        """Run the episode. A controller that hits the budget, or returns without
        answering, gets the episode's aggregation rule as its answer."""
        try:
            result = self.run(episode)
        except BudgetExceeded:
            if episode.done:
                raise
            return episode.answer(reason="budget")
        if not episode.done:
            result = episode.answer(reason="end")
        return result


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def clip01(beta: float) -> float:
    """beta clipped to [0, 1]."""
    return min(1.0, max(0.0, float(beta)))


def round_half_even(x: float) -> int:
    """Python's ``round``: half to even (the paper's schedules use it)."""
    return int(round(x))


def geometric_count(beta: float, low: int, high: int) -> int:
    """An integer from ``low`` (beta 0) to ``high`` (beta 1), geometric in beta, so a
    sweep of evenly spaced betas gives evenly spaced points on a log-token axis."""
    b = clip01(beta)
    return max(low, min(high, round_half_even(low * (high / low) ** b)))


_BOOLS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def coerce_override(value: Any, default: Any, where: str = "the parameter") -> Any:
    """A ``--set key=value`` string as the type of the field's default (others as given);
    ``where`` (``Class.field``) names it in the error."""
    if not isinstance(value, str) or isinstance(default, str):
        return value
    try:
        if isinstance(default, bool):
            return _BOOLS[value.lower()]
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except (KeyError, ValueError):
        kind = {bool: "true or false", int: "an integer", float: "a number"}[type(default)]
        raise ValueError(f"--set {where.rpartition('.')[2]}={value}: {where} takes {kind}, got {value!r}") from None
    return value
