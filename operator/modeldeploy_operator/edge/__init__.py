"""The edge: the only modules that talk to Kubernetes, Ray's dashboard and kopf.

- `kube`: the Kubernetes calls, over the official client's ApiClient, as plain dicts;
- `dashboard`: the Ray dashboard's Serve REST API and the head's metrics, over HTTP;
- `events`: the interface Kubernetes events are written to;
- `gateway_sync`: keeping each namespace's gateway objects in step with its ModelDeployments;
- `reconcile`: one level-based pass over a ModelDeployment: read, build and decide (through
  `builders` and `decide`), write, report;
- `handlers`: the kopf handlers, each one call into the Reconciler;
- `operator_main`: `modeldeploy operator`'s arguments and the kopf process;
- `metrics`: the operator's own Prometheus metrics.

They may import `api`, `common`, `builders` and `decide`; only `cli` imports them, and nothing in
`api`, `common`, `builders` or `decide` does (checked by `make lint`).
"""
