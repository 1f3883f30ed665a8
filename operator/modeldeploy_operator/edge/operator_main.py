"""`modeldeploy operator`: run the kopf operator in-cluster or from a kubeconfig."""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import random
import sys

from ..builders.gateway import DEFAULT_GATEWAY_IMAGE, GATEWAY_URL_TEMPLATE
from ..builders.networkpolicies import OperatorPeers, parse_selector
from ..common.names import DEFAULT_DASHBOARD_URL, DEFAULT_METRICS_URL, dashboard_url
from .dashboard import HttpServeDashboard

PEERING_NAME = "modeldeploy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: in-cluster, then $KUBECONFIG)"
    )
    parser.add_argument(
        "-n",
        "--namespace",
        dest="namespaces",
        action="append",
        default=[],
        help="watch this namespace (repeatable; globs allowed); default: all namespaces",
    )
    parser.add_argument(
        "--dashboard-url-template",
        default=os.environ.get("MODELDEPLOY_DASHBOARD_URL", DEFAULT_DASHBOARD_URL),
        help=(
            "URL of a ModelDeployment's Ray dashboard, with {name} and {namespace} filled in; "
            "override it to run the operator outside the cluster (env MODELDEPLOY_DASHBOARD_URL)"
        ),
    )
    parser.add_argument(
        "--metrics-url-template",
        default=os.environ.get("MODELDEPLOY_HEAD_METRICS_URL", DEFAULT_METRICS_URL),
        help=(
            "URL of a head's Prometheus metrics (queue depth for the status), with {name} and "
            "{namespace}; override it outside the cluster (env MODELDEPLOY_HEAD_METRICS_URL)"
        ),
    )
    parser.add_argument(
        "--gateway-url-template",
        default=os.environ.get("MODELDEPLOY_GATEWAY_URL", GATEWAY_URL_TEMPLATE),
        help=(
            "URL of a namespace's gateway (its /metrics feed status.traffic), with {namespace}; "
            "override it outside the cluster (env MODELDEPLOY_GATEWAY_URL)"
        ),
    )
    parser.add_argument(
        "--gateway-image",
        default=os.environ.get("MODELDEPLOY_GATEWAY_IMAGE", DEFAULT_GATEWAY_IMAGE),
        help="image of the namespaces' gateway pods (the serving image)",
    )
    parser.add_argument(
        "--serve-http-port",
        type=int,
        default=8000,
        help=(
            "port Serve's proxies listen on inside each Ray cluster; change it only when the "
            "Ray cluster is not the operator's own head pod (out-of-cluster runs)"
        ),
    )
    parser.add_argument(
        "--resync-seconds",
        type=float,
        default=5.0,
        help="how often every ModelDeployment is reconciled and its status refreshed",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=8080,
        help="port of the Prometheus metrics endpoint (0 disables it)",
    )
    parser.add_argument(
        "--liveness",
        default="http://0.0.0.0:8081/healthz",
        help="kopf liveness endpoint URL ('' disables it)",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="skip peering (only for a single operator replica)",
    )
    parser.add_argument(
        "--peering-priority",
        type=int,
        default=0,
        help="this replica's peering priority (highest is active); default: random per start",
    )
    parser.add_argument(
        "--network-policies",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("MODELDEPLOY_NETWORK_POLICIES", "").lower() in {"1", "true", "yes"},
        help=(
            "give each ModelDeployment NetworkPolicies: its Ray head reachable only from its "
            "workers, the operator and the gateway, and its Serve port only from the gateway "
            "when API keys are set (env MODELDEPLOY_NETWORK_POLICIES)"
        ),
    )
    parser.add_argument(
        "--operator-namespace-selector",
        default=os.environ.get("MODELDEPLOY_OPERATOR_NAMESPACE_SELECTOR", ""),
        help=(
            "labels of the operator's namespace (k=v,...), allowed to the Ray heads with "
            "--network-policies (env MODELDEPLOY_OPERATOR_NAMESPACE_SELECTOR)"
        ),
    )
    parser.add_argument(
        "--operator-pod-selector",
        default=os.environ.get("MODELDEPLOY_OPERATOR_POD_SELECTOR", ""),
        help=(
            "labels of the operator's pods (k=v,...), allowed to the Ray heads with "
            "--network-policies (env MODELDEPLOY_OPERATOR_POD_SELECTOR)"
        ),
    )
    parser.add_argument("--log-format", choices=["plain", "full", "json"], default="full")
    parser.add_argument("--verbose", action="store_true")


