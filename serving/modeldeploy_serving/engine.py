"""Start a vLLM engine and vLLM's OpenAI FastAPI app in this process, the way `vllm serve` does.

This follows vLLM's own server entry point (vllm/entrypoints/launchers/api_server/entry.py):
parse the `vllm serve` flags with vLLM's parser, build `AsyncEngineArgs` and the engine config,
start `AsyncLLM`, then `build_app` + `init_app_state`. Only the HTTP server is left out: Ray
Serve (or its direct ingress) serves the returned app. Imports vllm, so it is only imported
inside replicas.
"""

from __future__ import annotations

import os
from typing import Any

from modeldeploy_serving.config import ServingConfig


def parse_vllm_args(args: list[str]) -> Any:
    """`vllm serve` flags -> the argparse Namespace vLLM's server code expects."""
    from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = make_arg_parser(
        FlexibleArgumentParser(prog="modeldeploy-replica")  # type: ignore[no-untyped-call]
    )
    namespace = parser.parse_args(args)
    validate_parsed_serve_args(namespace)
    return namespace


async def start_engine_and_app(config: ServingConfig) -> tuple[Any, Any]:
    """Start the engine for `config`; return (engine, FastAPI app with its state initialised)."""
    # vLLM's CLI sets this before anything else: the engine core process must be spawned, not
    # forked, from a process that already runs threads (a Ray worker does).
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    if config.accelerator == "cpu" and "OMP_NUM_THREADS" not in config.env:
        # Ray sets OMP_NUM_THREADS to the replica's CPU count; vLLM's CPU engine then runs that
        # many spinning OpenMP threads beside this process. Without it, vLLM binds its threads
        # and leaves a core for the server, exactly as `vllm serve` does.
        os.environ.pop("OMP_NUM_THREADS", None)

    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.launchers.api_server.app_state import init_app_state
    from vllm.entrypoints.launchers.app import build_app
    from vllm.reasoning import ReasoningParserManager
    from vllm.tool_parsers import ToolParserManager
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.engine.async_llm import AsyncLLM

    args = parse_vllm_args(config.vllm_args())
    if args.tool_parser_plugin:
        ToolParserManager.import_tool_parser(args.tool_parser_plugin)
    if args.reasoning_parser_plugin:
        ReasoningParserManager.import_reasoning_parser(args.reasoning_parser_plugin)

    engine_args = AsyncEngineArgs.from_cli_args(args)
    usage = UsageContext.OPENAI_API_SERVER
    vllm_config = engine_args.create_engine_config(usage_context=usage)
    engine = AsyncLLM.from_vllm_config(
        vllm_config=vllm_config,
        usage_context=usage,
        enable_log_requests=engine_args.enable_log_requests,
        aggregate_engine_logging=engine_args.aggregate_engine_logging,
        disable_log_stats=engine_args.disable_log_stats,
    )
    try:
        await engine.reset_mm_cache()
        supported_tasks = await engine.get_supported_tasks()
        app = build_app(args, supported_tasks, engine.model_config)
        await init_app_state(engine, app.state, args, supported_tasks)
    except BaseException:
        engine.shutdown()
        raise
    return engine, app
