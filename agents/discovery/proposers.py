"""Proposers: who writes the next candidate. Named on the command line as

* ``openai:MODEL``: any OpenAI-compatible chat-completions endpoint through the
  ``openai`` client (a local ``vllm serve``, hosted APIs, routers). Base URL and key come
  from the arguments or from ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``; with a base URL
  and no key, the key ``EMPTY`` (what a local vLLM server accepts) is sent.
* ``anthropic:MODEL``: the Anthropic Messages API through the ``anthropic`` client (key
  from the argument or ``ANTHROPIC_API_KEY``, base URL from ``ANTHROPIC_BASE_URL``).
* ``scripted:FOLDER``: replays the files of FOLDER (``*.py``, ``*.md``, ``*.txt``) in
  sorted order, one per round: offline, for tests and reproducible demos.

Every :class:`Proposal` records the prompt and completion tokens the API reported,
the wall time of the call and its cost from a :class:`PriceTable` (USD per million
tokens, set by the user; unknown models cost None, not a guess).
"""

from __future__ import annotations

import fnmatch
import inspect
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agents.discovery.prompt import SYSTEM_PROMPT

SCRIPT_SUFFIXES = (".py", ".md", ".txt")


class ProposerError(RuntimeError):
    """A proposer could not produce a reply (API error, missing key, exhausted script)."""


@dataclass(frozen=True)
class Proposal:
    """A proposer's reply and what it cost.

    Attributes:
        text: the reply.
        model: the model that wrote it (``scripted`` for the scripted proposer).
        prompt_tokens / completion_tokens: as reported by the API (None if unknown).
        seconds: wall time of the call.
        cost_usd: from the price table (None if the model has no price).
        source: the replayed file (scripted proposer only).
    """

    text: str
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    seconds: float = 0.0
    cost_usd: float | None = None
    source: str | None = None

    def usage(self) -> dict[str, Any]:
        """The usage record written to ``round.json``."""
        return {
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.seconds, 3),
            "cost_usd": self.cost_usd,
            "source": self.source,
        }


class Proposer(Protocol):
    """Anything that answers a prompt with a reply."""

    spec: str

    def propose(self, prompt: str, round_index: int) -> Proposal:
        """The reply to ``prompt`` in round ``round_index`` (1-based)."""
        ...


class PriceTable:
    """USD per million prompt and completion tokens, by model.

    A JSON file maps a model name, a ``provider:model`` spec or a glob pattern to
    ``{"prompt": USD, "completion": USD}`` (``input``/``output`` are accepted too)::

        {"gpt-4o": {"prompt": 2.5, "completion": 10}, "claude-*": {"input": 3, "output": 15}}
    """

    def __init__(self, prices: dict[str, dict[str, float]] | None = None, source: str = "") -> None:
        self.prices: dict[str, tuple[float, float]] = {}
        self.source = source
        for key, entry in (prices or {}).items():
            if not isinstance(entry, dict):
                raise ValueError(
                    f"{source or 'price table'}: entry {key!r} must be an object with prompt and completion prices"
                )
            prompt = entry.get("prompt", entry.get("input"))
            completion = entry.get("completion", entry.get("output"))
            if not isinstance(prompt, (int, float)) or not isinstance(completion, (int, float)):
                raise ValueError(
                    f"{source or 'price table'}: entry {key!r} needs numeric 'prompt' and 'completion' "
                    "(USD per million tokens)"
                )
            self.prices[key] = (float(prompt), float(completion))

    @classmethod
    def load(cls, path: str | os.PathLike | None) -> PriceTable:
        """Read a price table file (None: an empty table)."""
        if path is None:
            return cls()
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such price table") from None
        except ValueError as err:
            raise ValueError(f"{path}: the price table is not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the price table must be a JSON object of model -> prices")
        return cls(data, str(path))

    def price(self, provider: str, model: str) -> tuple[float, float] | None:
        """``(prompt, completion)`` USD per million tokens, or None."""
        for key in (f"{provider}:{model}", model):
            if key in self.prices:
                return self.prices[key]
        for key, value in self.prices.items():
            if fnmatch.fnmatchcase(model, key) or fnmatch.fnmatchcase(f"{provider}:{model}", key):
                return value
        return None

    def cost(self, provider: str, model: str, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        """The cost of one call in USD (None without a price or token counts)."""
        price = self.price(provider, model)
        if price is None or prompt_tokens is None or completion_tokens is None:
            return None
        return round((prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6, 6)


class OpenAIProposer:
    """An OpenAI-compatible chat-completions endpoint.

    Args:
        model: the model name the endpoint serves.
        base_url: e.g. ``http://127.0.0.1:8000/v1`` (default: ``OPENAI_BASE_URL`` or OpenAI).
        api_key: default ``OPENAI_API_KEY``; ``EMPTY`` with a base URL and no key.
        temperature, max_tokens: sampling settings.
        timeout: seconds per request; max_retries: the client's retries.
        prices: the price table.
    """

    provider = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        temperature: float = 0.7,
        max_tokens: int = 8192,
        timeout: float = 600.0,
        max_retries: int = 2,
        prices: PriceTable | None = None,
    ) -> None:
        import openai

        self.spec = f"openai:{model}"
        self.model = model
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or ("EMPTY" if base_url else None)
        if api_key is None:
            raise ProposerError(f"{self.spec}: no API key: set OPENAI_API_KEY, or OPENAI_BASE_URL for a local server")
        self.base_url = base_url
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.prices = prices or PriceTable()

    def propose(self, prompt: str, round_index: int) -> Proposal:
        """One chat completion: the system prompt, then the round's prompt."""
        import openai

        started = time.perf_counter()
        try:
            response = self.client.chat.completions.create(
                model=self.model,
                messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}],
                temperature=self.temperature,
                max_tokens=self.max_tokens,
            )
        except openai.OpenAIError as err:
            where = self.base_url or "the OpenAI API"
            raise ProposerError(f"{self.spec} at {where}, round {round_index}: {err}") from err
        seconds = time.perf_counter() - started
        if not response.choices:
            raise ProposerError(f"{self.spec}, round {round_index}: the reply has no choices")
        text = response.choices[0].message.content or ""
        usage = response.usage
        pt = getattr(usage, "prompt_tokens", None)
        ct = getattr(usage, "completion_tokens", None)
        return Proposal(
            text=text,
            model=response.model or self.model,
            prompt_tokens=pt,
            completion_tokens=ct,
            seconds=seconds,
            cost_usd=self.prices.cost(self.provider, self.model, pt, ct),
        )


