"""Greedy outputs of the engine run directly (no server): the reference the served output must
equal token for token.

Run as a script (vLLM spawns its engine core, so the entry point must be guarded):
    python direct_engine.py SERVING_CONFIG_JSON REQUESTS_JSON OUTPUT_JSON
REQUESTS_JSON is a list of {"prompt_token_ids": [...], "max_tokens": N}; OUTPUT_JSON receives,
per request, the generated token ids. The engine is built from the very same `vllm serve`
arguments as the replicas (ServingConfig.vllm_args), through vLLM's own argument parser.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any


async def generate(config_path: Path, requests: list[dict[str, Any]]) -> list[list[int]]:
    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.inputs import TokensPrompt
    from vllm.v1.engine.async_llm import AsyncLLM

    from modeldeploy_serving.config import ServingConfig
    from modeldeploy_serving.engine import parse_vllm_args

    config = ServingConfig.model_validate_json(config_path.read_text())
    engine_args = AsyncEngineArgs.from_cli_args(parse_vllm_args(config.vllm_args()))
    engine = AsyncLLM.from_engine_args(engine_args)
    try:
        outputs: list[list[int]] = []
        for index, request in enumerate(requests):
            params = SamplingParams(temperature=0.0, max_tokens=request["max_tokens"])
            prompt = TokensPrompt(prompt_token_ids=request["prompt_token_ids"])
            final = None
            async for output in engine.generate(prompt, params, request_id=f"direct-{index}"):
                final = output
            assert final is not None
            outputs.append(list(final.outputs[0].token_ids))
        return outputs
    finally:
        engine.shutdown()


def main() -> None:
    config_path, requests_path, output_path = map(Path, sys.argv[1:4])
    requests = json.loads(requests_path.read_text())
    output_path.write_text(json.dumps(asyncio.run(generate(config_path, requests))))


if __name__ == "__main__":
    main()
