"""Fleet simulation: requests arrive from a trace, a router places them on ready replicas, each
replica runs the fluid step model of service.py, and a scaler sets the replica count.

Time advances in fixed steps of `dt` (0.25 s by default). Within a step each replica runs
`dt / step_time` forward steps; prefill is served first come first served from the step's token
budget, so the moment a prompt starts and finishes prefilling is interpolated inside the step.
The router is Serve's, simplified: a request goes to the ready replica with the fewest requests
that still has a batch slot and KV cache for it; otherwise it waits at the handle, in order.
A replica that is removed finishes what it runs (Serve's graceful shutdown) and takes nothing new.
Replica-seconds count every replica from the scale-up decision (it holds its GPUs while it
starts) to its end.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .service import Calibration
from .trace import FloatArray, Trace

SERIES = ("handle_queued", "engine_waiting", "running", "ready", "replicas")


class History:
    """Per-step observations, as the metric pipelines of the scalers would see them."""

    def __init__(self, steps: int, dt: float) -> None:
        self.dt = dt
        self.t = np.arange(steps, dtype=np.float64) * dt
        self.values = {name: np.zeros(steps, dtype=np.float64) for name in SERIES}
        self.size = 0

    def record(self, **values: float) -> None:
        for name, value in values.items():
            self.values[name][self.size] = value
        self.size += 1

    def mean(self, name: str, end: float, window: float) -> float:
        """Mean of a series over (end - window, end], as a metric pushed with a look-back."""
        hi = min(self.size, math.floor(end / self.dt + 1e-9) + 1)
        lo = max(0, hi - max(1, round(window / self.dt)))
        if hi <= lo:
            return 0.0
        return float(self.values[name][lo:hi].mean())

    def at(self, name: str, time: float) -> float:
        """The value last recorded at or before `time` (a scraped gauge)."""
        i = min(self.size - 1, math.floor(time / self.dt + 1e-9))
        return float(self.values[name][i]) if i >= 0 else 0.0


class Scaler(Protocol):
    name: str
    interval_s: float

    def decide(self, history: History, current: int, ready: int, now: float) -> int: ...


@dataclass
class _Replica:
    ready_at: float
    draining: bool = False
    active: list[int] = field(default_factory=list)
    kv_used: float = 0.0


@dataclass(frozen=True)
class SimResult:
    scaler: str
    arrival_s: FloatArray
    queue_wait_s: FloatArray
    """Arrival to prefill start; NaN for requests never started."""
    ttft_s: FloatArray
    """Arrival to first token; NaN for requests never answered."""
    replica_seconds: float
    decisions: list[tuple[float, int]]
    """(time, new target) for every change of the target."""
    history: History


def simulate(
    trace: Trace,
    calibration: Calibration,
    scaler: Scaler,
    *,
    min_replicas: int,
    dt: float = 0.25,
    drain_s: float = 600.0,
) -> SimResult:
    """Replay `trace` under `scaler`, starting with `min_replicas` warm replicas (at least 1)."""
    cal = calibration
    t0, per_seq, per_tok = cal.step_overhead_s, cal.per_seq_s, cal.per_prompt_token_s
    budget = float(cal.max_num_batched_tokens)
    n_req = len(trace)
    arrival, prompt, output = trace.arrival_s, trace.prompt_tokens, trace.output_tokens
    need_kv = prompt + output
    prefill_left = prompt.copy()
    decode_left = output.copy()
    started = np.full(n_req, np.nan)
    first_token = np.full(n_req, np.nan)
    done = np.zeros(n_req, dtype=bool)

    steps = math.ceil((trace.duration_s + drain_s) / dt) + 1
    history = History(steps, dt)
    replicas = [_Replica(ready_at=0.0) for _ in range(max(1, min_replicas))]
    waiting: deque[int] = deque()
    next_arrival = 0
    replica_seconds = 0.0
    next_decision = 0.0
    decisions: list[tuple[float, int]] = []
    finished = 0

    for k in range(steps):
        t = k * dt
        # Requests arriving during this step may be placed at its start: the step is the
        # resolution of the simulation, not a delay anyone would see.
        while next_arrival < n_req and arrival[next_arrival] < t + dt:
            waiting.append(next_arrival)
            next_arrival += 1
        ready = [r for r in replicas if not r.draining and r.ready_at <= t]
        while waiting and ready:
            rid = waiting[0]
            fits = [
                r
                for r in ready
                if len(r.active) < cal.max_num_seqs
                and r.kv_used + need_kv[rid] <= cal.kv_cache_tokens
            ]
            if not fits:
                break
            best = min(fits, key=lambda r: len(r.active))
            waiting.popleft()
            best.active.append(rid)
            best.kv_used += need_kv[rid]

        engine_waiting = 0
        running = 0
        for r in replicas:
            if not r.active:
                continue
            ids = np.asarray(r.active, dtype=np.int64)
            pl = prefill_left[ids]
            dl = decode_left[ids]
            decoding = pl <= 0
            b = int(decoding.sum())
            pending = float(pl.sum())
            chunk = min(budget - b, pending)
            step_time = t0 + per_seq * b + per_tok * chunk
            n_steps = dt / step_time
            if pending > 0:
                progress = min(pending, n_steps * chunk)
                cum = np.cumsum(pl)
                begin = cum - pl
                new_pl = np.clip(cum - progress, 0.0, pl)
                starting = (pl > 0) & np.isnan(started[ids]) & (begin < progress)
                started[ids[starting]] = np.maximum(
                    t + dt * begin[starting] / progress, arrival[ids[starting]]
                )
                first = (pl > 0) & (new_pl <= 0)
                first_token[ids[first]] = np.maximum(
                    t + dt * cum[first] / progress,
                    arrival[ids[first]] + prompt[ids[first]] * per_tok,
                )
                dl = np.where(first, dl - 1.0, dl)
                prefill_left[ids] = new_pl
            dl = np.where(decoding, dl - n_steps, dl)
            decode_left[ids] = dl
            over = (prefill_left[ids] <= 0) & (dl <= 0)
            if over.any():
                gone = ids[over]
                done[gone] = True
                finished += len(gone)
                r.kv_used -= float(need_kv[gone].sum())
                r.active = [int(i) for i in ids[~over]]
            left = prefill_left[r.active] if r.active else np.empty(0)
            not_started = int(np.count_nonzero(left >= prompt[r.active])) if r.active else 0
            engine_waiting += not_started
            running += len(r.active) - not_started

        replicas = [r for r in replicas if not (r.draining and not r.active)]
        live = [r for r in replicas if not r.draining]
        n_ready = sum(1 for r in live if r.ready_at <= t + dt)
        replica_seconds += len(replicas) * dt
        history.record(
            handle_queued=len(waiting),
            engine_waiting=engine_waiting,
            running=running,
            ready=n_ready,
            replicas=len(live),
        )

        now = t + dt
        if now + 1e-9 >= next_decision:
            next_decision += scaler.interval_s
            target = scaler.decide(history, len(live), n_ready, now)
            if target != len(live):
                decisions.append((now, target))
                replicas = _resize(replicas, live, target, now, cal.cold_start_s)
        if next_arrival >= n_req and finished == n_req and t >= trace.duration_s:
            break

    queue_wait = started - arrival
    ttft = first_token - arrival
    return SimResult(
        scaler=scaler.name,
        arrival_s=arrival,
        queue_wait_s=queue_wait,
        ttft_s=ttft,
        replica_seconds=replica_seconds,
        decisions=decisions,
        history=history,
    )


def _resize(
    replicas: list[_Replica], live: list[_Replica], target: int, now: float, cold_start_s: float
) -> list[_Replica]:
    if target > len(live):
        added = [_Replica(ready_at=now + cold_start_s) for _ in range(target - len(live))]
        return replicas + added
    # Starting replicas go first (newest first), then the least loaded ready ones; a replica
    # with nothing to finish leaves at the next step.
    order = sorted(
        live,
        key=lambda r: (r.ready_at <= now, -r.ready_at if r.ready_at > now else 0, len(r.active)),
    )
    for r in order[: len(live) - target]:
        r.draining = True
    return replicas
