"""The synthetic generator: determinism, layout, the default store, calibration, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autotts_gym.cli.main import main as cli_main
from autotts_gym.data.store import Split, Store
from autotts_gym.data.synthetic import (
    COUNT_OFFSETS,
    DEFAULT_PROFILE,
    PROFILES,
    TARGETS,
    default_store,
    generate_split,
    get_profile,
)
from autotts_gym.engine import Episode
from benchmarks.calibration_stats import calibration_stats, expected_accuracy, fit_diagnostics

RELEASE_MODELS = {"qwen3-0.6b-like": "Qwen3-0.6B", "qwen3-1.7b-like": "Qwen3-1.7B", "qwen3-4b-like": "Qwen3-4B", "qwen3-8b-like": "Qwen3-8B"}


def arrays(split: Split) -> dict[str, object]:
    return {
        "branch_offsets": split.branch_offsets,
        "probe_offsets": split.probe_offsets,
        "probe_ids": split.probe_ids,
        "final_ids": split.final_ids,
        "total_tokens": split.total_tokens,
        "vocabs": split.vocabs,
        "gold": split.gold_answers,
    }


def answer_strings(split: Split) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per question, the probe answers and final answers as strings (ids are not stable
    across a save/load, strings are)."""
    probes, finals = [], []
    for q in range(split.num_questions):
        vocab = np.array(split.vocabs[q], dtype=object)
        b0, b1 = split.branch_offsets[q], split.branch_offsets[q + 1]
        lo, hi = split.probe_offsets[b0], split.probe_offsets[b1]
        probes.append(vocab[split.probe_ids[lo:hi]])
        finals.append(vocab[split.final_ids[b0:b1]])
    return probes, finals


def assert_same_content(a: Split, b: Split) -> None:
    assert a.name == b.name
    assert a.questions == b.questions and a.gold_answers == b.gold_answers
    np.testing.assert_array_equal(a.branch_offsets, b.branch_offsets)
    np.testing.assert_array_equal(a.probe_offsets, b.probe_offsets)
    np.testing.assert_array_equal(a.total_tokens, b.total_tokens)
    pa, fa = answer_strings(a)
    pb, fb = answer_strings(b)
    for x, y in zip(pa + fa, pb + fb):
        np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------ determinism
def test_same_seed_gives_identical_arrays():
    a = generate_split(20, 32, seed=7, profile="qwen3-4b-like")
    b = generate_split(20, 32, seed=7, profile="qwen3-4b-like")
    for key, value in arrays(a).items():
        other = arrays(b)[key]
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, other, err_msg=key)
        else:
            assert value == other, key


def test_different_seed_gives_different_arrays():
    a = generate_split(20, 32, seed=7)
    b = generate_split(20, 32, seed=8)
    assert not np.array_equal(a.total_tokens, b.total_tokens)
    assert a.gold_answers != b.gold_answers


def test_blocks_do_not_repeat_each_other():
    # More questions than one vectorised block: later blocks must not copy the first.
    split = generate_split(300, 4, seed=3)
    first, later = split.total_tokens[:128 * 4], split.total_tokens[128 * 4 : 256 * 4]
    assert not np.array_equal(first, later)


# ------------------------------------------------------------------ layout
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_layout_follows_the_release_format(profile):
    prof = get_profile(profile)
    split = generate_split(40, 64, seed=11, profile=profile, interval_tokens=500)
    assert split.num_questions == 40
    np.testing.assert_array_equal(split.branch_offsets, np.arange(41) * 64)
    counts = np.diff(split.probe_offsets)
    assert counts.min() >= 1
    assert split.total_tokens.min() >= prof.min_tokens
    assert split.total_tokens.max() <= prof.max_tokens + prof.overflow_tokens
    offsets = counts - split.total_tokens // 500
    clipped = counts == 1  # a branch keeps at least one probe
    assert set(offsets[~clipped].tolist()) <= set(COUNT_OFFSETS)
    # The last probe of every branch is its final answer (as in every release branch).
    last = split.probe_ids[split.probe_offsets[1:] - 1]
    np.testing.assert_array_equal(last, split.final_ids)
    for q, vocab in enumerate(split.vocabs):
        assert len(set(vocab)) == len(vocab), f"question {q}: duplicate answers"
        b0, b1 = split.branch_offsets[q], split.branch_offsets[q + 1]
        lo, hi = split.probe_offsets[b0], split.probe_offsets[b1]
        used = np.union1d(split.probe_ids[lo:hi], split.final_ids[b0:b1])
        np.testing.assert_array_equal(used, np.arange(len(vocab)))  # every id used, none beyond
    assert split.info.extra["profile"]["name"] == profile
    json.dumps(split.info.extra)  # the profile is stored as plain JSON


def test_gold_ids_carry_no_information():
    # Answers are interned in a random order per question: the gold is not always id 0.
    split = generate_split(60, 64, seed=5, profile="qwen3-8b-like")
    gold_ids = [v.index(g) for v, g in zip(split.vocabs, split.gold_answers) if g in v]
    assert len(set(gold_ids)) > 5


def test_some_questions_never_see_the_gold_and_some_always_do():
    split = generate_split(200, 128, seed=2, profile=DEFAULT_PROFILE)
    _, finals = answer_strings(split)
    shares = np.array([np.mean(f == g) for f, g in zip(finals, split.gold_answers)])
    assert (shares == 0).any() and (shares > 0.9).any() and ((shares > 0.2) & (shares < 0.8)).any()