def operator_peers(args: argparse.Namespace) -> OperatorPeers | None:
    """The operator's pods for the NetworkPolicies; None without --network-policies.
    ValueError naming the flag when a selector is missing or malformed."""
    if not args.network_policies:
        return None
    return OperatorPeers(
        namespace_labels=parse_selector(
            args.operator_namespace_selector, "--operator-namespace-selector"
        ),
        pod_labels=parse_selector(args.operator_pod_selector, "--operator-pod-selector"),
    )


def _load_kube_config(kubeconfig: str | None) -> None:
    import kubernetes

    if kubeconfig:
        kubernetes.config.load_kube_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        return
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas, unless MALLOC_ARENA_MAX says otherwise.

    glibc gives threads that allocate at once arenas of their own (up to 8 per core); memory
    freed in one is not reused by another, so the handler and resync threads kept the operator's
    resident memory well above what it uses. A no-op where the C library is not glibc.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_arena_max = -8  # from glibc's malloc.h
    mallopt(m_arena_max, arenas)


def run(args: argparse.Namespace) -> int:
    try:
        peers = operator_peers(args)  # a bad selector fails here, before anything starts
    except ValueError as exc:
        print(f"modeldeploy operator: {exc}", file=sys.stderr)
        return 2
    if args.kubeconfig:
        # Before the first `import kubernetes`: it reads $KUBECONFIG once, at import, and kopf's
        # login handler relies on that default.
        os.environ["KUBECONFIG"] = args.kubeconfig
    _limit_malloc_arenas()  # before any thread starts
    # Imported here so that `modeldeploy validate` and `crd` start without the operator's stack.
    import kopf
    import kubernetes
    from prometheus_client import start_http_server

    from .gateway_sync import GatewaySync
    from .handlers import HANDLER_THREADS, RESYNC_THREADS, build_registry
    from .kube import Kube
    from .reconcile import Reconciler

    kopf.configure(
        verbose=args.verbose,
        log_format={
            "plain": kopf.LogFormat.PLAIN,
            "full": kopf.LogFormat.FULL,
            "json": kopf.LogFormat.JSON,
        }[args.log_format],
    )
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    _load_kube_config(args.kubeconfig)
    configuration = kubernetes.client.Configuration.get_default_copy()
    # A kept-alive connection for every thread that calls the API: the default pool (5 per CPU)
    # is smaller, and each request beyond it paid for a new TLS connection.
    configuration.connection_pool_maxsize = HANDLER_THREADS + RESYNC_THREADS
    kube = Kube(kubernetes.client.ApiClient(configuration))
    template: str = args.dashboard_url_template
    metrics_template: str = args.metrics_url_template

    def dashboard_for(name: str, namespace: str) -> HttpServeDashboard:
        return HttpServeDashboard(
            dashboard_url(template, name, namespace),
            dashboard_url(metrics_template, name, namespace),
        )

    gateway = GatewaySync(
        kube, template, url_template=args.gateway_url_template, image=args.gateway_image
    )
    reconciler = Reconciler(
        kube=kube,
        dashboard_for=dashboard_for,
        serve_http_port=args.serve_http_port,
        gateway=gateway,
        network_policies=peers,
    )
    if args.metrics_port:
        start_http_server(args.metrics_port)
    kopf.run(
        registry=build_registry(reconciler, args.resync_seconds),
        clusterwide=not args.namespaces,
        namespaces=args.namespaces,
        standalone=args.standalone,
        peering_name=None if args.standalone else PEERING_NAME,
        # Peers of equal priority pause each other; distinct random ones elect one active peer.
        priority=args.peering_priority or random.SystemRandom().randint(1, 2**31 - 1),
        liveness_endpoint=args.liveness or None,
    )
    return 0
