"""Honest controllers score exactly the same isolated and in-process: every built-in
method, with and without a budget, with a probe cost, episode by episode. Only answer
ids' labels differ in isolation, and no built-in's decisions depend on them."""

from __future__ import annotations

import os

import pytest

from agents.registry import METHODS
from autotts_gym.evaluation import evaluate_many, make_options
from autotts_gym.isolation import evaluate_isolated, support
from autotts_gym.synthetic import default_store

if support() is not None and os.environ.get("AUTOTTS_REQUIRE_ISOLATION"):
    raise RuntimeError(f"AUTOTTS_REQUIRE_ISOLATION is set but this machine cannot isolate: {support()}")
pytestmark = pytest.mark.skipif(support() is not None, reason=f"no isolation here: {support()}")

FIELDS = ("question", "seed", "answer", "correct", "tokens", "sequential_tokens", "intervals", "branches_opened",
          "probes", "actions", "stop_reason")  # fmt: skip


def module_of(cls: type) -> str:
    return f"from {cls.__module__} import {cls.__name__}\n"


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize(
    "protocol", [{}, {"budget_tokens": 6000, "kappa_probe": 0.5}], ids=["unlimited", "budget-and-probe-cost"]
)
def test_builtin_methods_score_the_same_isolated(method, protocol):
    cls = METHODS[method]
    splits = list(default_store())[:2]
    options = make_options(3, **protocol)
    betas = (0.0, 1.0)
    run = evaluate_isolated(module_of(cls), splits, options, betas=betas, class_name=cls.__name__, workers=2)
    cells = [(cls.from_beta(b), s) for b in betas for s in splits]
    inproc = evaluate_many(cells, options, workers=1)
    isolated = [ev for point in run.evaluations for ev in point]
    assert len(isolated) == len(inproc)
    for a, b in zip(isolated, inproc):
        for f in FIELDS:
            if f == "answer":  # labels differ; the vote's choice is the same answer text
                assert [x["answer_text"] for x in a.rows()] == [x["answer_text"] for x in b.rows()]
            else:
                assert a.records[f].tolist() == b.records[f].tolist(), (method, f)
