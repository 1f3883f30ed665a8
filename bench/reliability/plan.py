"""What the load replay sends and how its figures are judged (pure functions)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PlannedRequest:
    at_s: float
    prompt_tokens: int
    output_tokens: int


def plan_requests(
    arrival_s: Sequence[float],
    prompt_tokens: Sequence[float],
    output_tokens: Sequence[float],
    token_scale: float,
    max_prompt: int,
    max_output: int,
) -> list[PlannedRequest]:
    """The trace's requests with token counts scaled and capped to the served model's window.

    Arrival times are kept as given (the trace loader already compressed them); each request
    keeps at least one prompt and one output token.
    """
    if token_scale <= 0:
        raise ValueError(f"token_scale must be > 0, got {token_scale}")
    if min(max_prompt, max_output) < 1:
        raise ValueError("max_prompt and max_output must be >= 1")
    return [
        PlannedRequest(
            at_s=float(at),
            prompt_tokens=min(max_prompt, max(1, round(p * token_scale))),
            output_tokens=min(max_output, max(1, round(o * token_scale))),
        )
        for at, p, o in zip(arrival_s, prompt_tokens, output_tokens, strict=True)
    ]


def memory_growth(samples: Sequence[tuple[float, int]], window_s: float) -> dict[str, float]:
    """Growth of resident memory from the first `window_s` of samples to the last `window_s`.

    Medians of each window, so one sample caught mid-burst does not decide; `growth` is
    (last - first) / first. Samples are (seconds since start, kB).
    """
    if not samples:
        raise ValueError("no memory samples")
    start, end = samples[0][0], samples[-1][0]
    first = [kb for t, kb in samples if t <= start + window_s]
    last = [kb for t, kb in samples if t >= end - window_s]
    first_kb, last_kb = statistics.median(first), statistics.median(last)
    return {
        "first_mb": first_kb / 1024,
        "last_mb": last_kb / 1024,
        "peak_mb": max(kb for _, kb in samples) / 1024,
        "growth": (last_kb - first_kb) / first_kb if first_kb else 0.0,
    }


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def unintended_errors(statuses: dict[str, int]) -> int:
    """Answers that count against the run: any 5xx, any transport error; 429 is the intended
    back-pressure of the local queue bound and 200 is success."""
    return sum(n for status, n in statuses.items() if status not in ("200", "429"))
