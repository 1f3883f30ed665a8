"""modeldeploy operator: the ModelDeployment API, its CRD, the kopf operator and the CLI.

The subpackages follow the data flow, and each imports only those above it in this list
(the rules marked * are checked by `make lint`, see docs/architecture.md):
- `api/`: the API models; imports no other part of the operator and no client library*;
- `common/`: small pure helpers every layer shares (names and labels, the spec hash, quantities,
  reading a document into the API models);
- `builders/`: pure builders of the desired objects (pods, Services, NetworkPolicies, the gateway,
  the ServingConfig, the Ray Serve config, the CRD);
- `decide/`: pure decisions over what was built and what was observed (worker plan, rollout, fit
  check, the status and its conditions, readers of Serve's and the gateway's answers);
- `edge/`: the only modules that talk to Kubernetes, Ray's dashboard or kopf (kube, dashboard,
  gateway_sync, reconcile, handlers, operator_main, metrics); `api`, `common`, `builders` and
  `decide` import none of them, nor kopf, a Kubernetes or an HTTP client*;
- `cli/`: the `modeldeploy` command line, which may import all of the above.
Nothing in `modeldeploy_serving` imports this package*.
"""
