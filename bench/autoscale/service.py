"""Replica service model: how fast one vLLM replica prefills and decodes at a given batch.

A forward step of vLLM (continuous batching, chunked prefill) that decodes `b` sequences and
prefills `p` prompt tokens takes about `t0 + a*b + c*p` seconds: `t0` is reading the weights once
(the memory-bound floor), `a` the per-sequence cost (KV-cache reads), `c` the per-prompt-token
compute. Each decoding sequence gains one token per step, so a sequence's speed is
`1 / (t0 + a*b)` and a replica's output rate `b / (t0 + a*b)`: it grows with the batch but
sublinearly, levelling off at `1/a`. The three constants are derived from three throughput
figures anyone can measure with `vllm bench serve` (see calibrations/README.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CALIBRATION = Path(__file__).parent / "calibrations" / "h100x2-llama70b-fp8.json"


@dataclass(frozen=True)
class Calibration:
    name: str
    single_stream_decode_tokens_per_s: float
    """Output tokens/s of one sequence alone (1 / time per output token at concurrency 1)."""
    saturated_decode_tokens_per_s: float
    """Output tokens/s of the whole replica with `max_num_seqs` sequences decoding."""
    prefill_tokens_per_s: float
    """Prompt tokens/s when the replica does nothing but prefill."""
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    kv_cache_tokens: int = 1_000_000
    """Tokens of KV cache; a request reserves prompt + output tokens while admitted."""
    cold_start_s: float = 60.0
    """From the scale-up decision to the replica taking requests."""
    source: str = ""

    @property
    def step_overhead_s(self) -> float:
        return 1.0 / self.single_stream_decode_tokens_per_s - self.per_seq_s

    @property
    def per_seq_s(self) -> float:
        b = self.max_num_seqs
        return (
            b / self.saturated_decode_tokens_per_s - 1.0 / self.single_stream_decode_tokens_per_s
        ) / (b - 1)

    @property
    def per_prompt_token_s(self) -> float:
        budget = self.max_num_batched_tokens
        return max(1e-9, 1.0 / self.prefill_tokens_per_s - self.step_overhead_s / budget)

    def validate(self) -> Calibration:
        if not self.single_stream_decode_tokens_per_s > 0 or not self.prefill_tokens_per_s > 0:
            raise ValueError(f"{self.name}: throughputs must be > 0")
        if self.max_num_seqs < 2:
            raise ValueError(f"{self.name}: max_num_seqs must be >= 2, got {self.max_num_seqs}")
        if self.per_seq_s <= 0 or self.step_overhead_s <= 0:
            raise ValueError(
                f"{self.name}: saturated_decode_tokens_per_s "
                f"({self.saturated_decode_tokens_per_s}) must lie between the single-stream rate "
                f"and max_num_seqs times it"
            )
        return self


def load_calibration(path: Path | str = DEFAULT_CALIBRATION, **overrides: float) -> Calibration:
    """A calibration from JSON (keys as the Calibration fields; keys starting with '_' ignored)."""
    data = json.loads(Path(path).read_text())
    data = {k: v for k, v in data.items() if not k.startswith("_")}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return Calibration(**data).validate()
