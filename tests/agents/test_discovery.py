"""The discovery loop end to end with the scripted proposer (synthetic default store and,
when present, the real AIME24/AIME25 replay data), resume, the ablations, selection,
the prompt and the execution traces."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.discovery.contract import EPISODE_ACTIONS, EPISODE_VIEWS
from agents.discovery.history import RoundRecord, load_history, select_best
from agents.discovery.loop import DiscoveryConfig, run_discovery
from agents.discovery.prompt import PromptSettings, build_prompt
from agents.discovery.proposers import ScriptedProposer
from agents.discovery.sandbox import SandboxLimits
from agents.discovery.traces import annotate, choose_episodes, render_trace, render_traces
from autotts_gym.cli.main import main
from autotts_gym.data.store import Split, SplitInfo, Store
from autotts_gym.data.synthetic import generate_split
from autotts_gym.engine import Episode
from autotts_gym.evaluation.evaluate import evaluate_many, make_options
from autotts_gym.isolation.client import RemoteEpisode
from autotts_gym.reporting.tables import fmt_tokens

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "discovery" / "examples"
LIMITS = SandboxLimits(cpu_seconds=120, wall_seconds=300, memory_mb=1024)


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory) -> str:
    """A small store with a search and a held-out split."""
    path = tmp_path_factory.mktemp("discovery") / "store"
    Store(
        [
            generate_split(6, 24, seed=5, model="tiny", benchmark="search"),
            generate_split(6, 24, seed=6, model="tiny", benchmark="heldout"),
        ]
    ).save(path)
    return str(path)


def config(out: Path, store: str, rounds: int = 3, **changes) -> DiscoveryConfig:
    settings = dict(
        out=str(out),
        rounds=rounds,
        proposer=f"scripted:{EXAMPLES}",
        search_store=store,
        betas=(0.0, 0.5, 1.0),
        seeds=2,
        heldout_seeds=2,
        limits=LIMITS,
    )
    settings.update(changes)
    return DiscoveryConfig(**settings)


def folder_state(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


# ------------------------------------------------------------------------- end to end
def test_scripted_three_rounds_on_the_default_store(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "discover", "--rounds", "3", "--proposer", f"scripted:{EXAMPLES}", "--out", str(out),
            "--seeds", "2", "--betas", "0", "0.5", "1", "--heldout", "*/heldout", "--heldout-seeds", "3",
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "search synthetic/search (2 seeds, betas 0, 0.5, 1)" in printed
    files = sorted(p.name for p in EXAMPLES.glob("*.py"))[:3]
    for r, name in enumerate(files, 1):
        assert f"round {r}/3 [{name}]: " in printed
    assert "selected: round " in printed and "held-out synthetic/heldout (3 seeds)" in printed
    assert "outside the LLM" in printed and "cost $0.0000" in printed

    history = load_history(out)
    assert [h.round for h in history] == [1, 2, 3] and all(h.ok for h in history)
    for h in history:
        folder = out / f"round-{h.round:03d}"
        assert {
            "round.json",
            "prompt.md",
            "response.md",
            "candidate.py",
            "sweep.json",
            "traces.json",
            "traces.txt",
        } <= {p.name for p in folder.iterdir()}
        assert [p["label"] for p in h.points] == ["beta=0", "beta=0.5", "beta=1"]
        assert h.data["usage"]["source"] == files[h.round - 1] and h.data["usage"]["cost_usd"] == 0.0
        assert h.data["timing"]["outside_llm_seconds"] > 0 and h.traces
        assert len(json.loads((folder / "sweep.json").read_text())) == 3

    # The selection is the best point over all rounds, ties to fewer tokens.
    selection = json.loads((out / "selection.json").read_text())
    rec, point = select_best(history)
    assert (selection["round"], selection["point"]["label"]) == (rec.round, point["label"])
    best_acc = max(p["accuracy"] for h in history for p in h.points)
    assert point["accuracy"] == best_acc
    assert point["tokens"] == min(p["tokens"] for h in history for p in h.points if p["accuracy"] == best_acc)
    assert (out / "selected.py").read_text() == rec.code

    # Round 2's prompt shows round 1's curve, code and traces; round 1's prompt has no history.
    first, second = (out / "round-001" / "prompt.md").read_text(), (out / "round-002" / "prompt.md").read_text()
    assert "No rounds yet" in first
    one = history[0]
    assert f"## Round 1: {one.name}" in second and "Execution traces of round 1" in second
    assert f"| beta=0.5 | {one.points[1]['accuracy']:.1f} | {fmt_tokens(one.points[1]['tokens'])} |" in second
    assert one.code.strip() in second

    heldout = json.loads((out / "heldout.json").read_text())
    assert heldout["ok"] and heldout["selected_point"] == point["label"] and heldout["splits"] == ["synthetic/heldout"]

    events = EventAccumulator(str(out / "tensorboard" / "discovery"), size_guidance={"images": 0})
    events.Reload()
    best = [e.value for e in events.Scalars("search/best_accuracy")]
    assert [e.step for e in events.Scalars("search/best_accuracy")] == [1, 2, 3]
    assert best == sorted(best) and best[-1] == pytest.approx(point["accuracy"])
    assert [e.step for e in events.Images("sweep")] == [1, 2, 3]
    assert events.Scalars("search/best_tokens")[-1].value == pytest.approx(point["tokens"])


def test_prompts_never_hold_held_out_results(tmp_path, tiny_store):
    out = tmp_path / "run"
    cfg = config(out, tiny_store, rounds=2, search=("tiny/search",), heldout=("tiny/heldout",))
    run_discovery(cfg, ScriptedProposer(EXAMPLES), say=lambda _: None)
    assert (out / "heldout.json").is_file()
    # A round prompted after the held-out evaluation exists must not see it either.
    run_discovery(
        config(out, tiny_store, rounds=3, search=("tiny/search",), heldout=("tiny/heldout",)),
        ScriptedProposer(EXAMPLES),
        resume=True,
        say=lambda _: None,
    )
    heldout = json.loads((out / "heldout.json").read_text())
    search_text = set()
    for h in load_history(out):
        for p in h.points:
            search_text |= {f"{p['accuracy']:.1f}", fmt_tokens(p["tokens"])}
    heldout_text = {
        t for p in heldout["points"] for t in (f"{p['accuracy']:.1f}", fmt_tokens(p["tokens"]))
    } - search_text
    assert heldout_text
    for r in (1, 2, 3):
        prompt = (out / f"round-{r:03d}" / "prompt.md").read_text()
        assert "heldout" not in prompt
        assert not [t for t in heldout_text if t in prompt]


class InterruptedProposer(ScriptedProposer):
    """Stops the run (as Ctrl-C would) when asked for round ``stop_at``."""

    def __init__(self, folder: Path, stop_at: int) -> None:
        super().__init__(folder)
        self.stop_at = stop_at

    def propose(self, prompt, round_index):
        if round_index == self.stop_at:
            raise KeyboardInterrupt
        return super().propose(prompt, round_index)


def test_resume_after_an_interruption_keeps_finished_rounds(tmp_path, tiny_store, capsys):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_discovery(config(out, tiny_store), InterruptedProposer(EXAMPLES, stop_at=3), say=lambda _: None)
    assert sorted(p.name for p in out.glob("round-*")) == ["round-001", "round-002"]
    (out / ".round-003.tmp").mkdir()  # what a kill during round 3's write would leave
    before = {r: folder_state(out / f"round-{r:03d}") for r in (1, 2)}

    argv = ["discover", "--rounds", "3", "--proposer", f"scripted:{EXAMPLES}", "--out", str(out), "--resume"]
    argv += ["--search", tiny_store, "--seeds", "2", "--betas", "0", "0.5", "1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "resuming: rounds 1, 2 are finished" in printed and "removed the partial round .round-003.tmp" in printed
    assert "round 1/3 [" not in printed and "round 3/3 [" in printed
    assert {r: folder_state(out / f"round-{r:03d}") for r in (1, 2)} == before
    assert [h.round for h in load_history(out)] == [1, 2, 3]
    assert not (out / ".round-003.tmp").exists()


def test_resume_refuses_other_settings_and_fresh_runs_refuse_old_folders(tmp_path, tiny_store):
    out = tmp_path / "run"
    run_discovery(config(out, tiny_store, rounds=1), ScriptedProposer(EXAMPLES), say=lambda _: None)
    with pytest.raises(ValueError, match=r"started with seeds=2; resuming with seeds=5"):
        run_discovery(
            config(out, tiny_store, rounds=2, seeds=5), ScriptedProposer(EXAMPLES), resume=True, say=lambda _: None
        )
    with pytest.raises(FileExistsError, match="pass --resume"):
        run_discovery(config(out, tiny_store, rounds=2), ScriptedProposer(EXAMPLES), say=lambda _: None)
    with pytest.raises(ValueError, match="nothing to resume"):
        run_discovery(
            config(tmp_path / "empty", tiny_store), ScriptedProposer(EXAMPLES), resume=True, say=lambda _: None
        )


def test_failed_rounds_are_recorded_and_the_run_goes_on(tmp_path, tiny_store):
    folder = tmp_path / "candidates"
    folder.mkdir()
    good = sorted(EXAMPLES.glob("*.py"))[0].read_text()
    (folder / "1_forbidden.py").write_text(
        good.replace("from dataclasses import dataclass", "import os\nfrom dataclasses import dataclass")
    )
    (folder / "2_no_code.md").write_text("I would rather explain than write code.")
    (folder / "3_crash.py").write_text(good.replace("cap = min(", "raise RuntimeError('boom')\n        cap = min("))
    (folder / "4_good.md").write_text(f"Here it is:\n```python\n{good}```\n")
    out = tmp_path / "run"
    lines: list[str] = []
    result = run_discovery(
        config(out, tiny_store, rounds=4, proposer=f"scripted:{folder}"), ScriptedProposer(folder), say=lines.append
    )
    status = [(h.data["status"], (h.data["failure"] or {}).get("kind")) for h in result.rounds]
    assert status == [("failed", "forbidden-import"), ("failed", "no-code"), ("failed", "exception"), ("ok", None)]
    assert result.selection["round"] == 4
    assert not (out / "round-002" / "candidate.py").exists()
    assert "RuntimeError: boom" in result.rounds[2].data["failure"]["message"]
    assert any("round 1/4 [1_forbidden.py]: FAILED at static (forbidden-import)" in line for line in lines)
    prompt = (out / "round-004" / "prompt.md").read_text()
    assert "## Round 1: -: FAILED at static (forbidden-import)" in prompt and "import of 'os' is not allowed" in prompt
    assert "RuntimeError: boom" in prompt


def test_ablations_no_traces_and_free_parameters(tmp_path, tiny_store):
    out = tmp_path / "plain"
    run_discovery(config(out, tiny_store, rounds=2, traces=False), ScriptedProposer(EXAMPLES), say=lambda _: None)
    assert not list(out.glob("round-*/traces.*"))
    assert "Execution traces" not in (out / "round-002" / "prompt.md").read_text()

    folder = tmp_path / "grid"
    folder.mkdir()
    source = sorted(EXAMPLES.glob("*.py"))[0].read_text()
    start, end = source.index("    @staticmethod"), source.index("    def run")
    grid = '    @staticmethod\n    def grid():\n        return [{"width": 2, "max_branch": 6}, {"width": 4, "max_branch": 16}]\n\n'
    (folder / "grid.py").write_text(source[:start] + grid + source[end:])
    out = tmp_path / "free"
    result = run_discovery(
        config(out, tiny_store, rounds=1, free_params=True, proposer=f"scripted:{folder}"),
        ScriptedProposer(folder),
        say=lambda _: None,
    )
    points = result.rounds[0].points
    assert [(p["label"], p["beta"], p["params"]["width"]) for p in points] == [
        ("setting 1", None, 2),
        ("setting 2", None, 4),
    ]
    assert result.selection["point"]["label"] in ("setting 1", "setting 2")
    prompt = (out / "round-001" / "prompt.md").read_text()
    assert "def grid() -> list[dict]" in prompt and "NO beta parameterization" in prompt


def test_scripted_round_on_the_real_aime_data(tmp_path, release):
    out = tmp_path / "run"
    cfg = config(out, str(release), rounds=1, betas=(0.0, 1.0), seeds=2, heldout=("*/aime25",), heldout_seeds=2)
    result = run_discovery(cfg, ScriptedProposer(EXAMPLES), say=lambda _: None)
    rec = result.rounds[0]
    assert rec.ok
    assert sorted(rec.points[0]["splits"]) == [f"Qwen3-{m}/aime24" for m in ("0.6B", "1.7B", "4B", "8B")]
    assert sorted(result.heldout["selected"]["splits"]) == [f"Qwen3-{m}/aime25" for m in ("0.6B", "1.7B", "4B", "8B")]
    assert "aime25" not in (out / "round-001" / "prompt.md").read_text()


# ------------------------------------------------------------------------------ pieces
def record(r: int, points: list[tuple[float, float]], ok: bool = True, code: str = "") -> RoundRecord:
    pts = [
        {
            "index": i,
            "label": f"beta={i}",
            "beta": float(i),
            "params": {},
            "accuracy": a,
            "tokens": t,
            "splits": {"s/x": {"accuracy": a, "tokens": t}},
        }
        for i, (a, t) in enumerate(points)
    ]
    data = {
        "status": "ok" if ok else "failed",
        "candidate": {"name": f"c{r}", "class_name": f"C{r}", "docstring": "d"},
        "points": pts,
    }
    data["best_point"] = max(pts, key=lambda p: (p["accuracy"], -p["tokens"])) if pts else None
    if not ok:
        data["failure"] = {"stage": "evaluate", "kind": "exception", "message": "ValueError: x"}
    return RoundRecord(round=r, data=data, code=code)


def test_selection_prefers_accuracy_then_fewer_tokens():
    rounds = [
        record(1, [(70.0, 100.0), (80.0, 300.0)]),
        record(2, [(80.0, 200.0)]),
        record(3, [(95.0, 10.0)], ok=False),
    ]
    rec, point = select_best(rounds)
    assert (rec.round, point["tokens"]) == (2, 200.0)
    assert select_best([record(1, [(50.0, 1.0)], ok=False)]) is None


def test_prompt_lists_the_api_and_fits_its_limit():
    settings = PromptSettings(search_splits=("s/x",), betas=(0.0, 1.0), seeds=3, limit_chars=20_000)
    prompt = build_prompt([], settings)
    for name in EPISODE_ACTIONS + EPISODE_VIEWS:
        assert f"episode.{name}" in prompt
    history = [
        record(r, [(50.0 + r / 2, 1000.0 * r)], code=f'"""Round {r}."""\n' + "x = 1\n" * 400) for r in range(1, 41)
    ]
    prompt = build_prompt(history, settings)
    assert len(prompt) <= 20_000
    assert (
        "older rounds omitted for space" in prompt and "## Round 40: c40" in prompt and "## Round 1: c1" not in prompt
    )
    assert "Best so far: round 40 (c40) at beta=0: 70.0%" in prompt
    assert '"""Round 40."""' in prompt and '"""Round 39."""' not in prompt  # code of the best (and latest) only
    with pytest.raises(ValueError, match="too small"):
        build_prompt([], PromptSettings(search_splits=("s/x",), betas=(0.0,), seeds=1, limit_chars=2000))


def test_isolated_episode_offers_exactly_the_contract():
    public = {n for n in dir(RemoteEpisode) if not n.startswith("_")}
    assert public == set(EPISODE_ACTIONS) | set(EPISODE_VIEWS)
    assert all(hasattr(Episode, n) for n in public)


def tiny_question() -> Split:
    # Branch 0: probes 1, 7, final 7; branch 1: probe 2, final 2; branch 2: always 7.
    return Split.from_lists(
        SplitInfo("m", "b"), ["q"], ["7"], [[(["1", "7"], 1200, "7"), (["2"], 600, "2"), (["7", "7", "7"], 1600, "7")]]
    )


def test_trace_carries_the_vote_state_and_renders_compactly():
    split = tiny_question()
    data = split.question(0)
    episode = Episode(data, (0, 1, 2), trace=True)
    episode.open_and_probe()
    episode.open_and_probe()
    episode.continue_and_probe(0)
    episode.continue_and_probe(0)  # branch 0 finishes on 7
    episode.continue_and_probe(1)  # branch 1 finishes on 2
    result = episode.answer(reason="test")
    trace = annotate(episode.trace, data, result, split="m/b", seed=4, point="beta=0.5", why="a test")
    rows = [dict(zip(trace["fields"], row)) for row in trace["steps"]]
    assert [r["action"] for r in rows] == [
        "BRANCH",
        "PROBE",
        "BRANCH",
        "PROBE",
        "CONTINUE",
        "PROBE",
        "CONTINUE",
        "CONTINUE",
        "ANSWER",
    ]
    finish0, finish1 = rows[6], rows[7]
    assert (
        finish0["finished"]
        and finish0["answer"] == "7"
        and (finish0["pool_winner"], finish0["pool_v1"], finish0["pool_v2"]) == ("7", 1, 0)
    )
    assert finish0["pool_conf"] == 0.75 and finish0["tokens"] == 1700
    assert (finish1["pool_winner"], finish1["pool_v1"], finish1["pool_v2"], finish1["pool_conf"]) == ("7", 1, 1, 0.5)
    assert (finish1["live_winner"], finish1["live_votes"], finish1["live_branches"]) == ("7", 1, 2)
    assert trace["correct"] and trace["answer"] == "7" and trace["gold"] == "7"
    text = render_trace(trace)
    assert text.splitlines() == [
        'm/b question 0 seed 4 (beta=0.5): answered "7" (correct), 1.8k tokens, 2 branches, stop "test". Chosen: a test.',
        "[0-2] open b0:1 b1:2 | pool - | live 1 1/2 | 1.0k",
        "[4-7] step b0:7* b0:7$* b1:2$ | pool 7* 1-1 0.50 | live 7* 1/2 | 1.8k",
        "[8] ANSWER 7$* at 1.8k tokens",
    ]
    long = dict(trace, steps=trace["steps"][:-1] * 40 + trace["steps"][-1:])
    short = render_trace(long, limit=600)
    assert len(short) <= 600 and "lines omitted" in short and short.splitlines()[-1].startswith("[8] ANSWER")
    assert render_traces([trace, trace], 3000).startswith("Trace notation:")


def test_informative_episodes_put_recoverable_failures_first():
    store_split = generate_split(8, 32, seed=11, model="m", benchmark="b")
    from agents.sc import SelfConsistency

    evaluation = evaluate_many([(SelfConsistency(k=1), store_split)], make_options(4), workers=1)
    chosen = choose_episodes(evaluation, 3)
    assert len(chosen) == 3 and len({(i, q) for i, q, _, _ in chosen}) == 3
    wrong = [c for c in chosen if c[3].startswith("wrong")]
    assert len(wrong) == 2 and "most expensive" in chosen[2][3]
    records = evaluation[0].records
    for _, q, seed, _ in wrong:
        row = [
            i for i in range(len(records["question"])) if records["question"][i] == q and records["seed"][i] == seed
        ][0]
        assert not records["correct"][row]
    assert shutil.which("python") or True  # the traces need nothing external


# ------------------------------------------------------------------- failing loudly
def test_a_relative_search_path_is_resolved_before_the_sandbox_starts(tmp_path, tiny_store, monkeypatch, capsys):
    """The README's form, ``--search ../shared/...``: the sandbox runs in a folder of its
    own, so a relative path used to fail every round at setup and still exit 0."""
    monkeypatch.chdir(Path(tiny_store).parent)
    out = tmp_path / "run"
    argv = ["discover", "--rounds", "1", "--proposer", f"scripted:{EXAMPLES}", "--out", str(out), "--seeds", "1"]
    argv += ["--betas", "0", "--search", f"{Path(tiny_store).name}:*/search", "--workers", "1"]
    assert main(argv) == 0
    assert "selected: round 1" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["search_store"] == str(Path(tiny_store).resolve())


def test_a_setup_failure_stops_the_run_at_round_1_and_exits_non_zero(tmp_path, tiny_store, monkeypatch, capsys):
    from agents.discovery import loop

    calls = []

    def no_store(code, job, limits, workers=1):
        calls.append(job.store)
        return loop.failed("setup", "setup-error", "the search splits could not be loaded: no such store")

    monkeypatch.setattr(loop, "evaluate_candidate", no_store)
    out = tmp_path / "run"
    argv = ["discover", "--rounds", "3", "--proposer", f"scripted:{EXAMPLES}", "--out", str(out), "--seeds", "1"]
    assert main([*argv, "--search", tiny_store]) == 1
    captured = capsys.readouterr()
    assert len(calls) == 1 and "round 2/3" not in captured.out
    errors = [line for line in captured.err.splitlines() if line]
    assert errors == [
        "autotts discover: error: round 1 could not be evaluated: the search splits could not be loaded: "
        "no such store; the run stopped (round 1 is not kept)"
    ]
    assert not (out / "round-001").exists()


def test_a_run_without_a_working_round_exits_non_zero(tmp_path, tiny_store, capsys):
    replies = tmp_path / "replies"
    replies.mkdir()
    (replies / "01.md").write_text("I would rather not write code.\n")
    out = tmp_path / "run"
    argv = ["discover", "--rounds", "1", "--proposer", f"scripted:{replies}", "--out", str(out), "--search", tiny_store]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "autotts discover: error: no round produced a working controller (1 round(s) failed: extract/no-code)" in err
