"""TensorBoard events written by ``--tensorboard`` and read back with TensorBoard's own
EventAccumulator (on the embedded synthetic store, so no data files are needed)."""

from __future__ import annotations

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from autotts_gym.cli.main import main
from autotts_gym.reporting.plots import png_size
from autotts_gym.reporting.tracking import TensorBoardLog, beta_step

SPLIT = "synthetic/search"


def load_run(path):
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def scalars(acc, tag):
    return {e.step: e.value for e in acc.Scalars(tag)}


def test_evaluate_sweep_scalars_match_summaries(tmp_path, capsys):
    logdir, out = tmp_path / "tb", tmp_path / "out"
    argv = ["evaluate", "default", "--method", "cmc", "--betas", "0,0.5,1", "--seeds", "2", "--splits", SPLIT,
            "--workers", "1", "--out", str(out), "--tensorboard", str(logdir)]
    assert main(argv) == 0
    capsys.readouterr()
    summaries = json.loads((out / "summary.json").read_text())

    run = load_run(logdir / "cmc")
    tags = run.Tags()
    expected_tags = {f"{m}/{SPLIT}" for m in ("accuracy", "tokens", "sequential_tokens", "pareto")}
    assert set(tags["scalars"]) == expected_tags
    for metric in ("accuracy", "tokens", "sequential_tokens"):
        logged = scalars(run, f"{metric}/{SPLIT}")
        assert sorted(logged) == [0, 50, 100]
        for s in summaries:
            assert logged[beta_step(s["beta"])] == pytest.approx(s[metric], rel=1e-6)
    pareto = scalars(run, f"pareto/{SPLIT}")
    assert pareto == {round(s["tokens"]): pytest.approx(s["accuracy"], rel=1e-6) for s in summaries}
    text = run.Tensors("params")[0].tensor_proto.string_val[0].decode()
    assert "CMC beta=0.5" in text and '"max_branch": 34' in text

    figures = load_run(logdir / "figures")
    image = figures.Images("pareto")[0]
    assert image.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"
    assert (image.width, image.height) == png_size(image.encoded_image_string)


def test_compare_writes_one_run_per_method(tmp_path, capsys):
    logdir = tmp_path / "tb"
    argv = ["compare", "default", "--methods", "sc,asc", "--betas", "0,1", "--seeds", "1", "--splits", "synthetic/*",
            "--workers", "1", "--out", str(tmp_path / "out"), "--tensorboard", str(logdir)]
    assert main(argv) == 0
    capsys.readouterr()
    assert sorted(p.name for p in logdir.iterdir()) == ["asc", "figures", "sc"]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    for method in ("sc", "asc"):
        run = load_run(logdir / method)
        for split in ("synthetic/search", "synthetic/heldout"):
            logged = scalars(run, f"accuracy/{split}")
            expected = {beta_step(r["beta"]): r["accuracy"] for r in results if r["method"] == method and r["split"] == split}
            assert logged == pytest.approx(expected)
    assert len(load_run(logdir / "figures").Images("pareto")) == 1


def test_log_writer_round_trip(tmp_path):
    with TensorBoardLog(tmp_path) as log:
        log.scalar("a b/c", "x/y", 1.5, step=3)
        log.text("a b/c", "note", "| k | v |\n|---|---|\n| 1 | 2 |")
    # Run names become one safe folder name.
    assert [p.name for p in tmp_path.iterdir()] == ["a_b_c"]
    run = load_run(tmp_path / "a_b_c")
    assert scalars(run, "x/y") == {3: 1.5}
    assert beta_step(None) == 0 and beta_step(0.25) == 25
