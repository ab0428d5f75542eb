"""A tiny reasoning model for live tests with real vLLM: trained on CPU in about a minute, cached.

A randomly initialised model rarely ends a sequence or closes a ``\\boxed{}``, so every
test-time-scaling controller looks the same against it. :func:`build_tiny_model` trains,
with no download, a byte-level BPE tokenizer and a small Qwen3 (``transformers``
``Qwen3ForCausalLM``) on generated "reasoning" about a fixed set of small sums
(:func:`tiny_questions`, e.g. ``What is 23+45?``), and caches the Hugging Face model folder
(tokenizer and chat template included) under a key of its training settings, so that
``vllm.LLM(model=path)`` and ``python -m vllm.entrypoints.openai.api_server --model path``
load it as they would any Qwen3.

The text format is the collector's, built with its own code: the prompt is
:class:`collection.prompts.PromptBuilder`'s (default prompt, the chat template below), the
think section ends with exactly :data:`collection.config.DEFAULT_PROBE_SUFFIX`, and the
answer is read with :func:`collection.answers.extract_boxed`. A completion::

    Step 5: sum=68.
    Step 4: let me check, sum=68.
    Step 3: tens and ones give sum=58.
    Step 2: sum=58.
    Step 1: sum=58.
    </think>

    **Final Answer**

    \\boxed{58}<|im_end|>

* **Varied lengths that always end.** The steps count down from a start drawn uniformly
  from ``min_steps..max_steps``, with line templates of different lengths; after
  ``Step 1`` the think section closes. Counting down is local (the next number is the
  previous minus one), so the model learns it exactly and stops every time, while the
  uniform start (which temperature leaves uniform) spreads the lengths over several
  intervals.
* **Beliefs that agree and differ.** Every step states a belief ``sum=N``: the first is
  drawn from the question's answer distribution (:func:`answer_distribution`: the right sum
  most often, otherwise a slip of one or a forgotten carry of ten), each later one copies
  the previous belief or, now and then, is drawn again. The box copies the last belief.
  Sampled, most branches of a question give the right sum but some do not, so a majority
  vote beats a single sample.
* **Probes answer.** Some training samples are cut at a random token of the think section
  and followed by the probe suffix and the last belief stated before the cut (the loss
  skips the suffix there, so the model never writes it mid-line by itself): the suffix
  appended to any prefix is followed by a number and ``}``.

The answer, ``}`` and end-of-sequence tokens weigh more in the loss than the rest. Training
is deterministic given the seed (one thread, a seeded generator for the data and torch's
for the weights).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from collection.config import DEFAULT_PROBE_SUFFIX, CollectConfig
from collection.prompts import PromptBuilder
from collection.questions import Question

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)
METADATA_FILE = "tiny_model.json"
CACHE_ENV = "AUTOTTS_TINY_MODEL_CACHE"
# Line templates of a step; {k} is the step number, {n} the belief. Different lengths.
STEP_TEMPLATES = (
    "Step {k}: sum={n}.",
    "Step {k}: let me check, sum={n}.",
    "Step {k}: tens and ones give sum={n}.",
    "Step {k}: adding the ones first and then the tens, sum={n}.",
)


@dataclass(frozen=True)
class TinyModelConfig:
    """Everything that determines the trained model (its cache key hashes all of it)."""

    seed: int = 0
    """Seed of the data, the weights and the batch order."""
    num_questions: int = 16
    """Distinct questions (sums) the model learns; :func:`tiny_questions` lists them."""
    question_seed: int = 0
    """Seed of the question set (independent of ``seed``: every model knows the same questions)."""
    min_steps: int = 3
    """Fewest think steps of a training sample."""
    max_steps: int = 10
    """Most think steps of a training sample."""
    redraw: float = 0.25
    """Chance that a step draws its belief again instead of copying the previous one."""
    cut_share: float = 0.3
    """Share of training samples cut at a random think token and answered at once (probes)."""
    answer_weight: float = 5.0
    """Loss weight of the answer, ``}`` and end-of-sequence tokens (others weigh 1)."""
    stop_weight: float = 3.0
    """Loss weight of the token that closes the think section (``</think>``)."""
    vocab_size: int = 600
    hidden_size: int = 128
    intermediate_size: int = 256
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 32
    max_position_embeddings: int = 1024
    steps: int = 250
    """Optimiser steps."""
    batch_size: int = 24
    learning_rate: float = 3e-3
    warmup_steps: int = 30
    tokenizer_samples: int = 2000
    """Generated samples the BPE tokenizer is trained on."""

    def cache_key(self) -> str:
        """Hex digest of these settings and of this module's source (which generates the data)."""
        payload = json.dumps(asdict(self), sort_keys=True).encode() + b"\0" + Path(__file__).read_bytes()
        return hashlib.sha256(payload).hexdigest()[:16]


