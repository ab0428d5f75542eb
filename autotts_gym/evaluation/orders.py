"""Branch orders: which pool branch an episode opens first, second, ...

An episode's order is a function of (question, seed) only, so every run is
reproducible from its seeds.

* ``"release"``: the AutoTTS release's protocol, ``random.Random(seed).shuffle`` of the
  pool, a fresh generator per (question, seed). The permutation depends only on the
  pool size, so it is computed once per (size, seed).
* ``"numpy"``: a numpy PCG64 permutation whose 128-bit state is a SplitMix64 hash of
  (seed, question); the generator object is reused (one per thread), because building a
  fresh ``default_rng`` costs more than the rest of an env reset.
* ``"identity"``: the stored order (for debugging).

``subsample=k`` keeps the first k branches of the order: the episode can open at most k.
"""

from __future__ import annotations

import random
import threading
from functools import lru_cache

import numpy as np

SHUFFLES = ("release", "numpy", "identity")


@lru_cache(maxsize=4096)
def release_order(pool_size: int, seed: int) -> tuple[int, ...]:
    """The release's order: ``random.Random(seed).shuffle(list(range(pool_size)))``."""
    order = list(range(pool_size))
    random.Random(seed).shuffle(order)
    return tuple(order)


_MASK64 = (1 << 64) - 1
_local = threading.local()


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def numpy_order(pool_size: int, seed: int, question: int) -> tuple[int, ...]:
    """A uniformly random permutation determined by (seed, question)."""
    generator = getattr(_local, "generator", None)
    if generator is None:
        generator = _local.generator = np.random.Generator(np.random.PCG64())
    high = _splitmix64((seed & _MASK64) ^ _splitmix64(question & _MASK64))
    low = _splitmix64(high ^ (seed >> 64))
    generator.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (high << 64) | low, "inc": ((low << 64) | high) | 1},
        "has_uint32": 0,
        "uinteger": 0,
    }
    return tuple(generator.permutation(pool_size).tolist())


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
        order = numpy_order(pool_size, seed, question)
    elif shuffle == "identity":
        order = tuple(range(pool_size))
    else:
        raise ValueError(f"unknown shuffle {shuffle!r}; choose one of {', '.join(SHUFFLES)}")
    if subsample is not None:
        if subsample < 1:
            raise ValueError(f"subsample must be >= 1, got {subsample}")
        order = order[:subsample]
    return order
