"""Pure builders: the desired objects of a ModelDeployment, as plain dicts or config models.

- `owner`: the ModelDeployment a child belongs to, as the builders need it;
- `pods`, `services`, `networkpolicies`: the Ray head and worker pods, their Services and the
  optional NetworkPolicies;
- `gateway`: the namespace gateway's config and its ConfigMap, Deployment and Service;
- `serving_config`: ModelDeployment -> `modeldeploy_serving`'s ServingConfig (what each replica
  runs; also `modeldeploy serve -f FILE`);
- `ray_serve_config`: the Ray Serve config the dashboard is given (PUT /api/serve/applications/);
- `crd`: the CustomResourceDefinition, generated from the API models.

They import the API models, `common`, each other and `modeldeploy_serving`'s pure configs,
never a decision or an edge module (nor kopf, a Kubernetes or an HTTP client, checked by
`make lint`). `decide`, `edge` and `cli` import them.
"""
