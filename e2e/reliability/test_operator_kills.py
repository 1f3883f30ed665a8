"""SIGKILL the operator at random points while it reconciles 20 ModelDeployments, 20 times over.

Each round changes something (creates, replica counts, deleted children, a ModelDeployment
replaced by another), waits a random delay, kills the operator with SIGKILL (no cleanup, as an
OOM kill or a node loss leaves it), starts it again and waits for convergence: every
ModelDeployment's status written for its current generation with all workers ready, exactly its
children (head pod, one worker pod per replica, two Services: counted by label and controlling
owner), no duplicate, nothing left that no live ModelDeployment owns. At the end everything is
deleted and nothing may be left.

No Ray head runs here (kwok pods run nothing), so a settled ModelDeployment reports
Degraded=DashboardUnreachable: the last step a reconcile reaches without a Serve application.

The kill delays come from a seeded RNG; the seed is printed and recorded, and
MODELDEPLOY_FAULT_SEED=<seed> replays a run. Each round's figures go to operator-kills.json in
the test's tmp folder.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from lifecycle.conftest import ModelDeployments
from lifecycle.harness import OperatorProcess

from .cluster_objects import labelled_objects, modeldeployments
from .inventory import Inventory, take_inventory

SEED_ENV = "MODELDEPLOY_FAULT_SEED"
DEPLOYMENTS = 20
ROUNDS = 20
MAX_KILL_DELAY_S = 2.5
SCALED_PER_ROUND = 4
CHILDREN_DELETED_PER_ROUND = 2
REPLACE_EVERY = 5
CONVERGE_TIMEOUT_S = 240
SETTLED_REASON = "DashboardUnreachable"


def spec(gpu_product: str, replicas: int) -> dict[str, Any]:
    return {
        "model": {"source": "hf://Qwen/Qwen2.5-0.5B-Instruct"},
        "resources": {"gpuProduct": gpu_product, "cpu": "1", "memory": "4Gi"},
        "ray": {"headResources": {"cpu": "100m", "memory": "256Mi"}},
        "scaling": {"mode": "external", "replicas": replicas, "minReplicas": 0, "maxReplicas": 3},
    }


class Fleet:
    """The ModelDeployments of the test and the worker count each should have (one per replica:
    one GPU per replica, one GPU per worker)."""

    def __init__(self, mds: ModelDeployments, gpu_product: str, rng: random.Random) -> None:
        self.mds = mds
        self.gpu_product = gpu_product
        self.rng = rng
        self.expected: dict[str, int] = {}
        self._serial = 0

    def create(self) -> str:
        name = f"md-{self._serial}"
        self._serial += 1
        replicas = self.rng.randint(1, 3)
        self.mds.create(name, spec(self.gpu_product, replicas))
        self.expected[name] = replicas
        return f"create {name} replicas={replicas}"

    def scale(self, name: str) -> str:
        replicas = self.rng.randint(1, 3)
        self.mds.patch_spec(name, {"scaling": {"replicas": replicas}})
        self.expected[name] = replicas
        return f"scale {name} replicas={replicas}"

    def delete_child(self, name: str) -> str:
        pods = sorted(p.metadata.name for p in self.mds.pods(name))
        services = sorted(s.metadata.name for s in self.mds.services(name))
        children = [("Pod", p) for p in pods] + [("Service", s) for s in services]
        kind, child = self.rng.choice(children)
        try:
            if kind == "Pod":
                self.mds.core.delete_namespaced_pod(
                    child, self.mds.namespace, grace_period_seconds=0
                )
            else:
                self.mds.core.delete_namespaced_service(child, self.mds.namespace)
        except client.ApiException as error:
            # The operator removed it between the list and the delete (a scale-down it was
            # carrying out): gone either way.
            if error.status != 404:
                raise
            return f"delete {kind}/{child} (already gone)"
        return f"delete {kind}/{child}"

    def replace(self, name: str) -> list[str]:
        self.mds.delete(name)
        del self.expected[name]
        return [f"delete {name}", self.create()]

    def change(self, round_: int) -> list[str]:
        """One round's changes, all drawn from the seeded RNG."""
        names = sorted(self.expected)
        actions = [self.scale(n) for n in self.rng.sample(names, SCALED_PER_ROUND)]
        drifted = self.rng.sample(names, CHILDREN_DELETED_PER_ROUND)
        actions += [self.delete_child(n) for n in drifted]
        if round_ % REPLACE_EVERY == 0:
            actions += self.replace(self.rng.choice(names))
        return actions


