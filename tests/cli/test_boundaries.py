"""Every boundary tells the truth: bad values stop at CLI parsing, ``gym.make`` or
``step`` with one sentence naming the argument and what is allowed; method specs
(``METHOD@BETA``) parse the same in every command."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import autotts_gym  # noqa: F401  (registers AutoTTS-v0)
from agents.registry import METHODS, make_controller, parse_method_spec
from autotts_gym.cli.main import main
from autotts_gym.engine import InvalidAction
from autotts_gym.evaluation.evaluate import make_options


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse rejects a value
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------ METHOD@BETA
def test_evaluate_and_compare_accept_method_at_beta(capsys, tmp_path):
    common = ["default", "--seeds", "1", "--splits", "synthetic/search", "--workers", "1", "--no-progress"]
    code, out, err = run_cli(capsys, "evaluate", *common, "--method", "cmc@0.25", "--json")
    assert code == 0, err
    at = json.loads(out.splitlines()[0])
    code, out, err = run_cli(capsys, "evaluate", *common, "--method", "cmc", "--beta", "0.25", "--json")
    same = json.loads(out.splitlines()[0])
    assert {k: v for k, v in same.items() if k != "seconds"} == {k: v for k, v in at.items() if k != "seconds"}
    code, out, err = run_cli(capsys, "compare", *common, "--methods", "sc,cmc@0.25", "--out", str(tmp_path))
    assert code == 0, err
    rows = json.loads((tmp_path / "results.json").read_text())
    cmc = [r for r in rows if r["method"] == "cmc"]
    assert len(cmc) == 1 and cmc[0]["accuracy"] == at["accuracy"] and cmc[0]["tokens"] == at["tokens"]
    assert len([r for r in rows if r["method"] == "sc"]) == 5  # the default betas


def test_one_parser_for_method_specs():
    assert parse_method_spec("cmc@0.5") == ("cmc", 0.5)
    assert parse_method_spec("dir@v2/rule.py:Rule") == ("dir@v2/rule.py:Rule", None)
    assert make_controller("cmc@0.5") == make_controller("cmc", beta=0.5)
    with pytest.raises(ValueError, match=r"beta must lie in \[0, 1\], got 1.5"):
        parse_method_spec("cmc@1.5")


def test_evaluate_help_comes_from_the_registry(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in METHODS:
        assert name in text
    assert "dsr-lock" in text and "@BETA" in text


def test_a_beta_given_twice_is_an_error(capsys):
    code, _, err = run_cli(capsys, "evaluate", "default", "--method", "cmc@0.5", "--betas", "0,1", "--seeds", "1")
    assert code == 2 and "--method cmc@0.5 fixes beta 0.5" in err


# ------------------------------------------------------------- CLI parsing
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "default", "--method", "sc", "--budget-tokens", "-5"], "argument --budget-tokens: must be a positive number, got -5"),
        (["evaluate", "default", "--method", "sc", "--workers", "0"], "argument --workers: must be an integer >= 1, got 0"),
        (["evaluate", "default", "--method", "sc", "--seeds", "abc"], "argument --seeds: expected an integer, got 'abc'"),
        (["compare", "default", "--out", "x", "--workers", "0"], "argument --workers: must be an integer >= 1, got 0"),
        (["demo", "--seeds", "0"], "argument --seeds: must be an integer >= 1, got 0"),
        (["synth", "--questions", "0", "--branches", "4", "--seed", "0", "--out", "x"], "argument --questions: must be an integer >= 1"),
        (["discover", "--rounds", "1", "--proposer", "scripted:x", "--out", "x", "--workers", "0"], "argument --workers: must be an integer >= 1"),
        (["discover", "--rounds", "1", "--proposer", "scripted:x", "--out", "x", "--betas", "2"], "argument --betas: must lie in [0, 1], got 2"),
        (["train-ppo", "--store", "default", "--cost-weight", "1e-6", "--tensorboard", "x", "--out", "x", "--budget-tokens", "-5"], "argument --budget-tokens: must be a positive number"),
    ],
)  # fmt: skip
def test_nonsense_stops_at_parsing(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and message in err and not out


def test_set_names_the_parameter_and_its_type(capsys):
    code, _, err = run_cli(capsys, "evaluate", "default", "--method", "sc", "--set", "k=abc", "--seeds", "1")
    assert code == 2
    assert "autotts evaluate: error: --set k=abc: SelfConsistency.k takes an integer, got 'abc'" in err


def test_import_of_a_missing_file_says_no_such_file(capsys, tmp_path):
    missing = tmp_path / "run.json"
    code, _, err = run_cli(capsys, "import", str(missing), "--model", "M", "--benchmark", "B", "--out", str(tmp_path / "s"))
    assert code == 2 and err.strip() == f"autotts import: error: {missing}: no such file"


# ----------------------------------------------------------- gym.make and step
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"budget_tokens": -5}, "budget_tokens must be a finite number >= 0 or None (no budget), got -5"),
        ({"budget_intervals": float("inf")}, "budget_intervals must be a finite number >= 0 or None (no budget), got inf"),
        ({"cost_weight": float("nan")}, "cost_weight must be a finite number >= 0, got nan"),
        ({"max_branches": 0}, "max_branches must be an integer >= 1, got 0"),
    ],
)
def test_gym_make_rejects_nonsense(kwargs, message):
    with pytest.raises(ValueError) as err:
        gym.make("AutoTTS-v0", **kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize("action", [1.5, "a", True, np.array([1, 2])])
def test_step_takes_integers_only(action):
    env = gym.make("AutoTTS-v0")
    env.reset(seed=0)
    with pytest.raises(InvalidAction, match=r"action must be an integer in \[0, 195\)"):
        env.step(action)


def test_step_takes_numpy_integers():
    env = gym.make("AutoTTS-v0")
    env.reset(seed=0)
    env.step(np.int64(1))
    env.step(np.array(2))


def test_protocol_options_reject_nonsense():
    with pytest.raises(ValueError, match="budget_tokens must be a finite number >= 0"):
        make_options(1, budget_tokens=-5)
    with pytest.raises(ValueError, match="subsample must be an integer >= 1, got 0"):
        make_options(1, subsample=0)


# ------------------------------------------------------------------- progress
def test_progress_goes_to_stderr_when_piped_and_can_be_turned_off(capsys, tmp_path):
    argv = ["compare", "default", "--methods", "sc", "--betas", "0", "--seeds", "2", "--workers", "1"]
    code, out, err = run_cli(capsys, *argv, "--out", str(tmp_path / "a"))
    assert code == 0 and "episodes: 100%" in err and "episodes:" not in out
    code, out, err = run_cli(capsys, *argv, "--out", str(tmp_path / "b"), "--no-progress")
    assert code == 0 and err == ""
    code, out, err = run_cli(capsys, "synth", "--questions", "3", "--branches", "4", "--seed", "0", "--out", str(tmp_path / "s"))
    assert code == 0 and "synth: 100%" in err and "6/6" in err


def test_tqdm_disable_turns_bars_off(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    code, _, err = run_cli(capsys, "synth", "--questions", "3", "--branches", "4", "--seed", "0", "--out", str(tmp_path / "s"))
    assert code == 0 and err == ""