class AnthropicProposer:
    """The Anthropic Messages API.

    Args:
        model: e.g. ``claude-sonnet-4-5``.
        base_url: default ``ANTHROPIC_BASE_URL`` or Anthropic's.
        api_key: default ``ANTHROPIC_API_KEY``.
        temperature, max_tokens, timeout, max_retries, prices: as for :class:`OpenAIProposer`.
    """

    provider = "anthropic"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        temperature: float = 0.7,
        max_tokens: int = 8192,
        timeout: float = 600.0,
        max_retries: int = 2,
        prices: PriceTable | None = None,
    ) -> None:
        import anthropic

        self.spec = f"anthropic:{model}"
        self.model = model
        api_key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not api_key:
            raise ProposerError(f"{self.spec}: no API key: set ANTHROPIC_API_KEY")
        self.base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        self.client = anthropic.Anthropic(
            api_key=api_key, base_url=self.base_url, timeout=timeout, max_retries=max_retries
        )
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.prices = prices or PriceTable()

    def propose(self, prompt: str, round_index: int) -> Proposal:
        """One message: the system prompt, then the round's prompt."""
        import anthropic

        options: dict[str, Any] = {}
        if "temperature" in inspect.signature(self.client.messages.create).parameters:
            options["temperature"] = self.temperature  # newer clients (and models) have none
        started = time.perf_counter()
        try:
            response = self.client.messages.create(
                model=self.model,
                max_tokens=self.max_tokens,
                system=SYSTEM_PROMPT,
                messages=[{"role": "user", "content": prompt}],
                **options,
            )
        except anthropic.AnthropicError as err:
            raise ProposerError(f"{self.spec}, round {round_index}: {err}") from err
        seconds = time.perf_counter() - started
        text = "".join(getattr(block, "text", "") for block in response.content if getattr(block, "type", "") == "text")
        pt = getattr(response.usage, "input_tokens", None)
        ct = getattr(response.usage, "output_tokens", None)
        return Proposal(
            text=text,
            model=response.model or self.model,
            prompt_tokens=pt,
            completion_tokens=ct,
            seconds=seconds,
            cost_usd=self.prices.cost(self.provider, self.model, pt, ct),
        )


class ScriptedProposer:
    """Replays the files of a folder in sorted order, one per round (no LLM).

    Args:
        folder: a folder of candidate modules (``*.py``) or replies (``*.md``, ``*.txt``),
            or the directory of a discovery run (its rounds' ``response.md``: the run
            replays as it was proposed).
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.spec = f"scripted:{folder}"
        if not self.folder.is_dir():
            raise ProposerError(f"{self.spec}: {self.folder} is not a folder")
        replies = sorted(self.folder.glob("round-*/response.md"))
        self.files = replies or sorted(p for p in self.folder.iterdir() if p.is_file() and p.suffix in SCRIPT_SUFFIXES)
        if not self.files:
            raise ProposerError(f"{self.spec}: {self.folder} holds no {', '.join(SCRIPT_SUFFIXES)} files")

    def propose(self, prompt: str, round_index: int) -> Proposal:
        """The ``round_index``-th file's text."""
        if not 1 <= round_index <= len(self.files):
            raise ProposerError(
                f"{self.spec}: the folder holds {len(self.files)} candidate files; round {round_index} has none"
            )
        started = time.perf_counter()
        path = self.files[round_index - 1]
        text = path.read_text(encoding="utf-8")
        return Proposal(
            text=text,
            model="scripted",
            seconds=time.perf_counter() - started,
            cost_usd=0.0,
            source=str(path.relative_to(self.folder)),
        )


def make_proposer(
    spec: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    temperature: float = 0.7,
    max_tokens: int = 8192,
    timeout: float = 600.0,
    max_retries: int = 2,
    prices: PriceTable | None = None,
) -> Proposer:
    """The proposer a spec names (see the module docstring)."""
    kind, sep, name = spec.partition(":")
    if not sep or not name:
        raise ValueError(f"--proposer {spec!r}: expected openai:MODEL, anthropic:MODEL or scripted:FOLDER")
    options = dict(
        temperature=temperature, max_tokens=max_tokens, timeout=timeout, max_retries=max_retries, prices=prices
    )
    if kind == "openai":
        return OpenAIProposer(name, base_url, api_key, **options)
    if kind == "anthropic":
        return AnthropicProposer(name, base_url, api_key, **options)
    if kind == "scripted":
        return ScriptedProposer(name)
    raise ValueError(f"--proposer {spec!r}: unknown kind {kind!r}; expected openai, anthropic or scripted")
