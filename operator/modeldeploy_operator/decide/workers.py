"""How many GPU worker pods a ModelDeployment needs, and which to create or remove (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..api import ModelDeploymentSpec
from .rollout import SURGE


@dataclass(frozen=True)
class WorkerPod:
    """A live worker pod, as the planner sees it."""

    name: str
    index: int
    spec_hash: str | None
    ready: bool
    scheduled: bool
    pod_ip: str | None = None
    terminating: bool = False


@dataclass(frozen=True)
class WorkerPlan:
    create: tuple[int, ...] = ()
    delete: tuple[str, ...] = ()


def target_replicas(spec: ModelDeploymentSpec, serve_target: int | None, held: int = 0) -> int:
    """Replicas to provide nodes for: Serve's target within the spec's bounds (the count itself
    in external mode), where the top bound leaves room for a rollout's surge replica.

    When Serve's target is unknown (the head not ready, its dashboard unreachable), hold the
    `held` replicas the live workers provide, within the spec's bounds: a head too busy to
    answer is a head under load, and falling back to minReplicas then removed the worker that
    load had just added. In external mode the bounds are the user's count, so a `kubectl scale`
    down still applies while the head is away."""
    scaling = spec.scaling
    if scaling.mode == "external":
        floor = ceiling = scaling.replicas
    else:
        floor, ceiling = scaling.min_replicas, scaling.max_replicas
    if serve_target is None:
        return min(max(held, floor), ceiling)
    return min(max(serve_target, floor), ceiling + SURGE)


def replicas_held(spec: ModelDeploymentSpec, workers: int) -> int:
    """Replicas that `workers` worker pods hold (the inverse of `workers_for`)."""
    if spec.resources.accelerator == "cpu":
        return workers
    return workers * spec.gpus_per_worker() // spec.gpus_per_replica()


def workers_for(spec: ModelDeploymentSpec, replicas: int) -> int:
    """Worker pods that hold `replicas` engines: a replica may span pods or share one."""
    if spec.resources.accelerator == "cpu":
        return replicas
    return math.ceil(replicas * spec.gpus_per_replica() / spec.gpus_per_worker())


def _removal_order(pod: WorkerPod, template_hash: str, busy_ips: frozenset[str]) -> tuple[int, ...]:
    # Cheapest to lose first: outdated, never scheduled, not ready, idle; then the highest index.
    return (
        pod.spec_hash == template_hash,
        pod.scheduled,
        pod.ready,
        pod.pod_ip in busy_ips if pod.pod_ip else False,
        -pod.index,
    )


def plan_workers(
    desired: int,
    live: Sequence[WorkerPod],
    template_hash: str,
    busy_ips: frozenset[str] = frozenset(),
) -> WorkerPlan:
    """Creations and deletions that move `live` toward `desired` pods of the current template.

    Outdated pods (another template hash) are replaced gradually: all that are not ready at once,
    ready ones one at a time and only when no current pod is still starting, so replicas keep
    serving during a rollout.
    """
    active = [p for p in live if not p.terminating]
    occupied = {p.index for p in live}
    stale = [p for p in active if p.spec_hash != template_hash]
    current = [p for p in active if p.spec_hash == template_hash]

    delete = [p for p in stale if not p.ready]
    ready_stale = [p for p in stale if p.ready]
    if ready_stale and all(p.ready for p in current):
        delete.append(max(ready_stale, key=lambda p: p.index))

    remaining = [p for p in active if p not in delete]
    surplus = len(remaining) - desired
    if surplus > 0:
        ordered = sorted(remaining, key=lambda p: _removal_order(p, template_hash, busy_ips))
        delete += ordered[:surplus]

    missing = desired - (len(remaining) - max(surplus, 0))
    free = (i for i in range(len(live) + desired + 1) if i not in occupied)
    create = tuple(next(free) for _ in range(max(missing, 0)))
    return WorkerPlan(create=create, delete=tuple(p.name for p in delete))
