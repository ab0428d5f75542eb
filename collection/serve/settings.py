"""The operator's settings of ``autotts serve``: what runs by default and what a request may change."""

from __future__ import annotations

from dataclasses import dataclass

from collection.config import CollectConfig, ConfigError


@dataclass
class ServeSettings:
    """Everything ``autotts serve`` is started with.

    Attributes:
        config: the collector's settings of the live episodes: tokenizer (``model``),
            upstream URLs (``endpoints``) and the model name they serve
            (``served_model_name``), prompt, Delta, sampling, probe suffix and tokens,
            maximum tokens per branch, base seed, requests in flight per upstream.
        method: the default controller's method spec (``dsr-lock@0.5``).
        name: the model id clients ask for (``/v1/models`` lists it).
        allowed_methods: method names (without ``@beta``) a request may pick with
            ``autotts.method``; the default method's name is always allowed.
        pool_size: branches one request may open.
        shuffle: branch order of each (seed, episode seed), as in replay.
        budget_tokens: the default per-request token budget (None: the method's own stopping).
        max_budget_tokens: the largest budget a request may ask for (None: no limit).
        kappa_probe: cost of one probe in intervals, as in replay.
        max_beta: the largest beta a request may ask for.
        api_key: requests must carry ``Authorization: Bearer API_KEY`` (None: open).
        max_inflight: requests answered at once; more get a 429 with ``Retry-After``.
        max_request_bytes: the largest request body.
        stream_interval: seconds between two progress chunks of a streamed answer.
        health_interval: the upstream's state is checked again at most this often (seconds).
    """

    config: CollectConfig
    method: str
    name: str = ""
    allowed_methods: tuple[str, ...] = ()
    pool_size: int = 64
    shuffle: str = "release"
    budget_tokens: float | None = None
    max_budget_tokens: float | None = None
    kappa_probe: float = 0.0
    max_beta: float = 1.0
    api_key: str | None = None
    max_inflight: int = 32
    max_request_bytes: int = 256 * 1024
    stream_interval: float = 1.0
    health_interval: float = 1.0

    @property
    def model_name(self) -> str:
        """The model id clients use (default: the upstream's name of the model)."""
        return self.name or self.config.served_model_name or self.config.model

    @property
    def upstream_model(self) -> str:
        """The model name the upstream servers know."""
        return self.config.served_model_name or self.config.model

    def validate(self) -> ServeSettings:
        """Check the settings (errors name the flag); returns self."""
        if not self.config.endpoints:
            raise ConfigError("--upstream is required: the URL of an OpenAI-compatible vLLM server, e.g. http://127.0.0.1:8000/v1")
        if not self.config.model:
            raise ConfigError("--model is required: the model the upstream serves (and its tokenizer)")
        for flag, value in (("--pool-size", self.pool_size), ("--max-inflight", self.max_inflight),
                            ("--max-request-bytes", self.max_request_bytes), ("--delta", self.config.interval_tokens),
                            ("--probe-tokens", self.config.probe_tokens), ("--max-tokens", self.config.max_tokens),
                            ("--max-concurrency", self.config.max_concurrency)):  # fmt: skip
            if int(value) < 1:
                raise ConfigError(f"{flag} must be at least 1, got {value}")
        if self.budget_tokens is not None and self.max_budget_tokens is not None and self.budget_tokens > self.max_budget_tokens:
            raise ConfigError(f"--budget-tokens {self.budget_tokens:g} is above --max-budget-tokens {self.max_budget_tokens:g}")
        if not 0.0 <= self.max_beta <= 1.0:
            raise ConfigError(f"--max-beta must lie in [0, 1], got {self.max_beta:g}")
        if "{question}" not in self.config.prompt_template:
            raise ConfigError("--prompt-template must contain {question}")
        if self.config.temperature < 0:
            raise ConfigError(f"--temperature must be >= 0, got {self.config.temperature}")
        return self

    @property
    def request_budget_limit(self) -> float | None:
        """The largest budget a request may ask for: ``max_budget_tokens``, else the default budget."""
        return self.max_budget_tokens if self.max_budget_tokens is not None else self.budget_tokens
