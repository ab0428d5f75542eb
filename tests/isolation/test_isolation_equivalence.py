"""Honest controllers score exactly the same isolated and in-process: every built-in
method, with and without a budget, with a probe cost, episode by episode. Only answer
ids' labels differ in isolation, and no built-in's decisions depend on them."""

from __future__ import annotations

import os

import pytest

from agents.registry import METHODS
from autotts_gym.data.synthetic import default_store
from autotts_gym.evaluation.evaluate import evaluate_many, make_options
from autotts_gym.isolation import evaluate_isolated, support

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


VIEWS_PROBE = '''
import zlib
from dataclasses import dataclass
from agents.base import Controller


@dataclass(frozen=True)
class ViewsProbe(Controller):
    """Takes every kind of action, then answers with a digest of every view as its stop
    reason: the isolated mirror must agree with the engine, view by view."""
    name = "views-probe"
    width: int = 3

    def run(self, episode):
        js = [episode.open_and_probe()[0] for _ in range(self.width)]
        j = episode.branch()
        episode.continue_branch(j)
        episode.probe(j)
        episode.continue_and_probe_many(js + js[:1])            # a branch twice in one call
        episode.continue_and_probe_many(js, [2] * len(js))      # bursts
        episode.continue_and_probe(js[0])
        if episode.is_active(js[-1]):
            episode.prune(js[-1])
        episode.read_whole()
        episode.read_whole_many(2)
        episode.open_and_probe_many(2)
        views = (
            episode.num_opened, episode.depths, [episode.status(i) for i in range(episode.num_opened)],
            [episode.is_probed(i) for i in range(episode.num_opened)], episode.active_branches,
            episode.active_by_depth(), episode.active_by_depth(False), episode.num_finished,
            episode.finished_branches, [(b, d) for b, d, _ in episode.revealed_probes], episode.tokens,
            [episode.branch_tokens(i) for i in range(episode.num_opened)], episode.sequential_tokens,
            episode.cost, episode.remaining_budget, episode.num_actions, episode.can_branch,
            len(episode.latest_answers), len(episode.finished_answers), episode.finished_vote()[1:],
        )
        return episode.answer(None, reason=f"{zlib.crc32(repr(views).encode()):08x}")
'''


@pytest.mark.parametrize("protocol", [{}, {"budget_tokens": 20000, "kappa_probe": 0.5}], ids=["unlimited", "budget"])
def test_the_isolated_mirror_agrees_with_the_engine_view_by_view(protocol, tmp_path):
    from agents.registry import make_controller

    splits = list(default_store())[:1]
    options = make_options(3, **protocol)
    path = tmp_path / "views.py"
    path.write_text(VIEWS_PROBE)
    run = evaluate_isolated(VIEWS_PROBE, splits, options, mode="params", class_name="ViewsProbe")
    inproc = evaluate_many([(make_controller(f"{path}:ViewsProbe"), splits[0])], options, workers=1)[0]
    isolated = run.evaluations[0][0]
    assert isolated.records["stop_reason"].tolist() == inproc.records["stop_reason"].tolist()
    assert isolated.records["tokens"].tolist() == inproc.records["tokens"].tolist()
