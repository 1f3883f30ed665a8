"""The Ray Serve application: replicas that each host one vLLM engine and vLLM's own OpenAI app.

No OpenAI protocol code lives here. Each replica parses the `vllm serve` arguments that
`ServingConfig.vllm_args()` produces with vLLM's own parser, starts an `AsyncLLM` engine, and
builds vLLM's complete FastAPI application (chat, completions, responses, embeddings, tokenize,
/health, /metrics...) around it, exactly as `vllm serve` does. Ray Serve then routes HTTP to that
app: through its proxy, or (see `ingress.py`) straight to the replica's own HTTP server.

Why the pieces are where they are:
- The engine and app are built in `__serve_build_asgi_app__`, which Serve awaits inside the
  replica after construction: the engine must live in the replica process, and building it needs
  a running event loop. Before that, `model_files.prepare_model` downloads a hub model once per
  model cache and checks the audited SHA-256 digests: a mismatch fails the replica's start, and
  Serve reports the refusal (file and both digests) in the deployment's message.
- `check_health` asks the engine; a dead engine core makes Serve replace the replica.
- Serve drains a stopping replica (no new requests, in-flight ones finish within
  graceful_shutdown_timeout_s) before `__del__` shuts the engine down.
- max_ongoing_requests defaults to twice the engine's max_num_seqs: Serve's default (5) would
  make requests queue in front of the replica instead of joining the engine's continuous batch,
  and a backlog held inside HAProxy would be invisible to the queue-depth policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modeldeploy_serving.autoscaling import ray_autoscaling_config
from modeldeploy_serving.config import ServingConfig

if TYPE_CHECKING:
    from ray.serve import Application

DEPLOYMENT_NAME = "VLLMServer"
BACKPRESSURE_RETRY_AFTER_S = 5


def deployment_options(config: ServingConfig) -> dict[str, Any]:
    """Ray Serve deployment options for `config` (pure; the unit tests cover it).

    GPU replicas reserve their GPUs as a placement group, so a replica starts only when all of
    its engine's GPUs are free. With the mp executor that is one STRICT_PACK bundle: the engine's
    worker processes then see exactly the GPUs Ray granted the replica. CPU replicas reserve CPUs.
    """
    runtime_env: dict[str, Any] = {"env_vars": dict(config.env)} if config.env else {}
    actor_options: dict[str, Any] = {"num_cpus": config.cpus_per_replica}
    if runtime_env:
        actor_options["runtime_env"] = runtime_env
    options: dict[str, Any] = {
        "name": DEPLOYMENT_NAME,
        "max_ongoing_requests": config.effective_max_ongoing_requests,
        "max_queued_requests": config.max_queued_requests,
        # Over the queue bound: 429 with Retry-After, which clients back off on (not 503).
        "backpressure_config": {"status_code": 429, "retry_after_s": BACKPRESSURE_RETRY_AFTER_S},
        "graceful_shutdown_timeout_s": config.graceful_shutdown_timeout_s,
        "graceful_shutdown_wait_loop_s": 1.0,
        "health_check_period_s": config.health_check_period_s,
        "health_check_timeout_s": config.health_check_timeout_s,
    }
    if config.accelerator == "gpu" and config.distributed_executor_backend == "mp":
        actor_options["num_gpus"] = config.gpus_per_replica
        options["placement_group_bundles"] = [
            {"CPU": config.cpus_per_replica, "GPU": float(config.gpus_per_replica)}
        ]
        options["placement_group_strategy"] = "STRICT_PACK"
    elif config.accelerator == "gpu":
        # vLLM's Ray executor places one worker actor per GPU bundle of the replica's placement
        # group; the replica itself holds only CPU. PACK keeps them on as few nodes as fit.
        options["placement_group_bundles"] = [{"CPU": config.cpus_per_replica}] + [
            {"GPU": 1.0} for _ in range(config.gpus_per_replica)
        ]
        options["placement_group_strategy"] = "PACK"
    options["ray_actor_options"] = actor_options
    if config.autoscaling is not None:
        options["autoscaling_config"] = ray_autoscaling_config(config.autoscaling)
    else:
        options["num_replicas"] = config.num_replicas
    return options


class VLLMServer:
    """One replica: one vLLM engine behind vLLM's own OpenAI FastAPI app."""

    def __init__(self, config_json: str) -> None:
        self._config = ServingConfig.model_validate_json(config_json)
        self._engine: Any = None

    async def __serve_build_asgi_app__(self) -> Any:
        import asyncio

        from modeldeploy_serving.engine import start_engine_and_app
        from modeldeploy_serving.http_errors import install as install_openai_http_errors
        from modeldeploy_serving.model_files import prepare_model

        # Download (once per cache) and verify before the engine reads a byte: a file that
        # differs from its audited digest raises here, and this replica never starts.
        config = await asyncio.to_thread(prepare_model, self._config)
        self._engine, app = await start_engine_and_app(config)
        # An unknown path or method answers as an OpenAI error object too, as vLLM's own errors.
        install_openai_http_errors(app)
        return app

    async def check_health(self) -> None:
        # Raises (EngineDeadError) when the engine core process is gone; Serve then restarts us.
        if self._engine is None:
            raise RuntimeError("the vLLM engine has not started")
        await self._engine.check_health()

    async def record_autoscaling_stats(self) -> dict[str, float]:
        """The engine's waiting and running request counts, for the queue-depth policy.

        Read from vLLM's own Prometheus gauges in this process, at every metric record. Only
        the two gauges are rendered: the whole registry (vLLM's histograms) costs milliseconds
        per call, which on a small machine comes straight out of the engine's CPU.
        """
        from prometheus_client import REGISTRY, generate_latest

        from modeldeploy_serving.autoscaling.engine_stats import ENGINE_GAUGES, autoscaling_stats

        gauges = REGISTRY.restricted_registry(ENGINE_GAUGES)
        return autoscaling_stats(generate_latest(gauges).decode())

    def __del__(self) -> None:
        engine, self._engine = getattr(self, "_engine", None), None
        if engine is not None:
            engine.shutdown()


def build_app(config: ServingConfig) -> Application:
    """The Serve application for `config`: deploy it with `serve.run` or a Serve config file."""
    from ray import serve

    ingress_cls = serve.ingress()(VLLMServer)
    deployment = serve.deployment(**deployment_options(config))(ingress_cls)
    app: Application = deployment.bind(config.to_json())
    return app


def app_builder(args: dict[str, Any]) -> Application:
    """Entry point for Serve config files (`import_path: modeldeploy_serving.app:app_builder`).

    `args` is the ServingConfig as a mapping, which is how the operator ships it.
    """
    return build_app(ServingConfig.model_validate(args))
