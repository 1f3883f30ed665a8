"""modeldeploy serving: Ray Serve replicas hosting vLLM's own OpenAI server, the ingress in front
of them, the queue-depth autoscaling policy, the namespace gateway and the local run.

Imports nothing from `modeldeploy_operator` (checked by `make lint`): a replica needs no
Kubernetes library, and the operator builds its configs from the pure models here
(`config`, `autoscaling`, `gateway.config`).
"""
