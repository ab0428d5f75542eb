"""The Cython directives the engine's source uses, as no-ops: where Cython is not installed,
the same ``.py`` file runs as plain Python (compiled, they drop index checks that the
engine's own admissibility checks make redundant)."""

from contextlib import nullcontext


def boundscheck(enabled: bool) -> nullcontext:
    """No-op stand-in of ``cython.boundscheck`` (used as ``with cython.boundscheck(False):``)."""
    return nullcontext()


wraparound = boundscheck
