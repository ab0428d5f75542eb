"""``autotts evaluate``, ``compare``, ``table`` and ``plot`` end to end, with few seeds.

Tests on the release data skip when ``../shared`` is absent; ``table`` runs on the
embedded synthetic store.
"""

from __future__ import annotations

import csv
import json

import pytest

from agents.registry import make_controller
from autotts_gym.cli.main import main
from autotts_gym.data.sources import load_store
from autotts_gym.evaluation.evaluate import evaluate
from autotts_gym.evaluation.orders import release_order
from autotts_gym.reporting.plots import png_size

SPLIT = "Qwen3-4B/aime24"
PNG = b"\x89PNG\r\n\x1a\n"

# A user's controller file: a first-finisher rule and a family whose cost *falls* as
# beta grows (k = 8 at beta 0, 1 at beta 1), which the monotonicity check must flag.
USER_FILE = '''
from dataclasses import dataclass

from agents.base import Controller
from autotts_gym.engine.voting import majority


@dataclass(frozen=True)
class FirstFinisher(Controller):
    name = "first-finisher"

    def run(self, episode):
        _, answer = episode.read_whole()
        return episode.answer(answer, reason="first")


@dataclass(frozen=True)
class Shrinking(Controller):
    name = "shrinking"
    k: int = 8

    @staticmethod
    def schedule(beta):
        return {"k": 8 if beta < 0.5 else 1}

    def run(self, episode):
        finals = [episode.read_whole()[1] for _ in range(self.k)]
        return episode.answer(majority(finals)[0], reason="read-k")
'''


@pytest.fixture(scope="module")
def release_store(release):
    return load_store(release)


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "user_rules.py"
    path.write_text(USER_FILE)
    return path


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_text_matches_library(capsys, release, release_store):
    code, out, _ = run_cli(capsys, "evaluate", release, "--method", "asc", "--seeds", 3, "--splits", SPLIT, "--workers", 1)
    assert code == 0
    expected = evaluate(make_controller("asc"), release_store, splits=[SPLIT], seeds=3, workers=1)[0].summary
    line = next(line for line in out.splitlines() if line.startswith(SPLIT))
    assert "ASC:" in line
    assert f"accuracy {expected.accuracy:.2f}%" in line
    assert f"tokens {expected.tokens / 1000:.1f}k" in line
    assert f"sequential {expected.sequential_tokens / 1000:.1f}k" in line
    assert "episodes/s" in line and "90 episodes" in line


def test_evaluate_json_defaults_out_files_and_set(capsys, release, tmp_path):
    code, out, _ = run_cli(
        capsys, "evaluate", release, "--method", "cmc", "--seeds", 3, "--splits", "Qwen3-4B/*", "--json", "--out", tmp_path
    )
    assert code == 0
    objects = [json.loads(line) for line in out.splitlines()]  # stdout holds JSON lines only
    assert [o["split"] for o in objects] == ["Qwen3-4B/aime24", "Qwen3-4B/aime25"]
    first = objects[0]
    for key in ("model", "benchmark", "method", "beta", "params", "accuracy", "accuracy_ci", "tokens", "tokens_ci",
                "sequential_tokens", "sequential_tokens_ci", "episodes"):
        assert key in first
    assert first["method"] == "cmc" and first["beta"] == 0.5 and first["params"]["max_branch"] == 34  # the paper's CMC
    assert first["accuracy_ci"][0] <= first["accuracy"] <= first["accuracy_ci"][1]
    assert first["episodes"] == 90

    with open(tmp_path / "records.csv") as fh:
        records = list(csv.DictReader(fh))
    assert len(records) == 180
    assert {"split", "question", "seed", "answer", "correct", "tokens", "sequential_tokens", "stop_reason"} <= set(records[0])
    by_split = [r for r in records if r["split"] == SPLIT]
    assert sum(r["correct"] == "True" for r in by_split) / 90 * 100 == pytest.approx(first["accuracy"])
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert [s["accuracy"] for s in saved] == [o["accuracy"] for o in objects]

    code, out, _ = run_cli(capsys, "evaluate", release, "--method", "sc", "--set", "k=4", "--seeds", 3, "--splits", SPLIT, "--json")
    small = json.loads(out.splitlines()[0])
    assert small["params"] == {"k": 4} and small["label"] == "SC@4" and small["beta"] is None
    code, out, _ = run_cli(capsys, "evaluate", release, "--method", "sc", "--seeds", 3, "--splits", SPLIT, "--json")
    assert json.loads(out.splitlines()[0])["tokens"] > 10 * small["tokens"]


def test_evaluate_user_file_controller(capsys, release, release_store, user_file):
    code, out, _ = run_cli(
        capsys, "evaluate", release, "--method", f"{user_file}:FirstFinisher", "--seeds", 4, "--splits", SPLIT, "--json"
    )
    assert code == 0
    result = json.loads(out)
    assert result["method"] == "first-finisher" and result["beta"] is None
    # Independently: the first branch of each release order, read whole.
    split = release_store.split(SPLIT)
    hits, tokens = [], []
    for q in range(split.num_questions):
        for seed in range(4):
            branch = release_order(split.num_branches(q), seed)[0]
            _, total, final = split.branch_answers(q, branch)
            hits.append(final == split.gold_answers[q])
            tokens.append(total)
    assert result["accuracy"] == pytest.approx(100 * sum(hits) / len(hits))
    assert result["tokens"] == pytest.approx(sum(tokens) / len(tokens))


