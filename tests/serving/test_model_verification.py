"""Weights are verified by the replica before its engine loads them: the audited bytes are served,
one flipped byte is refused, and the refusal reaches the operator's status builder intact.

The served case is the session's tiny server (conftest: it runs the example with the revision
and digests `modeldeploy digest` printed). The refused case runs `modeldeploy serve -f` on a
copy of the model with one byte flipped in its weights: Ray and Serve start for real and the
replica refuses before any engine starts, so it costs a Ray start, not an engine start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import openai
import pytest
import yaml

from modeldeploy_operator.decide.conditions import failure_reason
from modeldeploy_operator.decide.model_checks import Pinned, model_verified
from modeldeploy_operator.decide.serve_status import ServeObservation
from modeldeploy_serving.digests import Mismatch, parse_refusal, sha256_file
from modeldeploy_serving.local import free_port

from .conftest import Servers

pytestmark = pytest.mark.timeout(900)

SERVE_COMMAND = [sys.executable, "-m", "modeldeploy_operator.cli", "serve"]


def test_the_audited_weights_are_verified_then_served(
    servers: Servers, client: openai.OpenAI, model: str
) -> None:
    pinned = yaml.safe_load(servers.tiny_file.read_text())["spec"]["model"]
    assert len(pinned["revision"]) == 40 and "model.safetensors" in pinned["digests"]["files"]
    log = servers.tiny.log_path.read_text(errors="replace")
    files = len(pinned["digests"]["files"])
    assert f"modeldeploy: verified {files} files" in log, log[-3000:]
    assert f"(revision {pinned['revision']})" in log
    reply = client.completions.create(model=model, prompt="hello", max_tokens=4, temperature=0)
    assert reply.choices[0].text


def test_one_flipped_byte_is_refused_and_named(servers: Servers, tmp_path: Path) -> None:
    document = yaml.safe_load(servers.tiny_file.read_text())
    original = Path(document["spec"]["model"]["source"].removeprefix("file://"))
    tampered = tmp_path / "tiny-tampered"
    shutil.copytree(original, tampered)
    weights = tampered / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    document["spec"]["model"]["source"] = f"file://{tampered}"
    file = tmp_path / "tampered.yaml"
    file.write_text(yaml.safe_dump(document, sort_keys=False))

    done = subprocess.run(
        [*SERVE_COMMAND, "-f", str(file), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    assert "serving tiny-llama at" not in output
    expected = document["spec"]["model"]["digests"]["files"]["model.safetensors"]
    found = sha256_file(weights)
    refusal = Mismatch("model.safetensors", expected, found)
    assert parse_refusal(output) == [refusal], output[-3000:]

    # The operator reads the same refusal out of what Serve says about the failed replica.
    assert failure_reason(output) == "ModelVerificationFailed"
    model = document["spec"]["model"]
    pinned = Pinned(revision=model["revision"], digests=model["digests"]["files"])
    check = model_verified(pinned, ServeObservation(deployment_message=output))
    assert (check.status, check.reason) == ("False", "DigestMismatch")
    assert check.message == f"model.safetensors: sha256 expected {expected}, got {found}"
