"""One level-based reconcile of a ModelDeployment: observe, compare, act, report.

Create, update, resume and the periodic timer all call `Reconciler.reconcile`, so whatever
happened in between (a deleted Service, a lost worker, a restarted head, an operator crash
half-way) is repaired by the next run. Every decision is made by a pure function (builders,
worker planner, status); this module only reads, writes and reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from modeldeploy_serving.config import ServingConfig
from modeldeploy_serving.model_files import last_progress

from ..api import ModelDeployment
from ..builders.gateway import secret_problems, secret_refs
from ..builders.networkpolicies import OperatorPeers, build_network_policies, plan_policies
from ..builders.owner import Owner
from ..builders.pods import build_head_pod, build_worker_pod
from ..builders.ray_serve_config import build_serve_config
from ..builders.services import build_endpoint_service, build_head_service
from ..builders.serving_config import build_serving_config
from ..common import names
from ..common.hashing import hash_of
from ..common.validation import validate_object
from ..decide.conditions import Observation, build_status, condition_changes
from ..decide.model_checks import (
    Check,
    Pinned,
    digest_manifest,
    fit_from_config,
    local_model_config,
)
from ..decide.podstate import is_ready, unschedulable_message, worker_from_pod
from ..decide.rollout import config_to_submit
from ..decide.serve_status import ServeObservation, queue_depth_from_metrics
from ..decide.workers import plan_workers, replicas_held, target_replicas, workers_for
from . import metrics
from .dashboard import DashboardUnavailable, ServeDashboard
from .events import EventSink
from .gateway_sync import GatewaySync
from .kube import NETWORKPOLICY, Kube

# Lines of a starting replica's log read for its last reported step (download, verification):
# enough to reach back past the engine's own start-up lines, which follow ours.
PROGRESS_LOG_LINES = 500


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reference_problems(md: ModelDeployment, secret_keys: set[str] | None) -> list[str]:
    """Problems only the operator can see: references to objects that are not there."""
    ref = md.spec.model.token_secret_ref
    if ref is None:
        return []
    if secret_keys is None:
        return [f"spec.model.tokenSecretRef: Secret {ref.name!r} does not exist"]
    if ref.key not in secret_keys:
        return [f"spec.model.tokenSecretRef: Secret {ref.name!r} has no key {ref.key!r}"]
    return []


def replica_progress(dashboard: ServeDashboard, serve: ServeObservation) -> str | None:
    """What the first starting replica last reported in its log (download, verification).
    Asked only while a replica starts, so a settled deployment costs no extra request."""
    for replica in serve.starting_replicas[:1]:
        for query in replica.log_queries(PROGRESS_LOG_LINES):
            try:
                found = last_progress(dashboard.get_log(query))
            except DashboardUnavailable:
                continue  # not this file (e.g. not written yet); the next query may have it
            if found:
                return found
    return None


@dataclass
class Reconciler:
    kube: Kube
    dashboard_for: Callable[[str, str], ServeDashboard]
    serve_http_port: int = names.SERVE_PORT
    now: Callable[[], str] = field(default=utc_now)
    gateway: GatewaySync | None = None
    """The namespaces' gateways (keys, overflow, localOnly); None leaves them out."""
    network_policies: OperatorPeers | None = None
    """Where the operator's pods are, for the NetworkPolicies; None: no policies."""
    _policies_checked: set[str] = field(default_factory=set)
    """uids whose leftover policies were looked for while policies are off (once per start)."""

    def reconcile(self, body: dict[str, Any], events: EventSink) -> dict[str, Any]:
        """Bring the children of `body` to its spec; return the status to write."""
        metadata = body["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        started = time.monotonic()
        result = "error"
        try:
            status = self._reconcile(body, events)
            result = "invalid" if status["phase"] == "Failed" else "ok"
            return status
        finally:
            metrics.RECONCILES.labels(namespace, name, result).inc()
            metrics.RECONCILE_SECONDS.labels(namespace, name).observe(time.monotonic() - started)

    def forget(self, namespace: str, name: str, uid: str) -> None:
        """Drop what is kept about a deleted ModelDeployment (a long-running operator sees many)."""
        self._policies_checked.discard(uid)
        if self.gateway is not None:
            self.gateway.forget(namespace, name)

    def _reconcile(self, body: dict[str, Any], events: EventSink) -> dict[str, Any]:
        obs = self._sync_children(body, events)
        if self.gateway is not None:
            # After the model's own children: a gateway problem never holds them back.
            self.gateway.sync(body["metadata"]["namespace"], events)
        return self._report(obs, dict(body.get("status") or {}), events)

    def _sync_children(self, body: dict[str, Any], events: EventSink) -> Observation:
        """Bring the children of `body` to its spec; return what was observed."""
        metadata = body["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        generation = int(metadata.get("generation") or 0)
        selector = names.selector_string(name, names.WORKER)
        document = {k: v for k, v in body.items() if k != "status"}
        problems = [str(p) for p in validate_object(document)]
        md = ModelDeployment.model_validate(document) if not problems else None
        manifest: dict[str, str] = {}
        if md is not None:
            ref = md.spec.model.token_secret_ref
            keys = self.kube.get_secret_keys(namespace, ref.name) if ref else None
            problems = reference_problems(md, keys)
            manifest, manifest_problems = self._digest_manifest(md, namespace)
            problems += manifest_problems
            problems += self._gateway_secret_problems(namespace, md)
        if md is None or problems:
            if self.gateway is not None:
                self.gateway.exclude(namespace, name)
            return Observation(
                generation=generation,
                selector=selector,
                endpoint="",
                invalid_spec="; ".join(problems) or "invalid spec",
            )
        # Built once per reconcile, with the digest manifest: for Serve and for the gateway.
        serving = build_serving_config(md, manifest)
        if self.gateway is not None:
            self.gateway.observe(namespace, md, serving)

        endpoint = names.endpoint_url(name, namespace, md.spec.endpoint.port)
        fit = self._fit_check(md, namespace)
        pinned = Pinned(md.spec.model.revision, manifest) if md.spec.model.revision else None
        if fit.status == "False" and md.spec.preflight.enforce:
            # Before any child exists: a replica that cannot fit fails only after its GPUs were
            # scheduled and its weights downloaded. Nothing is created, nothing is removed.
            return Observation(
                generation=generation,
                selector=selector,
                endpoint=endpoint,
                fit=fit,
                fit_blocks=True,
                pinned=pinned,
            )

        owner = Owner(name=name, namespace=namespace, uid=metadata["uid"], spec=md.spec)
        # One list per kind finds every child: cheaper for the apiserver than a GET per child.
        owned = names.owned_selector(name)
        # Before the head exists: its ports are closed to others from its first start.
        self._sync_policies(owner, events)
        services = {s["metadata"]["name"]: s for s in self.kube.list_services(namespace, owned)}
        for service in (build_head_service(owner), build_endpoint_service(owner)):
            self._ensure_service(owner, service, services.get(service["metadata"]["name"]), events)
        live_pods = self.kube.list_pods(namespace, owned)
        head_name = names.head_pod(name)
        head_live = next((p for p in live_pods if p["metadata"]["name"] == head_name), None)
        head = self._ensure_head(owner, head_live, events)
        head_ready = head is not None and is_ready(head)

        serve, dashboard_error = ServeObservation(), None
        if head_ready:
            serve, dashboard_error = self._sync_serve(owner, serving, events)

        live_workers = [p for p in live_pods if names.is_worker(p)]
        held = replicas_held(md.spec, len(live_workers))
        target = target_replicas(md.spec, serve.target_replicas, held)
        desired = workers_for(md.spec, target)
        workers = self._sync_workers(owner, live_workers, desired, serve.busy_node_ips, events)
        pods = ([head] if head else []) + workers
        unschedulable = next(filter(None, map(unschedulable_message, pods)), None)
        metrics.MANAGED_OBJECTS.labels(namespace, name, "Pod").set(len(pods))
        metrics.MANAGED_OBJECTS.labels(namespace, name, "Service").set(2)

        return Observation(
            generation=generation,
            selector=selector,
            endpoint=endpoint,
            head_ready=head_ready,
            unschedulable=unschedulable,
            workers=[worker_from_pod(p) for p in workers],
            desired_workers=desired,
            target_replicas=target,
            dashboard_error=dashboard_error,
            serve=serve,
            fit=fit,
            pinned=pinned,
            traffic=self.gateway.traffic(namespace, md.spec.model.effective_served_model_name())
            if self.gateway is not None
            else None,
        )

    def _gateway_secret_problems(self, namespace: str, md: ModelDeployment) -> list[str]:
        """Missing Secrets the gateway would mount (their keys only; values are never read)."""
        refs = secret_refs(md)
        names_ = sorted({name for _, name, _ in refs})
        return secret_problems(refs, {n: self.kube.get_secret_keys(namespace, n) for n in names_})

    def _report(
        self, obs: Observation, previous: dict[str, Any], events: EventSink
    ) -> dict[str, Any]:
        status = build_status(obs, previous, self.now())
        for condition in condition_changes(previous.get("conditions") or [], status["conditions"]):
            if condition["type"] == "Progressing":
                continue  # it mirrors the other two; one event per cause is enough
            if condition["status"] == "Unknown":
                continue  # a check not made (yet): no config.json, replicas still verifying
            healthy = (condition["type"] == "Degraded") != (condition["status"] == "True")
            emit = events.normal if healthy else events.warning
            text = f"{condition['type']}={condition['status']}"
            emit(
                condition["reason"],
                f"{text}: {condition['message']}" if condition["message"] else text,
            )
        progress = (status.get("model") or {}).get("progress")
        if progress and progress != (previous.get("model") or {}).get("progress"):
            events.normal("ModelProgress", progress)
        return status

    def _digest_manifest(
        self, md: ModelDeployment, namespace: str
    ) -> tuple[dict[str, str], list[str]]:
        """The digests replicas must verify, read from their ConfigMap when the spec names one."""
        digests = md.spec.model.digests
        ref = digests.config_map_ref if digests is not None else None
        data = self.kube.get_configmap_data(namespace, ref.name) if ref is not None else None
        return digest_manifest(md, data)

    def _fit_check(self, md: ModelDeployment, namespace: str) -> Check:
        """FitCheck from the model's config.json: the ConfigMap the spec names, else config.json
        in a file:// source's folder when it is readable here."""
        ref = md.spec.preflight.config_map_ref
        if ref is not None:
            data = self.kube.get_configmap_data(namespace, ref.name)
            if data is None:
                return fit_from_config(md, None, f"ConfigMap {ref.name!r} does not exist")
            where = f"spec.preflight.configMapRef: ConfigMap {ref.name!r} key {ref.key!r}"
            if ref.key not in data:
                return fit_from_config(md, None, f"ConfigMap {ref.name!r} has no key {ref.key!r}")
            return fit_from_config(md, data[ref.key], where)
        path = local_model_config(md.spec)
        try:
            text = path.read_text(encoding="utf-8") if path is not None else None
        except OSError:
            text = None
        where = f"{path} is not readable here" if path is not None else md.spec.model.source
        return fit_from_config(md, text, str(path) if text is not None else where)

    def _count(self, owner: Owner, kind: str, action: str) -> None:
        metrics.CHILD_CHANGES.labels(owner.namespace, owner.name, kind, action).inc()

    def _ensure_service(
        self,
        owner: Owner,
        desired: dict[str, Any],
        live: dict[str, Any] | None,
        events: EventSink,
    ) -> None:
        service_name = desired["metadata"]["name"]
        if live is None:
            if self.kube.create_service(desired):
                self._count(owner, "Service", "create")
                events.normal("Created", f"created Service {service_name}")
        elif hash_of(live) != hash_of(desired):
            self.kube.replace_service(desired, live)
            self._count(owner, "Service", "replace")
            events.normal("Updated", f"updated Service {service_name}")

    def _sync_policies(self, owner: Owner, events: EventSink) -> None:
        """NetworkPolicies to the spec. With the feature off, the policies a run with it on
        left behind are looked for once per ModelDeployment per start, not on every resync."""
        if self.network_policies is None and owner.uid in self._policies_checked:
            return
        desired = build_network_policies(owner, self.network_policies)
        live = self.kube.list_objects(
            NETWORKPOLICY, owner.namespace, names.owned_selector(owner.name)
        )
        plan = plan_policies(desired, live)
        for policy in plan.create:
            if self.kube.create_object(NETWORKPOLICY, policy):
                self._count(owner, "NetworkPolicy", "create")
                events.normal("Created", f"created NetworkPolicy {policy['metadata']['name']}")
        for policy, stale in plan.replace:
            self.kube.replace_object(NETWORKPOLICY, policy, stale)
            self._count(owner, "NetworkPolicy", "replace")
            events.normal("Updated", f"updated NetworkPolicy {policy['metadata']['name']}")
        for policy_name in plan.delete:
            self.kube.delete_object(NETWORKPOLICY, owner.namespace, policy_name)
            self._count(owner, "NetworkPolicy", "delete")
            events.normal("Deleted", f"deleted NetworkPolicy {policy_name}")
        if self.network_policies is None:
            self._policies_checked.add(owner.uid)
        else:
            kind = "NetworkPolicy"
            metrics.MANAGED_OBJECTS.labels(owner.namespace, owner.name, kind).set(len(desired))

    def _ensure_head(
        self, owner: Owner, live: dict[str, Any] | None, events: EventSink
    ) -> dict[str, Any] | None:
        desired = build_head_pod(owner)
        pod_name = desired["metadata"]["name"]
        if live is None:
            created = self.kube.create_pod(desired)
            if created:
                self._count(owner, "Pod", "create")
                events.normal("Created", f"created Ray head pod {pod_name}")
            return created
        if hash_of(live) != hash_of(desired) and not live["metadata"].get("deletionTimestamp"):
            # Pods are immutable: replace by delete, the next reconcile creates the new one.
            self.kube.delete_pod(owner.namespace, pod_name)
            self._count(owner, "Pod", "replace")
            events.normal("Replacing", f"replacing Ray head pod {pod_name}: its spec changed")
        return live

    def _sync_serve(
        self, owner: Owner, serving: ServingConfig, events: EventSink
    ) -> tuple[ServeObservation, str | None]:
        dashboard = self.dashboard_for(owner.name, owner.namespace)
        config = build_serve_config(owner.name, serving, self.serve_http_port)
        try:
            instance = dashboard.get_applications()
            submit = config_to_submit(config, instance, owner.name, time.time())
            if submit is not None:
                dashboard.put_applications(submit)
                metrics.SERVE_SUBMISSIONS.labels(owner.namespace, owner.name, "ok").inc()
                events.normal("ServeConfigSubmitted", "submitted the Serve application config")
                instance = dashboard.get_applications()
        except DashboardUnavailable as exc:
            metrics.SERVE_SUBMISSIONS.labels(owner.namespace, owner.name, "error").inc()
            return ServeObservation(), str(exc)
        observed = ServeObservation.from_instance(instance, owner.name)
        try:
            depth = queue_depth_from_metrics(dashboard.get_metrics(), owner.name)
        except DashboardUnavailable:
            depth = None  # the status keeps its last figure; Serve itself is reachable
        progress = replica_progress(dashboard, observed)
        return replace(observed, queue_depth=depth, replica_progress=progress), None

    def _sync_workers(
        self,
        owner: Owner,
        live: list[dict[str, Any]],
        desired: int,
        busy_ips: frozenset[str],
        events: EventSink,
    ) -> list[dict[str, Any]]:
        """Create and delete workers by the plan; the workers that remain, without a relist."""
        template_hash = hash_of(build_worker_pod(owner, 0)) or ""
        plan = plan_workers(desired, [worker_from_pod(p) for p in live], template_hash, busy_ips)
        for pod_name in plan.delete:
            self.kube.delete_pod(owner.namespace, pod_name)
            self._count(owner, "Pod", "delete")
            events.normal("Deleted", f"deleted worker pod {pod_name}")
        created = []
        for index in plan.create:
            pod = build_worker_pod(owner, index)
            stored = self.kube.create_pod(pod)
            if stored:
                created.append(stored)
                self._count(owner, "Pod", "create")
                events.normal("Created", f"created worker pod {pod['metadata']['name']}")
        deleted = set(plan.delete)
        remaining = [p for p in live if p["metadata"]["name"] not in deleted]
        return [p for p in remaining if not p["metadata"].get("deletionTimestamp")] + created
