"""Pure decisions, from the desired objects and what the edge observed.

- `workers`: how many worker pods a ModelDeployment needs, which to create or remove;
- `rollout`: submitting a changed model or engine with a surge replica, so the endpoint stays up;
- `preflight`, `gpus`: will the model fit its GPUs (arithmetic on config.json, GPU memory table);
- `model_checks`: the FitCheck and ModelVerified conditions;
- `podstate`, `serve_status`, `traffic`: reading a live pod, Ray Serve's REST answer and metrics,
  and the gateway's counters into what is decided on;
- `conditions`: the status of a ModelDeployment and its conditions, with actionable reasons.

They import the API models, `common`, `builders`, each other and `modeldeploy_serving`'s pure
parsers, never an edge module (nor kopf, a Kubernetes or an HTTP client, checked by `make lint`).
`edge` and `cli` import them.
"""
