"""The candidate's evaluation: the static check, the contract at run time, diagnostics
that name where a candidate failed, and valid candidates evaluated on every point.
(What an attacker can and cannot do in isolation: tests/isolation/test_isolation.py.)"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agents.discovery.checks import CandidateRejected, check_candidate, extract_code
from agents.discovery.sandbox import SandboxLimits, SweepJob, evaluate_candidate
from autotts_gym.data.store import Store
from autotts_gym.data.synthetic import generate_split

GOOD_RUN = """\
finals = [episode.read_whole()[1] for _ in range(min(self.k, episode.num_available))]
return episode.answer(majority(finals)[0], reason="read-k")
"""


def candidate(
    run: str = GOOD_RUN, top: str = "", header: str = "", schedule: bool = True, docstring: bool = True
) -> str:
    """A candidate module around a body of run(); ``top`` goes before the class,
    ``header`` among the imports."""
    doc = '"""A test candidate: reads k whole branches and answers their majority."""\n\n' if docstring else ""
    family = (
        "    @staticmethod\n    def schedule(beta):\n        return {'k': 1 + round(3 * beta)}\n\n" if schedule else ""
    )
    return (
        f"{doc}from __future__ import annotations\n\nfrom dataclasses import dataclass\n\n"
        f"from agents.base import Controller\nfrom autotts_gym.engine.voting import majority\n{header}\n{top}\n\n"
        "@dataclass(frozen=True)\nclass ReadK(Controller):\n    name = 'read-k'\n    k: int = 2\n\n"
        f"{family}    def run(self, episode):\n{textwrap.indent(run, '        ')}"
    )


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> str:
    """A small synthetic store (4 questions x 16 branches) on disk."""
    path = tmp_path_factory.mktemp("sandbox") / "store"
    Store([generate_split(4, 16, seed=3, model="tiny", benchmark="search")]).save(path)
    return str(path)


@pytest.fixture
def job(store_path) -> SweepJob:
    return SweepJob(store=store_path, splits=("tiny/search",), betas=(0.0, 1.0), seeds=(0, 1), trace_episodes=0)


FAST = SandboxLimits(cpu_seconds=30, wall_seconds=60, memory_mb=512, max_actions=5000)


def run_case(source: str, job: SweepJob, limits: SandboxLimits = FAST, static_check: bool = False):
    outcome = evaluate_candidate(source, job, limits, static_check=static_check)
    assert not outcome.ok, outcome
    return outcome.failure


# ---------------------------------------------------------------------------- static check
def test_valid_candidate_is_evaluated_on_every_point(job):
    outcome = evaluate_candidate(candidate(), job, FAST)
    assert outcome.ok, outcome.failure
    assert outcome.candidate == {
        "class_name": "ReadK",
        "name": "read-k",
        "docstring": "A test candidate: reads k whole branches and answers their majority.",
    }
    assert [p["label"] for p in outcome.points] == ["beta=0", "beta=1"]
    assert [p["params"] for p in outcome.points] == [{"k": 1}, {"k": 4}]
    for p in outcome.points:
        summary = p["splits"]["tiny/search"]
        assert summary["episodes"] == 8 and 0.0 <= p["accuracy"] <= 100.0
        assert p["accuracy"] == summary["accuracy"] and p["tokens"] == summary["tokens"]
    assert outcome.points[1]["tokens"] > outcome.points[0]["tokens"]  # four whole branches cost more than one


@pytest.mark.parametrize(
    ("run", "header", "kind", "fragment"),
    [
        ("return episode.answer(episode.question.gold_id)\n", "", "forbidden-attribute", "'question'"),
        ("return episode.answer(episode.order[0])\n", "", "forbidden-attribute", "'order'"),
        ("return episode.answer(episode._e.result)\n", "", "forbidden-attribute", "'_e'"),
        ("return getattr(episode, 'answer')()\n", "", "forbidden-name", "'getattr'"),
        ("setattr(self, 'k', 3)\n", "", "forbidden-name", "'setattr'"),
        ("return eval('episode.answer()')\n", "", "forbidden-name", "'eval'"),
        ("exec('x = 1')\n", "", "forbidden-name", "'exec'"),
        ("compile('1', 'x', 'eval')\n", "", "forbidden-name", "'compile'"),
        ("__import__('os')\n", "", "forbidden-name", "'__import__'"),
        ("open('notes.txt', 'w').write('x')\n", "", "forbidden-name", "'open'"),
        ("globals()['k'] = 1\n", "", "forbidden-name", "'globals'"),
        ("vars(episode)\n", "", "forbidden-name", "'vars'"),
        ("pass\n", "import os", "forbidden-import", "'os'"),
        ("pass\n", "from os import path", "forbidden-import", "'os'"),
        ("pass\n", "import socket", "forbidden-import", "'socket'"),
        ("pass\n", "import subprocess", "forbidden-import", "'subprocess'"),
        ("pass\n", "from autotts_gym.data.store import load_store", "forbidden-import", "autotts_gym.data.store"),
        ("pass\n", "from autotts_gym.engine import QuestionData", "forbidden-import", "QuestionData"),
        ("pass\n", "import agents.base", "forbidden-import", "from agents.base import"),
        ("pass\n", "from math import *", "forbidden-import", "import *"),
        ("pass\n", "from typing import operator", "forbidden-import", "'operator'"),
        ("typing.sys.modules\n", "import typing", "forbidden-attribute", "'sys'"),
        ("m = math\n", "import math", "forbidden-name", "only be used as math.<name>"),
        ("'{0.k}'.format(self)\n", "", "forbidden-attribute", "'format'"),
        ("global COUNT\n", "", "forbidden-name", "'global'"),
        ("try:\n    pass\nexcept:\n    pass\n", "", "forbidden-name", "except"),
        ("try:\n    pass\nexcept BaseException:\n    pass\n", "", "forbidden-name", "BaseException"),
        ("counts = {}\nmax(counts, key=counts.__getitem__)\n", "", "forbidden-attribute", "d.get"),
    ],
)
def test_static_check_rejects(run, header, kind, fragment):
    with pytest.raises(CandidateRejected) as err:
        check_candidate(candidate(run=run, header=header))
    assert err.value.kind == kind
    assert fragment in err.value.message and "candidate.py, line " in err.value.message


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        (candidate(docstring=False), "docstring"),
        (candidate(top="@dataclass(frozen=True)\nclass Other(Controller):\n    name = 'o'"), "exactly one subclass"),
        (candidate().replace("class ReadK(Controller)", "class ReadK"), "exactly one subclass"),
        (candidate().replace("@dataclass(frozen=True)", "@dataclass"), "frozen=True"),
        (candidate().replace("    name = 'read-k'\n", ""), "name ="),
        (candidate(schedule=False), "schedule(beta)"),
        (candidate().replace("def run(self, episode)", "def go(self, episode)"), "run(self, episode)"),
        (candidate(top="def __del__(self):\n    pass"), "__del__"),
    ],
)
def test_static_check_enforces_the_contract(source, fragment):
    with pytest.raises(CandidateRejected) as err:
        check_candidate(source)
    assert fragment in err.value.message


def test_free_parameter_mode_asks_for_grid():
    with pytest.raises(CandidateRejected, match=r"grid\(\)"):
        check_candidate(candidate(), free_params=True)
    source = candidate(schedule=False).replace(
        "    def run", "    @staticmethod\n    def grid():\n        return [{'k': 1}, {'k': 3}]\n\n    def run"
    )
    assert check_candidate(source, free_params=True).family == "grid"


def test_reference_controllers_pass_the_static_check():
    import inspect

    import agents.asc
    import agents.cmc
    import agents.parallel_probe

    for module in (agents.asc, agents.cmc, agents.parallel_probe):
        assert check_candidate(inspect.getsource(module)).family == "schedule"


def test_extract_code_takes_the_last_module_block():
    reply = "Idea first.\n```python\nx = 1\n```\nThen the module:\n```python\nclass A:\n    pass\n```\nDone."
    assert extract_code(reply) == "class A:\n    pass\n"
    assert extract_code("```\nclass B:\n    pass\n```") == "class B:\n    pass\n"
    assert extract_code("class C:\n    pass") == "class C:\n    pass\n"
    assert extract_code("I cannot help with that.") is None


# ------------------------------------------------------------------------ sandbox failures
def test_syntax_error_is_a_failure_before_and_inside_the_sandbox(job):
    source = candidate(run="return episode.answer(\n")
    assert evaluate_candidate(source, job, FAST).failure["kind"] == "syntax-error"
    failure = run_case(source, job)
    assert failure["kind"] == "syntax-error" and failure["stage"] == "load"


def test_exception_names_point_split_question_seed_and_line(job):
    failure = run_case(candidate(run="if episode.num_opened == 0:\n    raise ValueError('no branch yet')\n"), job)
    assert failure["kind"] == "exception" and failure["stage"] == "evaluate"
    assert "ValueError: no branch yet" in failure["message"]
    assert "at read-k beta=0, split tiny/search, question " in failure["message"] and ", seed 0" in failure["message"]
    assert "candidate.py, line" in failure["message"] and "in run" in failure["message"]


def test_invalid_action_and_unrevealed_answer_are_exceptions(job):
    failure = run_case(candidate(run="j = episode.branch()\nepisode.probe(j)\nepisode.probe(j)\n"), job)
    assert failure["kind"] == "exception" and "InvalidAction" in failure["message"] and "twice" in failure["message"]
    failure = run_case(candidate(run="return episode.answer(3)\n"), job)
    assert "has not revealed" in failure["message"]


def test_hidden_data_is_not_on_the_episode(job):
    failure = run_case(candidate(run="return episode.answer(episode.question.gold_id)\n"), job)
    assert failure["kind"] == "exception" and "has no attribute 'question'" in failure["message"]


def test_runtime_contract_and_impure_schedule(job):
    impure = candidate(top="CALLS = []", run=GOOD_RUN).replace(
        "return {'k': 1 + round(3 * beta)}", "CALLS.append(1)\n        return {'k': len(CALLS)}"
    )
    failure = run_case(impure, job, static_check=True)
    assert failure["kind"] == "contract" and "must be pure" in failure["message"]
    unknown = candidate().replace("return {'k': 1 + round(3 * beta)}", "return {'width': 2}")
    failure = run_case(unknown, job, static_check=True)
    assert failure["kind"] == "contract" and "width are not fields of ReadK" in failure["message"]


def test_example_candidates_pass(job):
    folder = Path(__file__).resolve().parents[2] / "discovery" / "examples"
    files = sorted(folder.glob("*.py"))
    assert len(files) >= 3
    for path in files:
        info = check_candidate(path.read_text(), path.name)
        assert info.family == "schedule" and len(info.docstring.split()) > 20


def test_sharded_evaluation_gives_the_same_points(job):
    one = evaluate_candidate(candidate(), job, FAST, workers=1)
    two = evaluate_candidate(candidate(), job, FAST, workers=2)
    assert one.ok and two.ok
    strip = [{k: v for k, v in p.items() if k != "splits"} for p in one.points]
    assert strip == [{k: v for k, v in p.items() if k != "splits"} for p in two.points]
    assert {"startup", "describe", "play", "engine", "total"} <= set(two.timing)


RICH = '''"""A candidate that uses many allowed modules: statistics, heapq, bisect, itertools,
functools caching, named tuples and a helper dataclass, to check the sandbox lets them be."""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import statistics
from collections import Counter, deque, namedtuple
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from agents.base import Controller, clip01, geometric_count
from autotts_gym.engine import ACTIVE, FINISHED
from autotts_gym.engine.voting import beta_confidence, top_two

Point = namedtuple("Point", "branch answer")


class Vote(NamedTuple):
    winner: int
    conf: float


@dataclass
class Tally:
    counts: Counter = field(default_factory=Counter)


@lru_cache(maxsize=None)
def threshold(b: float) -> float:
    return 0.8 + 0.15 * math.sqrt(b)


@dataclass(frozen=True)
class Rich(Controller):
    name = "rich"
    k: int = 4
    thr: float = 0.9

    @staticmethod
    def schedule(beta: float) -> dict[str, Any]:
        b = clip01(beta)
        return {"k": geometric_count(b, 2, 16), "thr": threshold(b)}

    def run(self, episode):
        tally = Tally()
        lengths = []
        heap = []
        for i in itertools.count():
            if i >= min(self.k, episode.num_available):
                break
            j, a = episode.read_whole()
            tally.counts[a] += 1
            bisect.insort(lengths, episode.branch_tokens(j))
            heapq.heappush(heap, (episode.branch_tokens(j), j))
            w, v1, v2 = top_two(tally.counts)
            vote = Vote(w, beta_confidence(v1, v2))
            _ = Point(j, a)
            if i > 1 and vote.conf > self.thr and statistics.mean(lengths) > 0 and episode.status(j) in (ACTIVE, FINISHED):
                label = f"confident {statistics.median(lengths):.0f}"
                return episode.answer(vote.winner, reason=label[:20])
        q = deque(sorted(tally.counts, key=tally.counts.get, reverse=True))
        return episode.answer(q[0], reason="end")
'''


def test_allowed_modules_work_in_the_sandbox(job):
    """statistics, heapq, bisect, itertools, lru_cache, namedtuple, NamedTuple and a
    helper dataclass all work under the guard (namedtuple reads a frame at load time)."""
    assert check_candidate(RICH).name == "rich"
    outcome = evaluate_candidate(RICH, job, FAST)
    assert outcome.ok, outcome.failure
    assert [p["params"]["k"] for p in outcome.points] == [2, 16]
