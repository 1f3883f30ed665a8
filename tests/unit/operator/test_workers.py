"""Worker counts and the create/delete planner."""

from __future__ import annotations

import pytest

from modeldeploy_operator.decide.workers import (
    WorkerPod,
    plan_workers,
    replicas_held,
    target_replicas,
    workers_for,
)
from tests.operator_factories import make_md

H = "current"


def pod(
    index: int,
    *,
    ready: bool = True,
    scheduled: bool = True,
    spec_hash: str = H,
    ip: str | None = None,
    terminating: bool = False,
) -> WorkerPod:
    return WorkerPod(
        name=f"w-{index}",
        index=index,
        spec_hash=spec_hash,
        ready=ready,
        scheduled=scheduled,
        pod_ip=ip,
        terminating=terminating,
    )


@pytest.mark.parametrize(
    ("spec", "replicas", "workers"),
    [
        ({}, 3, 3),
        ({"engine": {"tensorParallelSize": 2}, "resources": {"gpusPerWorker": 8}}, 4, 1),
        ({"engine": {"tensorParallelSize": 2}, "resources": {"gpusPerWorker": 8}}, 5, 2),
        ({"engine": {"tensorParallelSize": 8}, "resources": {"gpusPerWorker": 4}}, 2, 4),
        ({"resources": {"accelerator": "cpu"}}, 2, 2),
        ({}, 0, 0),
    ],
)
def test_workers_for(spec: dict[str, object], replicas: int, workers: int) -> None:
    assert workers_for(make_md(spec).spec, replicas) == workers


def test_target_replicas_follows_mode() -> None:
    external = make_md({"scaling": {"mode": "external", "replicas": 3, "maxReplicas": 5}}).spec
    assert target_replicas(external, serve_target=1) == 3
    assert target_replicas(external, serve_target=None) == 3
    queue = make_md({"scaling": {"minReplicas": 1, "maxReplicas": 4}}).spec
    assert target_replicas(queue, serve_target=None) == 1
    assert target_replicas(queue, serve_target=3) == 3
    assert target_replicas(queue, serve_target=0) == 1
    # Above the bound only by a rollout's surge replica (Serve's target while a new engine
    # version starts next to the old one), never further.
    assert target_replicas(external, serve_target=4) == 4
    assert target_replicas(queue, serve_target=5) == 5
    assert target_replicas(queue, serve_target=9) == 5


def test_an_unknown_serve_target_holds_the_live_replicas() -> None:
    """The head too busy to answer (under load) must not scale the workers down to the floor,
    nor up past the bound."""
    queue = make_md({"scaling": {"minReplicas": 1, "maxReplicas": 4}}).spec
    assert target_replicas(queue, serve_target=None, held=3) == 3
    assert target_replicas(queue, serve_target=None, held=0) == 1
    assert target_replicas(queue, serve_target=None, held=9) == 4  # no surge without a rollout
    assert target_replicas(queue, serve_target=1, held=3) == 1  # a known target wins


def test_an_unknown_serve_target_still_applies_an_external_count() -> None:
    """`kubectl scale` from 3 to 1 while the head is unreachable: the count wins over the
    live workers."""
    external = make_md({"scaling": {"mode": "external", "replicas": 1, "maxReplicas": 5}}).spec
    assert target_replicas(external, serve_target=None, held=3) == 1
    assert target_replicas(external, serve_target=None, held=0) == 1


@pytest.mark.parametrize(
    ("spec", "workers", "replicas"),
    [
        ({"resources": {"accelerator": "cpu"}}, 2, 2),
        ({"engine": {"tensorParallelSize": 2}, "resources": {"gpusPerWorker": 1}}, 4, 2),
        ({"engine": {"tensorParallelSize": 2}, "resources": {"gpusPerWorker": 1}}, 3, 1),
    ],
)
def test_replicas_held_inverts_workers_for(
    spec: dict[str, object], workers: int, replicas: int
) -> None:
    md = make_md(spec).spec
    assert replicas_held(md, workers) == replicas
    assert replicas_held(md, workers_for(md, replicas)) == replicas


def test_creates_lowest_free_indices() -> None:
    plan = plan_workers(3, [pod(1)], H)
    assert plan.create == (0, 2) and plan.delete == ()


def test_nothing_to_do_when_settled() -> None:
    plan = plan_workers(2, [pod(0), pod(1)], H)
    assert plan.create == () and plan.delete == ()


def test_scale_down_prefers_unscheduled_then_unready_then_idle() -> None:
    live = [
        pod(0, ip="10.0.0.1"),
        pod(1, ip="10.0.0.2"),
        pod(2, ready=False),
        pod(3, ready=False, scheduled=False),
    ]
    busy = frozenset({"10.0.0.1"})
    assert plan_workers(3, live, H, busy).delete == ("w-3",)
    assert plan_workers(2, live, H, busy).delete == ("w-3", "w-2")
    assert plan_workers(1, live, H, busy).delete == ("w-3", "w-2", "w-1")


def test_scale_down_among_equals_removes_highest_index() -> None:
    assert plan_workers(1, [pod(0), pod(1), pod(2)], H).delete == ("w-2", "w-1")


def test_terminating_pods_neither_count_nor_reuse_their_index() -> None:
    plan = plan_workers(2, [pod(0), pod(1, terminating=True)], H)
    assert plan.create == (2,) and plan.delete == ()


def test_rollout_replaces_unready_stale_at_once_and_ready_stale_one_by_one() -> None:
    live = [pod(0, spec_hash="old"), pod(1, spec_hash="old"), pod(2, spec_hash="old", ready=False)]
    plan = plan_workers(3, live, H)
    assert set(plan.delete) == {"w-2", "w-1"}
    assert plan.create == (3, 4)


def test_rollout_waits_while_a_new_pod_is_starting() -> None:
    live = [pod(0, spec_hash="old"), pod(1, spec_hash="old"), pod(2, ready=False)]
    plan = plan_workers(3, live, H)
    assert plan.delete == () and plan.create == ()
