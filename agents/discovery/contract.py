"""The candidate contract: what a proposed controller module may be and may use.

A candidate is ONE Python module that

* has a module docstring describing its mechanisms;
* defines exactly one subclass of :class:`agents.base.Controller`, declared
  ``@dataclass(frozen=True)``, with a class attribute ``name`` (a string), its
  hyper-parameters as dataclass fields with defaults, ``run(self, episode)``, and

  - a family: ``@staticmethod schedule(beta) -> dict`` mapping beta in [0, 1] to every
    hyper-parameter (pure, monotone: larger beta, larger budget), or
  - with free parameters (the ablation without beta parameterization):
    ``@staticmethod grid() -> list[dict]``, at most as many settings as there are betas
    in the sweep, each evaluated like one beta;

* imports only :data:`ALLOWED_MODULES` (from ``autotts_gym.engine`` only
  :data:`ENGINE_NAMES`);
* uses only the episode's public actions and views, :data:`EPISODE_ACTIONS` and
  :data:`EPISODE_VIEWS`: what a real controller has at decision time.

Everything here is data shared by the static check, the sandbox's episode view and
the prompt, so the three cannot drift apart.
"""

from __future__ import annotations

from autotts_gym.engine import PUBLIC_ACTIONS, PUBLIC_VIEWS

# Modules a candidate may import (``__future__`` for ``from __future__ import annotations``).
ALLOWED_MODULES: frozenset[str] = frozenset(
    {
        "__future__",
        "math",
        "collections",
        "collections.abc",
        "dataclasses",
        "typing",
        "itertools",
        "functools",
        "statistics",
        "heapq",
        "bisect",
        "agents.base",
        "autotts_gym.engine.voting",
        "autotts_gym.voting",  # the same module, as earlier candidates and the committed runs import it
        "autotts_gym.engine",
    }
)

# What may be imported from the engine: the status constants, and the two classes for
# type hints (a candidate cannot build an Episode: it has no question data).
ENGINE_NAMES: frozenset[str] = frozenset(
    {"ACTIVE", "FINISHED", "PRUNED", "NO_ANSWER_ID", "Episode", "EpisodeResult", "InvalidAction"}
)

# The episode's public actions and read-only views: defined once, in the engine.
EPISODE_ACTIONS = PUBLIC_ACTIONS
EPISODE_VIEWS = PUBLIC_VIEWS

# Names a candidate may not use at all: dynamic attribute access, code execution,
# files, namespaces and interpreter internals.
FORBIDDEN_NAMES: frozenset[str] = frozenset(
    {
        "getattr",
        "setattr",
        "delattr",
        "hasattr",
        "eval",
        "exec",
        "compile",
        "__import__",
        "open",
        "globals",
        "locals",
        "vars",
        "dir",
        "input",
        "breakpoint",
        "memoryview",
        "help",
        "exit",
        "quit",
        "get_type_hints",
    }
)

# Attribute names a candidate may not read or write (besides any name starting with
# "_"): the episode's hidden data (the question with its gold answer, the branch order
# of the future, the result with its correctness, the engine's own trace), module
# escapes reachable from allowed modules (``typing.sys``, ``dataclasses.inspect``),
# frame introspection, and str.format, which reads attributes named inside a string.
FORBIDDEN_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "question",
        "order",
        "result",
        "trace",
        "correct",
        "gold",
        "gold_id",
        "sys",
        "os",
        "modules",
        "builtins",
        "inspect",
        "importlib",
        "subprocess",
        "socket",
        "gc",
        "ctypes",
        "f_globals",
        "f_locals",
        "f_back",
        "f_code",
        "f_builtins",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "ag_frame",
        "tb_frame",
        "tb_next",
        "format",
        "format_map",
        "get_type_hints",
    }
)


def is_allowed_import(module: str, names: list[str] | None = None) -> str | None:
    """None if ``import module`` (or ``from module import names``) is allowed, else the
    reason as a sentence fragment."""
    if module not in ALLOWED_MODULES:
        return f"import of {module!r} is not allowed (allowed: {', '.join(sorted(ALLOWED_MODULES - {'__future__'}))})"
    if module == "autotts_gym.engine" and names is not None:
        bad = [n for n in names if n not in ENGINE_NAMES]
        if bad:
            return (
                f"from autotts_gym.engine only {', '.join(sorted(ENGINE_NAMES))} may be imported, not {', '.join(bad)}"
            )
    if names is not None and "*" in names:
        return f"'from {module} import *' is not allowed; import names explicitly"
    return None