def wait_converged(
    admin: client.ApiClient, namespace: str, expected: dict[str, int], context: str
) -> tuple[Inventory, int]:
    """The converged inventory, and the most duplicate children seen on the way."""
    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    most_duplicates = 0
    while True:
        inventory = take_inventory(
            modeldeployments(admin, namespace),
            labelled_objects(admin, namespace),
            expected,
            SETTLED_REASON,
        )
        most_duplicates = max(most_duplicates, inventory.duplicates)
        if inventory.converged() and set(inventory.children) == set(expected):
            return inventory, most_duplicates
        if time.monotonic() > deadline:
            pytest.fail(
                f"no convergence after {CONVERGE_TIMEOUT_S} s ({context}): {inventory.problems()}"
            )
        time.sleep(0.5)


def uids(admin: client.ApiClient, namespace: str) -> set[str]:
    return {o["metadata"]["uid"] for o in labelled_objects(admin, namespace)}


def test_operator_killed_at_random_points_converges(
    operator_at: Callable[..., OperatorProcess],
    mds: ModelDeployments,
    gpu_pool: str,
    admin: client.ApiClient,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    replay = f"seed {seed}; replay with {SEED_ENV}={seed}"
    print(f"operator kills: {replay}")
    fleet = Fleet(mds, gpu_pool, rng)
    operator = operator_at()
    report: dict[str, Any] = {"seed": seed, "deployments": DEPLOYMENTS, "rounds": []}
    for round_ in range(ROUNDS):
        if round_ == 0:
            actions = [fleet.create() for _ in range(DEPLOYMENTS)]
        else:
            actions = fleet.change(round_)
        delay = rng.uniform(0.0, MAX_KILL_DELAY_S)
        time.sleep(delay)
        operator.kill()
        killed = time.monotonic()
        operator.start()
        restart_s = time.monotonic() - killed
        context = f"round {round_}, kill after {delay:.2f} s, {replay}"
        inventory, most_duplicates = wait_converged(admin, mds.namespace, fleet.expected, context)
        record = {
            "round": round_,
            "kill_delay_s": round(delay, 3),
            "actions": actions,
            "restart_s": round(restart_s, 2),
            "converge_s": round(time.monotonic() - killed, 2),
            "transient_duplicates": most_duplicates,
            **inventory.summary(),
        }
        report["rounds"].append(record)
        print(json.dumps(record))
        # Converged means exactly the children the specs ask for, whatever the kill interrupted.
        assert inventory.summary()["pods"] == DEPLOYMENTS + sum(fleet.expected.values()), context
        assert inventory.summary()["services"] == 2 * DEPLOYMENTS, context
        # Never two children for one place, not even for a moment on the way.
        assert most_duplicates == 0, f"{most_duplicates} duplicate children on the way ({context})"

    # Converged is also stable: nothing is created or deleted afterwards.
    before = uids(admin, mds.namespace)
    time.sleep(5)
    assert uids(admin, mds.namespace) == before, f"children changed after convergence ({replay})"
    assert operator.proc is not None and operator.proc.poll() is None

    started = time.monotonic()
    for name in list(fleet.expected):
        mds.delete(name)

    def left() -> int:
        return len(modeldeployments(admin, mds.namespace)) + len(
            labelled_objects(admin, mds.namespace)
        )

    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    while (remaining := left()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert remaining == 0, f"{remaining} objects left after deleting every ModelDeployment"
    report["cleanup_s"] = round(time.monotonic() - started, 2)
    report["left_after_delete"] = remaining

    converge = [r["converge_s"] for r in report["rounds"]]
    report["converge_s"] = {
        "p50": statistics.median(converge),
        "max": max(converge),
        "mean": round(statistics.fmean(converge), 2),
    }
    out = tmp_path / "operator-kills.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    last = report["rounds"][-1]
    summary = (
        f"operator kills: {ROUNDS} SIGKILLs over {DEPLOYMENTS} ModelDeployments (seed {seed}): "
        f"converged every round in p50 {report['converge_s']['p50']} s, max "
        f"{report['converge_s']['max']} s; {last['pods']} pods + {last['services']} Services, "
        f"0 duplicates, 0 leaked; {remaining} left {report['cleanup_s']} s after deletion "
        f"({out})"
    )
    with capsys.disabled():
        print("\n" + summary)