# ------------------------------------------------------------------ the task
def tiny_questions(num_questions: int = 16, question_seed: int = 0) -> list[dict[str, str]]:
    """The questions the tiny model is trained on: ``[{"question": "What is 23+45?", "answer": "68"}, ...]``.

    Two-digit sums with distinct answers, drawn by a seeded generator; the same arguments
    give the same list. Every fourth question has a carry (its slips include a forgotten carry).
    """
    rng = random.Random(f"tiny-questions-{question_seed}")
    rows: list[dict[str, str]] = []
    seen: set[int] = set()
    while len(rows) < num_questions:
        a, b = rng.randrange(11, 60), rng.randrange(11, 40)
        carry = (a % 10) + (b % 10) >= 10
        if (a + b) in seen or carry != (len(rows) % 4 == 3):
            continue
        seen.add(a + b)
        rows.append({"question": f"What is {a}+{b}?", "answer": str(a + b)})
    return rows


def answer_distribution(index: int, answer: int, carry: bool) -> dict[int, float]:
    """The beliefs the training text states for question ``index`` (right answer ``answer``).

    Three tiers by ``index % 3``: the right sum 80%, 70% or 60% of the time; the rest
    goes to two slips, 60:40 (a forgotten carry, ``answer - 10``, when the sum has a carry,
    else one more; and one less). Sampling at temperature 0.7 sharpens these towards the
    right sum, which stays the most frequent answer of every question.
    """
    right = (0.8, 0.7, 0.6)[index % 3]
    first = answer - 10 if carry else answer + 1
    return {answer: right, first: (1 - right) * 0.6, answer - 1: (1 - right) * 0.4}


def write_tiny_questions(path: str | os.PathLike, num_questions: int = 16, question_seed: int = 0) -> Path:
    """Write :func:`tiny_questions` as JSONL (fields ``question`` and ``answer``, the collector's defaults).

    ``autotts collect --questions PATH`` and live runs read it as it is.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = tiny_questions(num_questions, question_seed)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _carry(question: str) -> bool:
    a, b = question.removeprefix("What is ").rstrip("?").split("+")
    return (int(a) % 10) + (int(b) % 10) >= 10


def _draw(rng: random.Random, distribution: dict[int, float]) -> int:
    values = list(distribution)
    return rng.choices(values, weights=[distribution[v] for v in values])[0]


def reasoning_lines(rng: random.Random, distribution: dict[int, float], config: TinyModelConfig) -> list[tuple[str, int]]:
    """The think steps of one sample: ``[(line text, belief), ...]``, counting down to ``Step 1``."""
    start = rng.randint(config.min_steps, config.max_steps)
    belief = _draw(rng, distribution)
    lines = []
    for k in range(start, 0, -1):
        if lines and rng.random() < config.redraw:
            belief = _draw(rng, distribution)
        lines.append((rng.choice(STEP_TEMPLATES).format(k=k, n=belief), belief))
    return lines


# ------------------------------------------------------------------ tokens and weights
class _Encoder:
    """Token ids and loss weights of training samples, built with the collector's prompt code."""

    def __init__(self, tokenizer: Any, config: TinyModelConfig) -> None:
        self.config = config
        self.builder = PromptBuilder(tokenizer, CollectConfig())
        self.eos = tokenizer.eos_token_id
        self.close = self.builder.encode("}")
        self.questions = [
            (Question(i, row["question"], row["answer"]),
             answer_distribution(i, int(row["answer"]), _carry(row["question"])))
            for i, row in enumerate(tiny_questions(config.num_questions, config.question_seed))
        ]
        self.prompts = [tuple(self.builder.prompt_ids(q)) for q, _ in self.questions]
        self._cache: dict[str, list[int]] = {}

    def encode(self, text: str) -> list[int]:
        ids = self._cache.get(text)
        if ids is None:
            ids = self._cache[text] = self.builder.encode(text)
        return ids

    def sample(self, rng: random.Random) -> tuple[list[int], list[float]]:
        """One training sequence (prompt + completion) and the loss weight of every position's target."""
        q = rng.randrange(len(self.questions))
        _, distribution = self.questions[q]
        lines = reasoning_lines(rng, distribution, self.config)
        prompt = list(self.prompts[q])
        ids, weights = list(prompt), [0.0] * len(prompt)
        beliefs: list[tuple[int, int]] = []  # (position after the belief's line, belief)
        for i, (text, belief) in enumerate(lines):
            piece = self.encode(("\n" if i else "") + text)
            ids += piece
            weights += [1.0] * len(piece)
            beliefs.append((len(ids), belief))
        cut = rng.random() < self.config.cut_share
        if cut:
            end = rng.randrange(len(prompt) + 1, len(ids) + 1)
            del ids[end:], weights[end:]
            stated = [b for pos, b in beliefs if pos <= end]
            answer = stated[-1] if stated else _draw(rng, distribution)
        else:
            answer = lines[-1][1]
        suffix = list(self.builder.probe_suffix)
        ids += suffix
        if cut:
            weights += [0.0] * len(suffix)  # a probe's suffix is given, never generated
        else:
            weights += [self.config.stop_weight] + [1.0] * (len(suffix) - 1)
        tail = self.encode(str(answer)) + self.close + [self.eos]
        ids += tail
        weights += [self.config.answer_weight] * len(tail)
        return ids, weights


