"""Collection settings: one dataclass, filled from defaults, a config file and flags.

Precedence: defaults < config file (``--config run.toml`` or ``.json``) < command-line
flags. Every setting is recorded in the store (``SplitInfo.sampling`` and
``SplitInfo.extra["collection"]``); the settings that change the data also form the run's
fingerprint, which a resumed run must match.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from autotts_gym.data.validation import MAX_INTERVAL_TOKENS, MAX_TOTAL_TOKENS

DEFAULT_PROMPT = "{question}\nPlease reason step by step, and put your final answer within \\boxed{}."
# Close the thinking block and open a box: the model's next few tokens are its answer now.
DEFAULT_PROBE_SUFFIX = "\n</think>\n\n**Final Answer**\n\n\\boxed{"

# Settings that change what is collected: a resumed run must agree on all of them.
DATA_FIELDS = (
    "model",
    "tokenizer",
    "questions",
    "question_field",
    "answer_field",
    "limit",
    "prompt_template",
    "system_prompt",
    "chat_template",
    "trajectories",
    "interval_tokens",
    "probe_suffix",
    "probe_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "max_tokens",
    "max_model_len",
    "dtype",
    "trajectories_per_shard",
)


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the setting."""


@dataclass
class CollectConfig:
    """Every setting of one collection run.

    The defaults follow the release protocol (facts section 3): 128 trajectories per
    question at temperature 0.7, up to 40,000 tokens, a probe every 500 tokens.
    """

    model: str = ""
    """Model path or name (Hugging Face id) served by vLLM."""
    questions: str = ""
    """Question file: .jsonl, .json, .csv or .parquet."""
    out: str = ""
    """Output store folder (written atomically at the end)."""
    model_name: str | None = None
    """Model name in the store (default: the last part of --model)."""
    benchmark: str | None = None
    """Benchmark name in the store (default: the question file's stem)."""
    question_field: str = "question"
    """Field of the question text in the question file."""
    answer_field: str = "answer"
    """Field of the gold answer in the question file."""
    limit: int | None = None
    """Use only the first LIMIT questions."""
    tokenizer: str | None = None
    """Tokenizer path or name (default: --model)."""
    prompt_template: str = DEFAULT_PROMPT
    """User message; the text {question} is replaced by the question (other braces stay as written)."""
    system_prompt: str | None = None
    """Optional system message."""
    chat_template: str | None = None
    """A Jinja chat template file replacing the tokenizer's own."""
    trajectories: int = 128
    """N, trajectories (branches) per question."""
    interval_tokens: int = 500
    """Delta, tokens between two probes."""
    probe_suffix: str = DEFAULT_PROBE_SUFFIX
    """Text appended to a prefix to ask for the answer now."""
    probe_tokens: int = 24
    """Tokens decoded greedily after the probe suffix."""
    temperature: float = 0.7
    """Sampling temperature of the trajectories."""
    top_p: float = 1.0
    """Nucleus sampling of the trajectories."""
    top_k: int = -1
    """Top-k sampling of the trajectories (-1: off)."""
    seed: int = 0
    """Base seed; every request's seed derives from it, the question and the trajectory."""
    max_tokens: int = 40000
    """Maximum tokens of one trajectory."""
    dtype: str = "auto"
    """Model dtype (auto, bfloat16, float16, float32)."""
    max_model_len: int | None = None
    """Context length given to vLLM (default: the model's)."""
    tensor_parallel_size: int = 1
    """GPUs per model replica (offline mode)."""
    data_parallel_size: int = 1
    """Model replicas (offline mode: one process per replica, questions split between them)."""
    gpu_memory_utilization: float = 0.9
    """Fraction of GPU memory vLLM may use (offline mode)."""
    enable_prefix_caching: bool = True
    """Let vLLM reuse the KV cache of shared prefixes (a probe reuses its trajectory's)."""
    engine_args: dict[str, Any] = field(default_factory=dict)
    """Further vLLM LLM(...) keyword arguments (offline mode), e.g. {"block_size": 32}."""
    endpoints: list[str] = field(default_factory=list)
    """OpenAI-compatible base URLs (server mode), e.g. http://host:8000/v1."""
    served_model_name: str | None = None
    """Model name the servers know (default: --model)."""
    api_key: str = "EMPTY"
    """API key sent to the servers."""
    max_concurrency: int = 64
    """Requests in flight per endpoint (server mode)."""
    request_timeout: float = 3600.0
    """Seconds before one server request fails (server mode)."""
    trajectories_per_shard: int | None = None
    """Trajectories of one question per shard file (default: all N)."""
    batch_trajectories: int = 256
    """Trajectories decoded together (shards are added while fewer are live)."""
    work_dir: str | None = None
    """Folder of the shards (default: OUT.work); a rerun resumes from it."""
    overwrite: bool = False
    """Replace an existing output store."""
    use_math_verify: bool = True
    """Grade answers against the gold with math-verify (else normalised string equality)."""
    dp_rank: int | None = None
    """Internal: the data-parallel rank this process collects (set by the parent process)."""
    progress: bool = True
    """Show progress bars."""

    # ----------------------------------------------------------- derived
    @property
    def shard_size(self) -> int:
        """Trajectories per shard."""
        return self.trajectories_per_shard or self.trajectories

    @property
    def server_mode(self) -> bool:
        """True when collecting through OpenAI-compatible endpoints."""
        return bool(self.endpoints)

    @property
    def store_model_name(self) -> str:
        """The model's name in the store."""
        return self.model_name or Path(self.model.rstrip("/")).name or self.model

    @property
    def store_benchmark_name(self) -> str:
        """The benchmark's name in the store."""
        return self.benchmark or Path(self.questions).stem

    @property
    def shard_dir(self) -> Path:
        """The work folder holding the shards."""
        return Path(self.work_dir) if self.work_dir else Path(f"{self.out.rstrip('/')}.work")

    def validate(self) -> CollectConfig:
        """Check the settings; returns self."""
        for name in ("model", "questions", "out"):
            if not getattr(self, name):
                raise ConfigError(f"setting {name!r} is required (--{name.replace('_', '-')})")
        positive = ("trajectories", "interval_tokens", "probe_tokens", "max_tokens", "tensor_parallel_size",
                    "data_parallel_size", "max_concurrency", "batch_trajectories")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"setting {name!r} must be at least 1, got {getattr(self, name)}")
        for name, bound in (("interval_tokens", MAX_INTERVAL_TOKENS), ("max_tokens", MAX_TOTAL_TOKENS)):
            if int(getattr(self, name)) > bound:
                raise ConfigError(
                    f"setting {name!r} must be at most {bound} (the store's bound, docs/store-format.md), "
                    f"got {getattr(self, name)}"
                )
        if self.trajectories_per_shard is not None and not 1 <= self.trajectories_per_shard <= self.trajectories:
            raise ConfigError(
                f"setting 'trajectories_per_shard' must be between 1 and trajectories ({self.trajectories}), "
                f"got {self.trajectories_per_shard}"
            )
        if self.temperature < 0:
            raise ConfigError(f"setting 'temperature' must be >= 0, got {self.temperature}")
        if "{question}" not in self.prompt_template:
            raise ConfigError("setting 'prompt_template' must contain {question}")
        if self.chat_template and not Path(self.chat_template).is_file():
            raise ConfigError(f"setting 'chat_template': no such file {self.chat_template}")
        if self.server_mode and self.data_parallel_size > 1:
            raise ConfigError(
                "setting 'data_parallel_size' is for offline mode; in server mode give one --endpoint per server"
            )
        return self

    def chat_template_text(self) -> str | None:
        """The content of the chat template file, if one is set."""
        return Path(self.chat_template).read_text(encoding="utf-8") if self.chat_template else None

    def fingerprint(self) -> dict[str, Any]:
        """The settings that determine the data (compared when a run resumes)."""
        values = {name: getattr(self, name) for name in DATA_FIELDS}
        # The questions' content, not their path: a moved file resumes, an edited one does not.
        values["questions"] = hashlib.sha256(Path(self.questions).read_bytes()).hexdigest()
        values["chat_template"] = self.chat_template_text()
        return values

    def record(self) -> dict[str, Any]:
        """Every setting, as stored in the store's metadata."""
        values = asdict(self)
        values["chat_template_text"] = self.chat_template_text()
        for internal in ("dp_rank", "progress", "api_key"):
            values.pop(internal)
        return values


def config_field_names() -> list[str]:
    """Names of all settings."""
    return [f.name for f in fields(CollectConfig)]


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Settings from a ``.json`` or ``.toml`` file (keys as the flags, ``-`` or ``_``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            raise ConfigError(f"{path}: TOML config files need Python 3.11 or later; use JSON") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: malformed TOML: {err}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: malformed JSON at line {err.lineno}: {err.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table/object of settings")
    known = set(config_field_names())
    settings = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"{path}: unknown setting {key!r}")
        settings[name] = value
    return settings


def build_config(file_settings: dict[str, Any], flag_settings: dict[str, Any]) -> CollectConfig:
    """Defaults, then the config file, then the flags that were given (not None)."""
    merged = dict(file_settings)
    merged.update({k: v for k, v in flag_settings.items() if v is not None})
    return CollectConfig(**merged).validate()
