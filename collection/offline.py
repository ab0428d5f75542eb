"""Offline backend: vLLM's ``LLM`` engine in this process, with prefix caching.

Each call of :meth:`OfflineGenerator.generate` submits one step's requests (chunks and
probes of all live trajectories) together in one ``LLM.generate`` call, so the engine
batches them and a probe finds its trajectory's prefix in the prefix cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collection.config import CollectConfig
from collection.generation import Completion, Request


class OfflineGenerator:
    """A :class:`~collection.generation.Generator` over ``vllm.LLM``.

    Args:
        config: model, dtype, tensor parallel size, max model length, prefix caching,
            GPU memory fraction, seed and extra ``engine_args``.
    """

    def __init__(self, config: CollectConfig) -> None:
        from vllm import LLM

        kwargs: dict[str, Any] = {
            "model": config.model,
            "tokenizer": config.tokenizer or config.model,
            "dtype": config.dtype,
            "tensor_parallel_size": config.tensor_parallel_size,
            "enable_prefix_caching": config.enable_prefix_caching,
            "gpu_memory_utilization": config.gpu_memory_utilization,
            "seed": config.seed,
        }
        if config.max_model_len is not None:
            kwargs["max_model_len"] = config.max_model_len
        kwargs.update(config.engine_args)
        self.engine_kwargs = kwargs
        try:
            self.llm = LLM(**kwargs)
        except Exception as err:  # no GPU, no CPU build, not enough memory, a bad model folder
            raise RuntimeError(
                f"vLLM could not start model {config.model} on this machine ({type(err).__name__}: {err}). "
                "It needs a GPU, or the CPU build on a machine without one (bash collection/requirements-ci.sh); "
                "or pass --endpoint URL to use running vLLM servers"
            ) from err
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """Complete all requests in one engine call."""
        from vllm import SamplingParams

        prompts = [{"prompt_token_ids": list(r.prompt)} for r in requests]
        params = [
            SamplingParams(
                n=1,
                temperature=r.temperature,
                top_p=r.top_p,
                top_k=r.top_k,
                seed=r.seed,
                max_tokens=r.max_tokens,
                logprobs=0 if r.logprobs else None,
                detokenize=False,  # the collector decodes what it needs itself
            )
            for r in requests
        ]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [_completion(out, req.logprobs) for out, req in zip(outputs, requests)]

    def describe(self) -> dict[str, Any]:
        """Engine settings and vLLM version for the store's metadata."""
        import vllm

        return {
            "mode": "offline",
            "vllm_version": vllm.__version__,
            "engine_args": {k: v for k, v in self.engine_kwargs.items() if _jsonable(v)},
            "max_model_len": self.max_model_len,
        }

    def close(self) -> None:
        """Drop the engine (frees its memory once collected)."""
        self.llm = None


def _completion(output: Any, want_logprobs: bool) -> Completion:
    sample = output.outputs[0]
    tokens = tuple(sample.token_ids)
    logprobs: tuple[float, ...] = ()
    if want_logprobs and sample.logprobs:
        logprobs = tuple(float(step[tok].logprob) for step, tok in zip(sample.logprobs, tokens))
    return Completion(
        tokens=tokens,
        stopped=sample.finish_reason == "stop",
        logprobs=logprobs,
        cached_prompt_tokens=getattr(output, "num_cached_tokens", None),
    )


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None), list, dict))