def test_evaluate_errors_are_sentences(capsys, release, user_file):
    code, _, err = run_cli(capsys, "evaluate", release, "--method", "nope", "--seeds", 1)
    assert code == 2
    assert "autotts evaluate: error: unknown method 'nope'" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "evaluate", release, "--method", "sc", "--set", "kk=3", "--seeds", 1)
    assert code == 2 and "SelfConsistency has no parameter 'kk'" in err
    code, _, err = run_cli(capsys, "evaluate", release, "--method", f"{user_file}:Missing", "--seeds", 1)
    assert code == 2 and "defines no 'Missing'" in err
    code, _, err = run_cli(capsys, "evaluate", release, "--method", f"{user_file}:FirstFinisher", "--beta", 0.5, "--seeds", 1)
    assert code == 2 and "no beta schedule" in err
    code, _, err = run_cli(capsys, "evaluate", release, "--method", "sc", "--splits", "Qwen9/*", "--seeds", 1)
    assert code == 2 and "no split matches 'Qwen9/*'" in err


def test_beta_sweep_monotonicity(capsys, release, user_file):
    code, out, _ = run_cli(
        capsys, "evaluate", release, "--method", f"{user_file}:Shrinking", "--betas", "0,1", "--seeds", 2, "--splits", SPLIT, "--workers", 1
    )
    assert code == 0
    assert f"monotonicity violation: shrinking on {SPLIT}: mean tokens fall" in out
    code, out, _ = run_cli(
        capsys, "evaluate", release, "--method", "sc", "--beta", 0, "--beta", 1, "--seeds", 2, "--splits", SPLIT, "--workers", 1
    )
    assert code == 0
    assert "SC@1 beta=0.0" in out and "SC@64 beta=1.0" in out
    assert "monotonicity: mean tokens are non-decreasing in beta on every split" in out


def test_workers_do_not_change_results(capsys, release):
    outs = []
    for workers in (1, 2):
        code, out, _ = run_cli(capsys, "evaluate", release, "--method", "parallel-probe", "--seeds", 2, "--splits", "Qwen3-0.6B/*", "--json", "--workers", workers)
        outs.append([{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in out.splitlines()])
    assert outs[0] == outs[1]


def test_compare_writes_table_json_csv_png(capsys, release, tmp_path):
    code, out, _ = run_cli(
        capsys, "compare", release, "--methods", "sc,cmc", "--betas", "0,1", "--seeds", 2, "--splits", SPLIT, "--out", tmp_path, "--records"
    )
    assert code == 0
    for label in ("SC@1 beta=0.0", "SC@64 beta=1.0", "CMC beta=0.0", "CMC beta=1.0"):
        assert label in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert [(r["method"], r["beta"]) for r in results] == [("sc", 0.0), ("sc", 1.0), ("cmc", 0.0), ("cmc", 1.0)]
    with open(tmp_path / "results.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 4
    with open(tmp_path / "records.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 4 * 60
    png = (tmp_path / "pareto.png").read_bytes()
    assert png[:8] == PNG and min(png_size(png)) > 100

    code, out, _ = run_cli(capsys, "plot", tmp_path / "results.json", "--out", tmp_path / "again.png", "--ci")
    assert code == 0 and (tmp_path / "again.png").read_bytes()[:8] == PNG


def test_table_layout_on_default_store(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "table", "default", "--seeds", 2, "--out", tmp_path)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("Table 1: 2 seeds, release shuffle")
    assert "search (search)" in lines[1] and "heldout (held-out)" in lines[1]
    assert "held-out avg" not in out  # one held-out benchmark: the average would repeat its columns
    labels = [line[len("synthetic") :].strip().rsplit(None, 4)[0] for line in lines if line.startswith("synthetic ")]
    assert labels == ["SC@64", "ASC", "ESC", "Parallel-Probe", "CMC beta=0.5", "CMC beta=1.0", "pool majority@128", "pool pass@128"]

    table = json.loads((tmp_path / "table1.json").read_text())
    assert table["search"] == ["search"] and table["heldout"] == ["heldout"]
    rows = {r["label"]: r for r in table["rows"]}
    for bench in ("search", "heldout"):
        ceiling = rows["pool pass@128"]["cells"][bench][0]
        assert all(r["cells"][bench][0] <= ceiling for r in table["rows"])
    assert rows["ASC"]["heldout_average"] == rows["ASC"]["cells"]["heldout"]
    summaries = json.loads((tmp_path / "summary.json").read_text())
    assert len(summaries) == 12 and all(s["seeds"] == 2 for s in summaries)
    assert (tmp_path / "table1.png").read_bytes()[:8] == PNG
    assert (tmp_path / "table1.csv").read_text().startswith("model,method,kind,search_accuracy")


def test_table_rows_roles_and_errors(capsys):
    code, out, _ = run_cli(
        capsys, "table", "default", "--rows", "sc@0.5,asc", "--search", "heldout", "--heldout", "search", "--seeds", 1, "--workers", 1
    )
    assert code == 0
    assert out.splitlines()[1].split()[:2] == ["heldout", "(search)"]
    assert "SC@8 beta=0.5" in out and "ASC" in out and "CMC" not in out
    code, _, err = run_cli(capsys, "table", "default", "--heldout", "aime25", "--seeds", 1)
    assert code == 2 and "benchmark 'aime25' is not in the store" in err
