"""Throughput and prefix-cache accounting of a collection run, with its progress bar.

Two figures describe the prefix cache:

* *measured*: the prompt tokens the backend reports it served from its prefix cache
  (vLLM's ``RequestOutput.num_cached_tokens`` offline; ``usage.prompt_tokens_details.
  cached_tokens`` from a server started with ``--enable-prompt-tokens-details``).
* *by structure*: the prompt tokens an earlier request of the run had already computed
  (the question prompt shared by a question's trajectories, and a trajectory's own
  prefix when it is continued or probed), i.e. what an unlimited cache with
  one-token blocks would save. vLLM caches whole blocks, so *measured* is lower by up to
  one block per request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CollectionStats:
    """Counters of one run (this process)."""

    requests: int = 0
    prompt_tokens: int = 0
    reusable_prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    cache_reported: bool = True
    trajectory_tokens: int = 0
    probe_tokens: int = 0
    probes: int = 0
    trajectories: int = 0
    steps: int = 0
    started: float = field(default_factory=time.perf_counter)

    def add_request(self, prompt_len: int, reusable: int, cached: int | None) -> None:
        """Count one request: its prompt length, reusable prefix and measured cache hit."""
        self.requests += 1
        self.prompt_tokens += prompt_len
        self.reusable_prompt_tokens += reusable
        if cached is None:
            self.cache_reported = False
        else:
            self.cached_prompt_tokens += cached

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.started

    @property
    def generated_tokens(self) -> int:
        """Trajectory and probe tokens generated."""
        return self.trajectory_tokens + self.probe_tokens

    def summary(self) -> dict[str, Any]:
        """The closing figures as a dict (also recorded in the store's metadata)."""
        elapsed = max(self.elapsed, 1e-9)
        out: dict[str, Any] = {
            "seconds": round(elapsed, 3),
            "steps": self.steps,
            "trajectories": self.trajectories,
            "requests": self.requests,
            "probes": self.probes,
            "trajectory_tokens": self.trajectory_tokens,
            "probe_tokens": self.probe_tokens,
            "generated_tokens_per_second": round(self.generated_tokens / elapsed, 2),
            "trajectory_tokens_per_second": round(self.trajectory_tokens / elapsed, 2),
            "prompt_tokens": self.prompt_tokens,
            "prompt_tokens_reusable_by_structure": self.reusable_prompt_tokens,
            "prompt_tokens_cached_measured": self.cached_prompt_tokens if self.cache_reported else None,
        }
        return out


def format_summary(summary: dict[str, Any]) -> str:
    """A few readable lines for the end of a run."""
    prompt = max(summary["prompt_tokens"], 1)
    measured = summary["prompt_tokens_cached_measured"]
    lines = [
        f"collected {summary['trajectories']} trajectories in {summary['seconds']:.1f} s "
        f"({summary['steps']} steps, {summary['requests']} requests, {summary['probes']} probes)",
        f"generated {summary['trajectory_tokens']} trajectory + {summary['probe_tokens']} probe tokens: "
        f"{summary['generated_tokens_per_second']:.1f} tokens/s "
        f"({summary['trajectory_tokens_per_second']:.1f} trajectory tokens/s)",
        f"prompt tokens submitted: {summary['prompt_tokens']}; reusable by request structure: "
        f"{summary['prompt_tokens_reusable_by_structure']} "
        f"({100 * summary['prompt_tokens_reusable_by_structure'] / prompt:.1f}%)",
        "prompt tokens served by the prefix cache (measured by the backend): "
        + (f"{measured} ({100 * measured / prompt:.1f}%)" if measured is not None else "not reported"),
    ]
    return "\n".join(lines)


class Progress:
    """A tqdm bar over trajectories with tokens/s in its postfix (silent when disabled)."""

    def __init__(self, total: int, enabled: bool, stats: CollectionStats, initial: int = 0) -> None:
        self.stats = stats
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="traj", desc="collect", dynamic_ncols=True)

    def update(self, finished: int) -> None:
        """Advance by ``finished`` trajectories and refresh the rates."""
        if self.bar is None:
            return
        s = self.stats
        elapsed = max(s.elapsed, 1e-9)
        cached = f"{100 * s.cached_prompt_tokens / max(s.prompt_tokens, 1):.0f}%" if s.cache_reported else "n/a"
        self.bar.set_postfix(
            {"tok/s": f"{s.generated_tokens / elapsed:.1f}", "probes": s.probes, "cache": cached}, refresh=False
        )
        self.bar.update(finished)

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()
