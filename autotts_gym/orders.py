"""Branch orders: which pool branch an episode opens first, second, ...

An episode's order is a function of (question, seed) only, so every run is
reproducible from its seeds.

* ``"release"``: the AutoTTS release's protocol, ``random.Random(seed).shuffle`` of the
  pool, a fresh generator per (question, seed). The permutation depends only on the
  pool size, so it is computed once per (size, seed).
* ``"numpy"``: ``numpy.random.default_rng([seed, question]).permutation``.
* ``"identity"``: the stored order (for debugging).

``subsample=k`` keeps the first k branches of the order: the episode can open at most k.
"""

from __future__ import annotations

import random
from functools import lru_cache

import numpy as np

SHUFFLES = ("release", "numpy", "identity")


@lru_cache(maxsize=4096)
def release_order(pool_size: int, seed: int) -> tuple[int, ...]:
    """The release's order: ``random.Random(seed).shuffle(list(range(pool_size)))``."""
    order = list(range(pool_size))
    random.Random(seed).shuffle(order)
    return tuple(order)


def branch_order(
    pool_size: int, seed: int, question: int = 0, shuffle: str = "release", subsample: int | None = None
) -> tuple[int, ...]:
    """The branch order of the episode of ``(question, seed)``.

    Args:
        pool_size: branches in the question's pool.
        seed: episode seed.
        question: question index (used by ``"numpy"``; the release's order ignores it).
        shuffle: ``"release"``, ``"numpy"`` or ``"identity"``.
        subsample: keep only the first ``subsample`` branches of the order.
    """
    if shuffle == "release":
        order = release_order(pool_size, seed)
    elif shuffle == "numpy":
        order = tuple(np.random.default_rng([seed, question]).permutation(pool_size).tolist())
    elif shuffle == "identity":
        order = tuple(range(pool_size))
    else:
        raise ValueError(f"unknown shuffle {shuffle!r}; choose one of {', '.join(SHUFFLES)}")
    if subsample is not None:
        if subsample < 1:
            raise ValueError(f"subsample must be >= 1, got {subsample}")
        order = order[:subsample]
    return order