def test_bad_arguments_are_sentences():
    with pytest.raises(KeyError, match="unknown synthetic profile 'qwen3-99b-like'"):
        generate_split(2, 2, seed=0, profile="qwen3-99b-like")
    with pytest.raises(ValueError, match="at least one question"):
        generate_split(0, 2, seed=0)
    with pytest.raises(ValueError, match="seed must be non-negative"):
        generate_split(2, 2, seed=-1)


# ------------------------------------------------------------------ default store
def test_default_store_is_small_cached_and_shaped_like_the_release():
    store = default_store()
    assert store is default_store()
    assert [s.name for s in store] == ["synthetic/search", "synthetic/heldout"]
    for split in store:
        assert split.num_questions == 30
        assert set(np.diff(split.branch_offsets).tolist()) == {128}
        assert split.info.interval_tokens == 500
        assert split.info.sampling["profile"] == DEFAULT_PROFILE
    assert not np.array_equal(store.splits[0].total_tokens, store.splits[1].total_tokens)


def test_default_store_round_trips_through_save_and_load(tmp_path):
    store = default_store()
    store.save(tmp_path / "store")
    loaded = Store.load(tmp_path / "store")
    assert [s.name for s in loaded] == [s.name for s in store]
    for a, b in zip(store, loaded):
        assert_same_content(a, b)
        assert b.info.extra == a.info.extra and b.info.sampling == a.info.sampling


def test_engine_replays_a_synthetic_question():
    split = default_store().splits[0]
    q = split.question(3)
    episode = Episode(q, list(range(q.num_branches)))
    finals = [episode.read_whole()[1] for _ in range(q.num_branches)]
    result = episode.answer()
    assert result.tokens == int(split.total_tokens[3 * 128 : 4 * 128].sum())
    assert finals == list(q.final_answer)


# ------------------------------------------------------------------ calibration
# Loose tolerances: the profile is fitted to these 30 real questions, and 1,000 generated
# questions still leave about 1.5 points of sampling noise on an accuracy.
ABSOLUTE = {"trajectory_acc": 0.05, "majority64_acc": 0.06, "err_probe": 0.02, "err_final": 0.01, "persistence": 0.05}
ABSOLUTE.update({f"agree_d{i}": 0.06 for i in range(1, 11)})
RELATIVE = {"len_mean": 0.1, "len_q25": 0.15, "len_median": 0.15, "len_q75": 0.15, "len_p90": 0.15, "distinct_finals": 0.2}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profile_reproduces_the_release_statistics_it_was_fitted_to(profile):
    target = TARGETS[profile]
    assert set(target) == set(ABSOLUTE) | set(RELATIVE)
    stats = calibration_stats(generate_split(1000, 128, seed=2024, profile=profile), majority_seeds=range(2))
    misses = []
    for key, tol in ABSOLUTE.items():
        if abs(stats[key] - target[key]) > tol:
            misses.append(f"{key}: {stats[key]:.3f} vs {target[key]:.3f} (tolerance {tol})")
    for key, tol in RELATIVE.items():
        if abs(stats[key] / target[key] - 1) > tol:
            misses.append(f"{key}: {stats[key]:.1f} vs {target[key]:.1f} (tolerance {tol:.0%})")
    assert not misses, f"{profile} misses its targets: " + "; ".join(misses)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_expected_accuracy_of_each_profile_is_its_target(profile):
    # Exact (no sampling): the fit solves the skill mean for the target accuracy.
    p = get_profile(profile)
    assert expected_accuracy(p.skill_mean, p.skill_sd, p.err_final_mean) == pytest.approx(
        TARGETS[profile]["trajectory_acc"], abs=0.002
    )


def test_profiles_are_ordered_like_the_models():
    accuracy = [TARGETS[name]["trajectory_acc"] for name in ("qwen3-0.6b-like", "qwen3-1.7b-like", "qwen3-4b-like", "qwen3-8b-like")]
    assert accuracy == sorted(accuracy)


def test_fit_diagnostics_are_shares():
    d = fit_diagnostics(default_store().splits[0])
    for key in ("own", "other_final", "recurring", "rare"):
        assert 0.0 <= d[key] <= 1.0
    assert abs(d["own"] + d["other_final"] + d["recurring"] + d["rare"] - 1.0) < 1e-9


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_targets_are_the_release_statistics(release, profile):
    from autotts_gym.data.release import read_release_file

    model = RELEASE_MODELS[profile]
    real = calibration_stats(read_release_file(release / model / "aime24.json", model, "aime24"))
    for key, value in TARGETS[profile].items():
        assert real[key] == pytest.approx(value, abs=1e-4 * max(1.0, abs(value))), key


# ------------------------------------------------------------------ CLI
def test_cli_synth_writes_a_loadable_store(tmp_path, capsys):
    out = tmp_path / "synth"
    args = ["synth", "--questions", "6", "--branches", "16", "--seed", "9", "--profile", "qwen3-0.6b-like", "--out", str(out)]
    assert cli_main(args) == 0
    assert "synthetic/synthetic: 6 questions x 16 branches" in capsys.readouterr().out
    loaded = Store.load(out)
    assert len(loaded) == 1
    assert_same_content(loaded.splits[0], generate_split(6, 16, seed=9, profile="qwen3-0.6b-like"))
    assert cli_main(args) == 2  # exists, no --overwrite
    assert "exists" in capsys.readouterr().err
    assert cli_main([*args, "--overwrite"]) == 0
