"""modeldeploy operator: the ModelDeployment API, its CRD, the kopf operator and the CLI.

What lives here, and who may import what (checked by `make lint`, see docs/architecture.md):
- `api/`: the API models; imports no other part of the operator and no client library;
- pure builders and decisions (pods, services, serve_app, serving_config, gateway,
  networkpolicies, workers, rollout, conditions, model_checks, preflight, serve_status,
  traffic...): import the API, each other and `modeldeploy_serving`'s pure configs, never an
  edge module;
- the edge (kube, dashboard, gateway_sync, reconcile, handlers, operator_main, metrics, the
  CLIs): the only modules that talk to Kubernetes, Ray's dashboard or kopf.
Nothing in `modeldeploy_serving` imports this package.
"""
