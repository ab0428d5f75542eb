"""Controllers by name: what ``--method`` on the command line resolves through.

A spec is one of:

* a built-in family name: ``sc``, ``asc``, ``esc``, ``parallel-probe``, ``cmc`` (and
  any name added to :data:`METHODS`);
* ``path/to/file.py:ClassName``: a Controller subclass defined in a user's file;
* ``module.path:ClassName``: the same from an importable module;
* ``ppo:path/to/model.zip``: a trained PPO policy (needs the ``rl`` extra);

each optionally followed by ``@BETA`` (``cmc@0.5``): the family built from its schedule
at that beta. :func:`parse_method_spec` is the one parser of that syntax; every command
goes through it. Without a beta, a built-in is built with the paper's settings (its dataclass
defaults); with a beta, from its schedule. ``overrides`` replace single parameters.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from agents.asc import AdaptiveConsistency
from agents.base import Controller, coerce_override
from agents.cmc import ConfidenceMomentum
from agents.dsr import DepthSyncRace
from agents.dsr_lock import LockedDepthSyncRace
from agents.esc import EarlyStoppingConsistency
from agents.parallel_probe import ParallelProbe
from agents.sc import SelfConsistency

METHODS: dict[str, type[Controller]] = {
    "sc": SelfConsistency,
    "asc": AdaptiveConsistency,
    "esc": EarlyStoppingConsistency,
    "parallel-probe": ParallelProbe,
    "cmc": ConfidenceMomentum,
    "dsr": DepthSyncRace,
    "dsr-lock": LockedDepthSyncRace,
}

# The paper's default beta where a family is evaluated at one point (CMC: 0.5).
DEFAULT_BETA: dict[str, float] = {"cmc": 0.5}


def method_names() -> str:
    """The built-in method names, comma-separated (for help texts and errors)."""
    return ", ".join(METHODS)


def spec_help() -> str:
    """What a method spec may be, from the registry (the ``--method`` help text)."""
    return f"{method_names()}, path/to/file.py:ClassName, module:ClassName or ppo:MODEL.zip, each optionally @BETA (e.g. cmc@0.5)"


def parse_method_spec(text: str) -> tuple[str, float | None]:
    """``"cmc@0.5"`` -> ``("cmc", 0.5)``; ``"sc"`` -> ``("sc", None)``.

    Only a suffix that parses as a number is a beta, so paths containing ``@`` still work;
    the beta must lie in [0, 1].
    """
    text = text.strip()
    if not text:
        raise ValueError(f"empty method spec; expected one of {spec_help()}")
    head, sep, tail = text.rpartition("@")
    if sep and head:
        try:
            beta = float(tail)
        except ValueError:
            return text, None
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"method spec {text!r}: beta must lie in [0, 1], got {beta:g}")
        return head, beta
    return text, None


def resolve_class(spec: str) -> type[Controller]:
    """The controller class a spec names (not for ``ppo:`` specs; a ``@BETA`` is ignored)."""
    spec = parse_method_spec(spec)[0]
    if spec in METHODS:
        return METHODS[spec]
    if ":" not in spec:
        raise ValueError(f"unknown method {spec!r}; choose one of {spec_help()}")
    where, _, name = spec.rpartition(":")
    if where.endswith(".py") or "/" in where:
        module = load_module_from_file(where)
    else:
        module = importlib.import_module(where)
    cls = getattr(module, name, None)
    if cls is None:
        raise ValueError(f"{where}: defines no {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Controller)):
        raise ValueError(f"{where}: {name} is not a subclass of agents.base.Controller")
    return cls


def load_module_from_file(path: str) -> Any:
    """Import a Python file as a module (registered, so forked workers and pickle find it)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such controller file")
    name = f"autotts_user_{abs(hash(str(file.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ValueError(f"{file}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def make_controller(spec: str, beta: float | None = None, overrides: dict[str, Any] | None = None) -> Controller:
    """Build the controller a spec names.

    Args:
        spec: see the module docstring (``cmc@0.5`` included).
        beta: build from the family's schedule at this beta (None: the spec's ``@BETA``,
            else the paper's settings for built-ins, the schedule at :data:`DEFAULT_BETA`
            where one is set).
        overrides: parameter values replacing the scheduled or default ones.
    """
    overrides = dict(overrides or {})
    spec, spec_beta = parse_method_spec(spec)
    if spec_beta is not None:
        if beta is not None and beta != spec_beta:
            raise ValueError(f"method {spec}@{spec_beta:g} is also given beta {beta:g}; give the beta once")
        beta = spec_beta
    if spec.startswith("ppo:"):
        from agents.ppo.policy import PPOController

        return PPOController.load(spec[4:], **overrides)
    cls = resolve_class(spec)
    if beta is None:
        beta = DEFAULT_BETA.get(spec)
    if beta is not None:
        if not cls.has_schedule():
            raise ValueError(f"{spec}: this controller has no beta schedule")
        return cls.from_beta(beta, **_checked(cls, overrides))
    return cls(**_checked(cls, overrides))


def _checked(cls: type, overrides: dict[str, Any]) -> dict[str, Any]:
    if not dataclasses.is_dataclass(cls):
        return overrides
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for key, value in overrides.items():
        if key not in fields:
            raise ValueError(f"{cls.__name__} has no parameter {key!r}; it has: {', '.join(fields)}")
        out[key] = coerce_override(value, fields[key].default, f"{cls.__name__}.{key}")
    return out


def parse_overrides(pairs: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` from ``--set`` flags into a dict."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out
