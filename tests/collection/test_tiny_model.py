"""The tiny reasoning model of :mod:`collection.tiny_model`, sampled by a real vLLM on CPU.

Run with ``pytest -m live tests/collection/test_tiny_model.py`` after ``bash collection/requirements-ci.sh``.
The model is trained on first use (a few minutes on CPU) and cached (``$AUTOTTS_TINY_MODEL_CACHE``
or ``~/.cache/autotts-gym/tiny-model``); later runs load it in seconds.

What live-mode tests need from it, checked on 4 questions x 8 samples at temperature 0.7:
it stops (EOS) at varied lengths, it writes a box that :func:`collection.answers.extract_boxed`
reads, its answers to one question sometimes differ while the majority is mostly right, and
the collector's probe suffix appended to a partial trajectory yields a box. The measured
figures are printed.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from pathlib import Path

import pytest

from collection.answers import extract_boxed, normalize_answer
from collection.config import DEFAULT_PROBE_SUFFIX, DEFAULT_PROMPT
from collection.generation import derive_seed
from collection.tiny_model import cached_tiny_model, prompt_text
from collection.trajectories import read_probe

pytestmark = pytest.mark.live

# One question per tier of collection.tiny_model.answer_distribution: no carry, two carries, hard.
QUESTIONS = [("What is 3 plus 4?", "7"), ("What is 5 plus 8?", "13"), ("What is 6 plus 9?", "15"),
             ("What is 8 plus 9?", "17")]
SAMPLES, MAX_TOKENS, TEMPERATURE = 8, 2000, 0.7
PROBE_AT, PROBE_TOKENS = (100, 300, 500), 24


@pytest.fixture(scope="module")
def cpu_env(tmp_path_factory):
    """vLLM CPU settings for this module only (restored afterwards)."""
    scratch = tmp_path_factory.mktemp("vllm-live")
    values = {
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "OMP_NUM_THREADS": "1",
        "VLLM_CACHE_ROOT": str(scratch / "vllm-cache"),
        "TORCHINDUCTOR_CACHE_DIR": str(scratch / "inductor"),
        "TMPDIR": str(scratch),
        "TOKENIZERS_PARALLELISM": "false",
    }
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield values
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def model_dir() -> Path:
    """The cached tiny model (trained here on first use)."""
    started = time.monotonic()
    path = cached_tiny_model()
    print(f"\ntiny model: {path} ready in {time.monotonic() - started:.1f} s")
    return path


@pytest.fixture(scope="module")
def llm(model_dir, cpu_env):
    """An offline vLLM engine on the tiny model (engine in this process, eager, 32-token blocks)."""
    from vllm import LLM

    started = time.monotonic()
    engine = LLM(model=str(model_dir), dtype="bfloat16", block_size=32, enforce_eager=True,
                 distributed_executor_backend="uni", max_model_len=2560, enable_prefix_caching=True, seed=0)
    engine.load_seconds = time.monotonic() - started
    yield engine


@pytest.fixture(scope="module")
def samples(llm):
    """``(prompt ids, generated ids, finish reason)`` per sample, grouped by question."""
    from vllm import SamplingParams

    tokenizer = llm.get_tokenizer()
    prompts, params = [], []
    for q, (question, _) in enumerate(QUESTIONS):
        messages = [{"role": "user", "content": DEFAULT_PROMPT.replace("{question}", question)}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert text == prompt_text(question), "the chat template renders the prompt the model was trained on"
        ids = tokenizer.encode(text, add_special_tokens=False)
        for n in range(SAMPLES):
            prompts.append({"prompt_token_ids": ids})
            params.append(SamplingParams(temperature=TEMPERATURE, max_tokens=MAX_TOKENS, seed=derive_seed(0, q, n),
                                         detokenize=False))
    started = time.monotonic()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    seconds = time.monotonic() - started
    results = [(p["prompt_token_ids"], list(o.outputs[0].token_ids), o.outputs[0].finish_reason)
               for p, o in zip(prompts, outputs)]
    generated = sum(len(r[1]) for r in results)
    print(f"\nvLLM: load {llm.load_seconds:.1f} s; generated {len(results)} samples, {generated} tokens in "
          f"{seconds:.1f} s ({generated / seconds:.0f} tokens/s)")
    return [results[q * SAMPLES : (q + 1) * SAMPLES] for q in range(len(QUESTIONS))]


def _answer(tokenizer, ids: list[int]) -> str | None:
    raw = extract_boxed(tokenizer.decode(ids, skip_special_tokens=True))
    return None if raw is None else normalize_answer(raw)


def test_samples_stop_at_varied_lengths_with_boxed_answers(llm, samples):
    tokenizer = llm.get_tokenizer()
    flat = [s for group in samples for s in group]
    stopped = [s for s in flat if s[2] == "stop"]
    lengths = sorted(len(s[1]) for s in stopped)
    answers = [[_answer(tokenizer, s[1]) for s in group] for group in samples]
    boxed = sum(a is not None for group in answers for a in group)
    distinct = [len(set(group)) for group in answers]
    majorities = [Counter(group).most_common(1)[0][0] for group in answers]
    right = [m == gold for m, (_, gold) in zip(majorities, QUESTIONS)]
    print(f"stopped by EOS: {len(stopped)}/{len(flat)}; lengths min {lengths[0] if lengths else '-'} "
          f"median {statistics.median(lengths) if lengths else '-'} max {lengths[-1] if lengths else '-'}")
    print(f"boxed answers: {boxed}/{len(flat)}")
    for (question, gold), group, majority in zip(QUESTIONS, answers, majorities):
        print(f"  {question} gold {gold}: {dict(Counter(group))} majority {majority}")
    assert len(stopped) >= 0.75 * len(flat), "most samples end with EOS before max_tokens"
    assert lengths[-1] - lengths[0] >= 300 and len(set(lengths)) >= len(lengths) // 2, "lengths vary"
    assert boxed >= 0.75 * len(flat), "most samples write a readable box"
    assert max(distinct) >= 2, "answers to a question sometimes differ"
    assert sum(right) >= 3, "the majority answer is right for most questions"


def test_probing_a_partial_trajectory_yields_a_box(llm, samples):
    from vllm import SamplingParams

    tokenizer = llm.get_tokenizer()
    suffix = tokenizer.encode(DEFAULT_PROBE_SUFFIX, add_special_tokens=False)
    prompts = [{"prompt_token_ids": list(prompt) + tokens[:at] + suffix}
               for group in samples for prompt, tokens, _ in group for at in PROBE_AT if len(tokens) > at]
    started = time.monotonic()
    outputs = llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=PROBE_TOKENS, logprobs=0,
                                                   detokenize=False), use_tqdm=False)
    seconds = time.monotonic() - started
    read = [read_probe(DEFAULT_PROBE_SUFFIX, list(o.outputs[0].token_ids),
                       [next(iter(lp.values())).logprob for lp in o.outputs[0].logprobs],
                       lambda ids: tokenizer.decode(list(ids), skip_special_tokens=True))[0] for o in outputs]
    answered = sum(a is not None for a in read)
    print(f"probes at {PROBE_AT} tokens: {answered}/{len(read)} read a box ({seconds:.1f} s)")
    assert len(read) >= 20, "enough trajectories are long enough to probe"
    assert answered >= 0.8 * len(read), "a probe usually yields a box"
