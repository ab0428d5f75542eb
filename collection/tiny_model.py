"""A tiny reasoning model for live tests: trained offline on CPU in a few minutes, cached.

A randomly initialised model rarely ends a sequence or closes a ``\\boxed{}``, so every
test-time-scaling controller looks the same against it. This module trains, without any
download, a byte-level BPE tokenizer and a small Qwen3 (``transformers.Qwen3Config``,
head_dim 64) on generated "reasoning" for the 100 questions ``What is A plus B?``
(A, B in 0..9), so that sampled at temperature 0.7 it

* ends its sequences (EOS) at varied lengths: every check line carries a tag drawn
  uniformly from 20..69 and the reasoning ends after the line tagged 20, so the number of
  lines is geometric (mean 50, about 8 tokens a line). The stop is decided by a uniform
  choice, which sampling at temperature 0.7 leaves nearly uniform (a rare "stop now" token
  would be suppressed by the temperature and the sequences would run on);
* writes ``\\boxed{N}`` answers that sometimes agree and sometimes differ: every check
  line states the current *belief*, which is redrawn now and then from the question's
  answer distribution (:func:`answer_distribution`): right most of the time, otherwise a
  plausible slip (off by one, a forgotten carry); the final box holds the last belief
  (written ``(12)`` in a line, so that ``12`` is the same token there and in ``\\boxed{12}``);
* answers a probe: the reasoning ends with exactly the collector's probe suffix
  (:data:`collection.config.DEFAULT_PROBE_SUFFIX`) followed by the answer, some samples are
  cut short at a random point and answered at once, and the current belief is always a
  few tokens back, so the suffix appended to any prefix gives a box to read.

A sample (the prompt is the collector's default prompt in the chat template below)::

    <|im_start|>user
    What is 7 plus 5?
    Please reason step by step, and put your final answer within \\boxed{}.<|im_end|>
    <|im_start|>assistant
    <think>
    We need 7 plus 5.
    Check 34: maybe (12).
    Check 51: so far the answer is (12).
    Check 61: let me add the numbers again.
    ...
    Check 20: maybe (2).
    </think>

    **Final Answer**

    \\boxed{2}<|im_end|>

Training is deterministic for a given :class:`TinyModelSettings` (seeded data, seeded
initialisation, a fixed number of optimiser steps, ``torch`` on a fixed number of
threads). :func:`cached_tiny_model` keys a cache folder on a hash of the settings and of
this file's source, so a test trains once per machine and reuses the folder afterwards.

Command line::

    python -m collection.tiny_model --out DIR     # train into DIR
    python -m collection.tiny_model               # train into the cache (or reuse it), print the folder
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

from collection.config import DEFAULT_PROBE_SUFFIX, DEFAULT_PROMPT

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)
CACHE_ENV = "AUTOTTS_TINY_MODEL_CACHE"
METADATA_FILE = "training.json"
# A check line tagged STOP_TAG ends the reasoning; tags are uniform over TAGS values from STOP_TAG.
STOP_TAG, TAGS, MAX_LINES = 20, 50, 200


@dataclass(frozen=True)
class TinyModelSettings:
    """Everything that determines the trained model (all of it enters the cache key).

    Attributes:
        seed: seeds the generated text, the initial weights and the batch order.
        steps: optimiser steps.
        batch_tokens: tokens per batch at most (prompt + reasoning, before padding).
        learning_rate: AdamW peak learning rate (linear warm-up, cosine decay to 10%).
        warmup_steps: steps of linear warm-up.
        vocab_size: BPE vocabulary size, special tokens included.
        tokenizer_samples: generated samples the tokenizer is trained on.
        hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads, head_dim:
            the Qwen3 shape (head_dim 64: vLLM's CPU attention needs a multiple of 32).
        max_position_embeddings: context length the model is configured for.
        belief_redraw: chance that a "maybe" check line draws a new belief.
        prefix_share, prefix_tokens: share of the training samples cut to their first
            ``prefix_tokens`` completion tokens (no ending): more questions per token.
        early_answer: share of samples cut at a random point of their reasoning and
            answered at once (teaches the model to answer a probe).
        threads: torch threads during training (results can depend on it).
    """

    seed: int = 0
    steps: int = 1600
    batch_tokens: int = 3072
    learning_rate: float = 3e-3
    warmup_steps: int = 40
    vocab_size: int = 640
    tokenizer_samples: int = 2000
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 3
    num_heads: int = 2
    num_kv_heads: int = 1
    head_dim: int = 64
    max_position_embeddings: int = 4096
    belief_redraw: float = 0.5
    early_answer: float = 0.1
    prefix_share: float = 0.6
    prefix_tokens: int = 128
    threads: int = 2

    def cache_key(self) -> str:
        """Hex digest of these settings and of this module's source (the data generator)."""
        source = Path(__file__).read_bytes()
        payload = json.dumps(asdict(self), sort_keys=True).encode() + b"\0" + source
        return hashlib.sha256(payload).hexdigest()[:16]


# ------------------------------------------------------------------ the questions and the text
def tiny_questions() -> list[dict[str, str]]:
    """The 100 questions the model is trained on: ``{"problem": "What is A plus B?", "answer": "A+B"}``."""
    return [{"problem": f"What is {a} plus {b}?", "answer": str(a + b)} for a in range(10) for b in range(10)]


def answer_distribution(a: int, b: int) -> dict[int, float]:
    """The answers the training text gives for ``a plus b`` and their frequencies.

    Three tiers: no carry (``a + b <= 9``) right 80% of the time, otherwise off by one;
    a carry right 60%, a forgotten carry (``a + b - 10``) 20%, off by one 20%; both terms
    at least 7 (hard) right 40%, a forgotten carry 40%, off by one 20%. Sampling at
    temperature 0.7 sharpens these, so the easy tiers mostly agree on the right answer and
    the hard tier splits between the right answer and the forgotten carry.
    """
    s = a + b
    low = s - 1 if s > 0 else s + 2
    if s <= 9:
        return {s: 0.8, s + 1: 0.1, low: 0.1}
    right = 0.4 if min(a, b) >= 7 else 0.6
    return {s: right, s - 10: 0.8 - right, s + 1: 0.1, s - 1: 0.1}


def _draw(rng: random.Random, distribution: dict[int, float]) -> int:
    values = list(distribution)
    return rng.choices(values, weights=[distribution[v] for v in values])[0]


def prompt_text(question: str) -> str:
    """The prompt the collector sends for ``question`` (default prompt, chat template above)."""
    content = DEFAULT_PROMPT.replace("{question}", question)
    return f"<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n<think>\n"


def reasoning_sample(rng: random.Random, settings: TinyModelSettings) -> tuple[str, str]:
    """One training sample: ``(prompt, completion)``; the completion ends with ``<|im_end|>``.

    Check lines follow each other until one is tagged ``Check 20`` (tags are uniform in
    20..69, above every answer, so each line ends the reasoning with chance 1/50), or
    ``MAX_LINES`` are written.
    """
    a, b = rng.randrange(10), rng.randrange(10)
    distribution = answer_distribution(a, b)
    belief = _draw(rng, distribution)
    lines = [f"We need {a} plus {b}."]
    while True:
        tag = STOP_TAG if len(lines) == MAX_LINES else rng.randrange(STOP_TAG, STOP_TAG + TAGS)
        kind = 0.0 if len(lines) == 1 else rng.random()  # the first check states a belief
        if kind < 0.7:
            if rng.random() < settings.belief_redraw:
                belief = _draw(rng, distribution)
            lines.append(f"Check {tag}: maybe ({belief}).")
        elif kind < 0.9:
            lines.append(f"Check {tag}: so far the answer is ({belief}).")
        else:
            lines.append(f"Check {tag}: let me add the numbers again.")
        if tag == STOP_TAG:
            break
    reasoning = "\n".join(lines)
    if rng.random() < settings.early_answer:
        # Cut anywhere after the first check line: the belief of the cut point is the answer.
        start = len(lines[0]) + len(lines[1]) + 2
        if start < len(reasoning):
            reasoning = reasoning[: rng.randrange(start, len(reasoning))]
            belief = _belief_at(reasoning)
    completion = f"{reasoning}{DEFAULT_PROBE_SUFFIX}{belief}}}<|im_end|>"
    return prompt_text(f"What is {a} plus {b}?"), completion


def _belief_at(reasoning: str) -> int:
    """The belief stated last in a (possibly cut) reasoning text; a cut line counts if its number is whole."""
    lines = reasoning.split("\n")
    if not lines[-1].endswith("."):
        lines.pop()
    for line in reversed(lines):
        for marker in (": maybe ", " the answer is "):
            if marker in line:
                digits = line.split(marker, 1)[1].strip("().")
                if digits.lstrip("-").isdigit():
                    return int(digits)
    raise ValueError(f"no belief stated in {reasoning!r}")


# ------------------------------------------------------------------ training
def _train_tokenizer(settings: TinyModelSettings, rng: random.Random):  # -> PreTrainedTokenizerFast
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = ["".join(reasoning_sample(rng, settings)) for _ in range(settings.tokenizer_samples)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=settings.vocab_size, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _batches(settings: TinyModelSettings, rng: random.Random, tokenizer) -> Iterator[list[tuple[list[int], int]]]:
    """Endless batches of ``(token ids, prompt length)``, samples of similar length together."""
    while True:
        pool = []
        for _ in range(256):
            prompt, completion = reasoning_sample(rng, settings)
            p = tokenizer.encode(prompt, add_special_tokens=False)
            c = tokenizer.encode(completion, add_special_tokens=False)
            if rng.random() < settings.prefix_share and len(c) > settings.prefix_tokens:
                # A prefix of a sample is a sample of the same process, minus its ending: it
                # trains every conditional the same way, at a fraction of the tokens.
                c = c[: settings.prefix_tokens]
            pool.append((p + c, len(p)))
        pool.sort(key=lambda item: len(item[0]))
        batches, current = [], []
        for item in pool:
            if current and (len(current) + 1) * len(item[0]) > settings.batch_tokens:
                batches.append(current)
                current = []
            current.append(item)
        batches.append(current)
        rng.shuffle(batches)
        yield from batches


def train_tiny_model(
    out_dir: str | Path,
    seconds_budget: float = 900.0,
    seed: int = 0,
    settings: TinyModelSettings | None = None,
    log_every: int = 50,
) -> Path:
    """Train the tokenizer and the model and save both (Hugging Face format) into ``out_dir``.

    Args:
        out_dir: folder to write (created; existing files of the same names are replaced).
        seconds_budget: wall-clock cap on the optimiser loop. Training normally ends after
            ``settings.steps`` steps; if the cap is reached first it stops there, and
            ``training.json`` says so (``"complete": false``): such a model is not the
            deterministic result of its settings.
        seed: overrides ``settings.seed``.
        settings: the training settings (default :class:`TinyModelSettings`).
        log_every: print the loss every this many steps (to stderr; 0: never).

    Returns:
        ``out_dir`` as a Path. ``training.json`` in it records the settings, the cache
        key, the steps done, the loss curve, the wall-clock time and the library versions.
    """
    import torch
    import transformers
    from transformers import Qwen3Config, Qwen3ForCausalLM

    settings = TinyModelSettings(**{**asdict(settings or TinyModelSettings()), "seed": seed})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    rng = random.Random(settings.seed)
    tokenizer = _train_tokenizer(settings, rng)
    tokenizer.save_pretrained(out)
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=settings.hidden_size, intermediate_size=settings.intermediate_size,
        num_hidden_layers=settings.num_layers, num_attention_heads=settings.num_heads,
        num_key_value_heads=settings.num_kv_heads, head_dim=settings.head_dim,
        max_position_embeddings=settings.max_position_embeddings, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        torch.manual_seed(settings.seed)
        model = Qwen3ForCausalLM(config)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.01)

        def rate(step: int) -> float:
            if step < settings.warmup_steps:
                return (step + 1) / settings.warmup_steps
            progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
        losses: list[tuple[int, float]] = []
        tokens_seen, step, loop_start = 0, 0, time.monotonic()
        batches = _batches(settings, rng, tokenizer)
        while step < settings.steps and time.monotonic() - loop_start < seconds_budget:
            batch = next(batches)
            width = -(-max(len(ids) for ids, _ in batch) // 64) * 64  # few distinct shapes: faster kernels
            ids = torch.full((len(batch), width), tokenizer.pad_token_id)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            labels = torch.full((len(batch), width), -100)
            for i, (seq, prompt_len) in enumerate(batch):
                ids[i, : len(seq)] = torch.tensor(seq)
                mask[i, : len(seq)] = 1
                labels[i, prompt_len : len(seq)] = ids[i, prompt_len : len(seq)]
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            tokens_seen += int(mask.sum())
            step += 1
            if log_every and (step % log_every == 0 or step == settings.steps):
                losses.append((step, round(loss.item(), 4)))
                print(f"tiny model: step {step}/{settings.steps} loss {loss.item():.3f} "
                      f"({time.monotonic() - loop_start:.0f} s)", file=sys.stderr, flush=True)
        train_seconds = time.monotonic() - loop_start
        model.eval()
        model.save_pretrained(out)
    finally:
        torch.set_num_threads(threads)
    metadata = {
        "settings": asdict(settings),
        "cache_key": settings.cache_key(),
        "complete": step == settings.steps,
        "steps_done": step,
        "tokens_seen": tokens_seen,
        "loss_curve": losses,
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.monotonic() - started, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "questions": "What is A plus B? (A, B in 0..9); see collection.tiny_model.tiny_questions",
    }
    (out / METADATA_FILE).write_text(json.dumps(metadata, indent=1) + "\n")
    return out


def default_cache_dir() -> Path:
    """``$AUTOTTS_TINY_MODEL_CACHE`` if set, else ``~/.cache/autotts-gym/tiny-model``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "autotts-gym" / "tiny-model"


def cached_tiny_model(
    cache_dir: str | Path | None = None, settings: TinyModelSettings | None = None, seconds_budget: float = 900.0
) -> Path:
    """The folder of the model trained with ``settings``, training it first if it is not cached.

    The folder is ``cache_dir / settings.cache_key()``. A model is trained into a temporary
    folder beside it and renamed into place, so a concurrent or interrupted run never
    leaves a half-written model behind; a model cut short by ``seconds_budget`` is
    returned but not cached.
    """
    settings = settings or TinyModelSettings()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / settings.cache_key()
    if (target / METADATA_FILE).is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    train_tiny_model(scratch, seconds_budget=seconds_budget, seed=settings.seed, settings=settings)
    if not json.loads((scratch / METADATA_FILE).read_text())["complete"]:
        return scratch
    try:
        scratch.rename(target)
    except OSError:  # another process cached the same model meanwhile
        if not (target / METADATA_FILE).is_file():
            raise
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m collection.tiny_model``: train the tiny model (into ``--out`` or the cache)."""
    parser = argparse.ArgumentParser(prog="python -m collection.tiny_model", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="train into this folder (default: the cache, reused when present)")
    parser.add_argument("--cache-dir", type=Path, help=f"cache folder (default: ${CACHE_ENV} or ~/.cache/...)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the weights and the batch order")
    parser.add_argument("--steps", type=int, default=TinyModelSettings.steps, help="optimiser steps")
    parser.add_argument("--seconds-budget", type=float, default=900.0, help="wall-clock cap on training")
    args = parser.parse_args(argv)
    settings = TinyModelSettings(seed=args.seed, steps=args.steps)
    if args.out is not None:
        path = train_tiny_model(args.out, seconds_budget=args.seconds_budget, seed=args.seed, settings=settings)
    else:
        path = cached_tiny_model(args.cache_dir, settings, seconds_budget=args.seconds_budget)
    info = json.loads((path / METADATA_FILE).read_text())
    print(f"{path}  ({info['steps_done']} steps, {info['train_seconds']} s, complete={info['complete']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