def _corpus(config: TinyModelConfig, rng: random.Random) -> Iterator[str]:
    """Text to train the BPE tokenizer on: prompts and completions as the model will see them."""
    rows = tiny_questions(config.num_questions, config.question_seed)
    for _ in range(config.tokenizer_samples):
        i = rng.randrange(len(rows))
        row = rows[i]
        distribution = answer_distribution(i, int(row["answer"]), _carry(row["question"]))
        lines = reasoning_lines(rng, distribution, config)
        content = CollectConfig().prompt_template.replace("{question}", row["question"])
        completion = "\n".join(text for text, _ in lines) + DEFAULT_PROBE_SUFFIX + f"{lines[-1][1]}}}"
        yield f"user\n{content}\nassistant\n{completion}"


def _train_tokenizer(config: TinyModelConfig, rng: random.Random) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    bpe.train_from_iterator(list(_corpus(config, rng)), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


# ------------------------------------------------------------------ training
def train_tiny_model(out_dir: str | os.PathLike, config: TinyModelConfig | None = None, log_every: int = 0) -> Path:
    """Train the tokenizer and the model and save both (Hugging Face format) into ``out_dir``.

    Uses one torch thread (restored afterwards). ``tiny_model.json`` in the folder records
    the settings, the cache key, the loss curve, the training time and library versions.
    Returns ``out_dir`` as a Path.
    """
    import torch
    import transformers
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = config or TinyModelConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    rng = random.Random(f"tiny-model-{config.seed}")
    tokenizer = _train_tokenizer(config, rng)
    tokenizer.save_pretrained(out)
    encoder = _Encoder(tokenizer, config)
    model_config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads, head_dim=config.head_dim,
        max_position_embeddings=config.max_position_embeddings, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    losses: list[tuple[int, float]] = []
    try:
        torch.manual_seed(config.seed)
        model = Qwen3ForCausalLM(model_config)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)

        def rate(step: int) -> float:
            if step < config.warmup_steps:
                return (step + 1) / config.warmup_steps
            progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
        loop_start, cpu_start = time.monotonic(), time.process_time()
        batches: list[list[tuple[list[int], list[float]]]] = []
        for step in range(1, config.steps + 1):
            if not batches:
                # Samples of similar length batched together: less padding, same data.
                pool = sorted((encoder.sample(rng) for _ in range(4 * config.batch_size)), key=lambda s: len(s[0]))
                batches = [pool[i : i + config.batch_size] for i in range(0, len(pool), config.batch_size)]
                rng.shuffle(batches)
            batch = batches.pop()
            width = max(len(ids) for ids, _ in batch)
            ids = torch.full((len(batch), width), tokenizer.pad_token_id)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            weights = torch.zeros((len(batch), width))
            for i, (seq, w) in enumerate(batch):
                ids[i, : len(seq)] = torch.tensor(seq)
                mask[i, : len(seq)] = 1
                weights[i, : len(seq) - 1] = torch.tensor(w[1:])  # position t predicts token t+1
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            token_loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none"
            )
            w = weights[:, :-1].reshape(-1)
            loss = (token_loss * w).sum() / w.sum()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            if step % 50 == 0 or step == config.steps:
                losses.append((step, round(loss.item(), 4)))
                if log_every and step % log_every == 0:
                    print(f"tiny model: step {step}/{config.steps} loss {loss.item():.3f} "
                          f"({time.monotonic() - loop_start:.0f} s)", file=sys.stderr, flush=True)
        train_seconds, cpu_seconds = time.monotonic() - loop_start, time.process_time() - cpu_start
        model.eval()
        model.save_pretrained(out)
    finally:
        torch.set_num_threads(threads)
    metadata = {
        "config": asdict(config),
        "cache_key": config.cache_key(),
        "loss_curve": losses,
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(cpu_seconds, 1),
        "total_seconds": round(time.monotonic() - started, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "questions": tiny_questions(config.num_questions, config.question_seed),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    (out / METADATA_FILE).write_text(json.dumps(metadata, indent=1) + "\n", encoding="utf-8")
    return out


def default_cache_dir() -> Path:
    """``$AUTOTTS_TINY_MODEL_CACHE`` if set, else ``~/.cache/autotts-gym/tiny-model``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "autotts-gym" / "tiny-model"


def build_tiny_model(
    folder: str | os.PathLike | None = None, seed: int = 0, config: TinyModelConfig | None = None
) -> Path:
    """The model folder trained with ``config`` (and ``seed``), training it first if it is not cached.

    Args:
        folder: cache folder (default :func:`default_cache_dir`); the model lives in
            ``folder / config.cache_key()``.
        seed: the training seed (overrides ``config.seed``).
        config: training settings (default :class:`TinyModelConfig`).

    Returns:
        A Hugging Face model folder (weights, tokenizer, chat template, ``tiny_model.json``)
        for ``vllm.LLM(model=...)`` or ``vllm.entrypoints.openai.api_server --model ...``.
        A model is trained into a temporary folder beside its target and renamed into
        place, so an interrupted or concurrent run never leaves half a model behind.
    """
    config = TinyModelConfig(**{**asdict(config or TinyModelConfig()), "seed": seed})
    root = Path(folder) if folder is not None else default_cache_dir()
    target = root / config.cache_key()
    if (target / METADATA_FILE).is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        train_tiny_model(scratch, config)
        scratch.rename(target)
    except OSError:
        if not (target / METADATA_FILE).is_file():  # not a concurrent run that cached it first
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


# ------------------------------------------------------------------ measuring it under vLLM
VLLM_CPU_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "OMP_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
"""Environment of vLLM's CPU backend for this model (plus ``VLLM_CACHE_ROOT``, ``TORCHINDUCTOR_CACHE_DIR``
and ``TMPDIR`` at a scratch folder, which :func:`vllm_cpu_env` adds)."""
VLLM_ENGINE_ARGS = {"block_size": 32, "enforce_eager": True, "distributed_executor_backend": "uni"}
"""``vllm.LLM`` keyword arguments that load this model on vLLM's CPU backend in a few seconds."""


def vllm_cpu_env(scratch: str | os.PathLike) -> dict[str, str]:
    """:data:`VLLM_CPU_ENV` plus vLLM's and inductor's caches and ``TMPDIR`` under ``scratch``."""
    scratch = Path(scratch)
    return {**VLLM_CPU_ENV, "VLLM_CACHE_ROOT": str(scratch / "vllm-cache"),
            "TORCHINDUCTOR_CACHE_DIR": str(scratch / "inductor"), "TMPDIR": str(scratch)}


def measure_tiny_model(
    llm: Any,
    model_dir: str | os.PathLike,
    num_questions: int = 8,
    samples: int = 16,
    temperature: float = 0.7,
    max_tokens: int = 256,
    delta: int = 16,
    probe_tokens: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """Sample the model in ``llm`` (a ``vllm.LLM`` of ``model_dir``) as a live run would; figures of what it wrote.

    Every question of the model's set (the first ``num_questions``) is sampled ``samples``
    times (seeded per request), and every finished sequence is probed greedily at every
    full interval of ``delta`` tokens (the collector's probe suffix after the prefix, then
    ``probe_tokens`` tokens, read as the collector reads probes).

    Returns:
        ``eos_rate`` (share ending with EOS before ``max_tokens``), ``lengths`` (tokens
        of every sequence), ``intervals`` (distinct ``ceil(length / delta)`` values),
        ``box_rate`` (share of finished sequences with a ``\\boxed{}`` integer),
        ``copy_rate`` (finished sequences whose box equals their last stated belief),
        ``probe_rate`` (probes answered with a box), ``single_accuracy`` (mean over
        samples), ``majority_accuracy`` (questions whose majority, first-seen tie-break,
        is right), ``disagreeing_questions`` (questions whose samples give more than one
        answer) and ``answers`` (per question, the sampled answers and the gold).
    """
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from collection.answers import extract_boxed, normalize_answer
    from collection.prompts import load_tokenizer

    tokenizer = load_tokenizer(CollectConfig(model=str(model_dir)))
    builder = PromptBuilder(tokenizer, CollectConfig())
    questions = tiny_questions(**_question_args(model_dir))[:num_questions]
    prompts, params = [], []
    for q, row in enumerate(questions):
        ids = builder.prompt_ids(Question(q, row["question"], row["answer"]))
        for s in range(samples):
            prompts.append(TokensPrompt(prompt_token_ids=list(ids)))
            params.append(SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=seed * 1_000_003 + q * 1009 + s))
    outputs = llm.generate(prompts, params, use_tqdm=False)
    lengths, finished, boxes, copies = [], 0, 0, 0
    answers: list[list[str | None]] = [[] for _ in questions]
    probe_prompts = []
    for i, out in enumerate(outputs):
        completion = out.outputs[0]
        tokens = list(completion.token_ids)
        lengths.append(len(tokens))
        text = builder.decode(tokens)
        stopped = completion.finish_reason == "stop" and len(tokens) < max_tokens
        raw = extract_boxed(text) if stopped else None
        answer = normalize_answer(raw) if raw is not None else None
        answers[i // samples].append(answer)
        if stopped:
            finished += 1
            boxes += answer is not None and answer.lstrip("-").isdigit()
            beliefs = [part.split(".", 1)[0] for part in text.split("sum=")[1:]]
            copies += bool(beliefs) and beliefs[-1] == answer
            prompt = list(prompts[i]["prompt_token_ids"])
            for cut in range(delta, len(tokens), delta):
                probe_prompts.append(TokensPrompt(prompt_token_ids=prompt + tokens[:cut] + list(builder.probe_suffix)))
    greedy = SamplingParams(temperature=0.0, max_tokens=probe_tokens)
    suffix_text = builder.decode(builder.probe_suffix)
    probes = llm.generate(probe_prompts, greedy, use_tqdm=False) if probe_prompts else []
    probe_answers = [extract_boxed(suffix_text + builder.decode(list(p.outputs[0].token_ids))) for p in probes]
    single, majority, disagreeing = [], 0, 0
    for row, got in zip(questions, answers):
        single += [a == row["answer"] for a in got]
        counts: dict[str | None, int] = {}
        for a in got:
            counts[a] = counts.get(a, 0) + 1
        majority += max(counts, key=lambda a: counts[a]) == row["answer"]  # dicts keep first-seen order
        disagreeing += len(counts) > 1
    return {
        "eos_rate": finished / len(outputs),
        "lengths": lengths,
        "intervals": sorted({-(-n // delta) for n in lengths}),
        "box_rate": boxes / max(1, finished),
        "copy_rate": copies / max(1, finished),
        "probe_rate": sum(a is not None for a in probe_answers) / max(1, len(probe_answers)),
        "probes": len(probe_answers),
        "single_accuracy": sum(single) / len(single),
        "majority_accuracy": majority / len(questions),
        "disagreeing_questions": disagreeing,
        "answers": [{"gold": row["answer"], "sampled": got} for row, got in zip(questions, answers)],
    }


def _question_args(model_dir: str | os.PathLike) -> dict[str, int]:
    """The question-set arguments a trained model folder was built with."""
    info = json.loads((Path(model_dir) / METADATA_FILE).read_text(encoding="utf-8"))
    return {"num_questions": info["config"]["num_questions"], "question_seed": info["config"]["question_seed"]}


def main(argv: list[str] | None = None) -> int:
    """``python -m collection.tiny_model``: train (or find) the tiny model; optionally write its questions."""
    parser = argparse.ArgumentParser(prog="python -m collection.tiny_model", description=__doc__.split("\n")[0])
    parser.add_argument("--cache-dir", type=Path, help=f"cache folder (default: ${CACHE_ENV} or ~/.cache/...)")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--questions", type=Path, help="also write the question file (JSONL) here")
    args = parser.parse_args(argv)
    path = build_tiny_model(args.cache_dir, seed=args.seed)
    info = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
    if args.questions is not None:
        write_tiny_questions(args.questions, info["config"]["num_questions"], info["config"]["question_seed"])
    print(f"{path}  ({info['train_seconds']} s of training, final loss {info['loss_curve'][-1][1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
