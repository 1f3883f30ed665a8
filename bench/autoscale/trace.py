"""Request traces: arrival time, prompt tokens, output tokens."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

DEFAULT_TRACE = Path(__file__).parent / "traces" / "azure_llm_2023_conv.csv"

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Trace:
    arrival_s: FloatArray
    """Seconds from the start of the replayed window, ascending."""
    prompt_tokens: FloatArray
    output_tokens: FloatArray
    source: str

    def __len__(self) -> int:
        return len(self.arrival_s)

    @property
    def duration_s(self) -> float:
        return float(self.arrival_s[-1]) if len(self) else 0.0


def _parse_time(text: str) -> float:
    # The Azure traces carry 7 fractional digits; datetime takes at most 6.
    text = text.strip()
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    return datetime.fromisoformat(text).timestamp()


def load_trace(
    path: Path | str = DEFAULT_TRACE,
    *,
    start_s: float = 0.0,
    duration_s: float | None = None,
    speedup: float = 1.0,
) -> Trace:
    """Read a trace CSV with columns TIMESTAMP, ContextTokens, GeneratedTokens.

    `start_s` and `duration_s` select a window in trace time (seconds from the first request);
    `speedup` then compresses time (2.0 replays the window in half the time, at twice the rate).
    """
    if speedup <= 0:
        raise ValueError(f"speedup must be > 0, got {speedup}")
    times: list[float] = []
    prompts: list[float] = []
    outputs: list[float] = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            times.append(_parse_time(row["TIMESTAMP"]))
            prompts.append(float(row["ContextTokens"]))
            outputs.append(float(row["GeneratedTokens"]))
    if not times:
        raise ValueError(f"{path}: no requests")
    t = np.asarray(times, dtype=np.float64)
    order = np.argsort(t, kind="stable")
    t = t[order] - t[order][0]
    keep = t >= start_s
    if duration_s is not None:
        keep &= t < start_s + duration_s
    arrival = (t[keep] - start_s) / speedup
    return Trace(
        arrival_s=arrival,
        # A request has at least one prompt and one output token.
        prompt_tokens=np.maximum(np.asarray(prompts, dtype=np.float64)[order][keep], 1.0),
        output_tokens=np.maximum(np.asarray(outputs, dtype=np.float64)[order][keep], 1.0),
        source=str(path),
    )
