"""FitCheck and ModelVerified in the status the operator writes (the pure status builder)."""

from __future__ import annotations

from typing import Any

from modeldeploy_operator.decide.conditions import Observation, build_status, failure_reason
from modeldeploy_operator.decide.model_checks import Check, Pinned
from modeldeploy_operator.decide.serve_status import ServeObservation
from modeldeploy_serving.digests import Mismatch, ModelVerificationError

NOW = "2026-01-01T00:00:00Z"
GOOD = "a" * 64
FOUND = "b" * 64
PINNED = Pinned(revision="c" * 40, digests={"model.safetensors": GOOD, "config.json": "d" * 64})
PASSED = Check("True", "Passed", "fits: weights 12.8 GiB ...")


def serve_failed_with(error: Exception) -> ServeObservation:
    # What Ray Serve reports once a replica's start raised: its traceback quoted in the message.
    message = (
        "A replica failed to start with exception. Retrying 2 more time(s). Error:\n"
        'Traceback (most recent call last):\n  File "app.py", line 94, in '
        f"__serve_build_asgi_app__\n{type(error).__name__}: {error}"
    )
    return ServeObservation(
        app_status="DEPLOYING", deployment_status="UPDATING", deployment_message=message
    )


def obs(**changes: Any) -> Observation:
    base: dict[str, Any] = {
        "generation": 2,
        "endpoint": "http://llm.team.svc:8000/v1",
        "selector": "modeldeploy.dev/name=llm",
        "head_ready": True,
        "target_replicas": 1,
        "fit": PASSED,
        "pinned": PINNED,
    }
    return Observation(**{**base, **changes})


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_refused_weights_name_the_file_and_both_digests() -> None:
    refusal = ModelVerificationError([Mismatch("model.safetensors", GOOD, FOUND)])
    status = build_status(obs(serve=serve_failed_with(refusal)), {}, NOW)
    verified = conditions(status)["ModelVerified"]
    assert (verified["status"], verified["reason"]) == ("False", "DigestMismatch")
    assert verified["message"] == f"model.safetensors: sha256 expected {GOOD}, got {FOUND}"
    assert status["model"] == {"revision": "c" * 40}
    assert "verifiedDigests" not in status["model"]


def test_a_failed_deployment_names_verification_as_the_cause() -> None:
    refusal = ModelVerificationError([Mismatch("model.safetensors", GOOD, FOUND)])
    serve = serve_failed_with(refusal)
    failed = ServeObservation(
        app_status="DEPLOY_FAILED",
        deployment_status="DEPLOY_FAILED",
        deployment_message=serve.deployment_message,
    )
    status = build_status(obs(serve=failed), {}, NOW)
    found = conditions(status)
    assert (found["Ready"]["status"], found["Ready"]["reason"]) == (
        "False",
        "ModelVerificationFailed",
    )
    assert found["Degraded"]["reason"] == "ModelVerificationFailed"
    # The refusal, not the traceback Serve wraps around it.
    assert found["Degraded"]["message"] == f"model.safetensors: sha256 expected {GOOD}, got {FOUND}"
    assert failure_reason(serve.deployment_message) == "ModelVerificationFailed"


def test_serving_replicas_verified_the_digests_into_status() -> None:
    serving = ServeObservation(
        app_status="RUNNING", deployment_status="HEALTHY", replicas=1, ready_replicas=1
    )
    status = build_status(obs(serve=serving), {}, NOW)
    verified = conditions(status)["ModelVerified"]
    assert (verified["status"], verified["reason"]) == ("True", "Verified")
    assert verified["message"] == f"2 files match their digests of revision {'c' * 40}"
    assert status["model"] == {
        "revision": "c" * 40,
        "verifiedDigests": {"config.json": "d" * 64, "model.safetensors": GOOD},
    }


def test_starting_replicas_are_still_verifying() -> None:
    status = build_status(obs(serve=ServeObservation(app_status="DEPLOYING")), {}, NOW)
    verified = conditions(status)["ModelVerified"]
    assert (verified["status"], verified["reason"]) == ("Unknown", "Verifying")


def test_no_digests_no_model_verified_condition() -> None:
    status = build_status(obs(pinned=None), {}, NOW)
    assert "ModelVerified" not in conditions(status)
    assert "model" not in status


def test_fit_check_is_a_condition_of_its_own() -> None:
    status = build_status(obs(), {}, NOW)
    fit = conditions(status)["FitCheck"]
    assert (fit["status"], fit["reason"], fit["message"]) == ("True", "Passed", PASSED.message)
    assert fit["observedGeneration"] == 2


def test_a_failed_fit_check_blocks_and_says_why() -> None:
    failed = Check(
        "False",
        "Failed",
        "tensorParallelSize 8 does not divide the model's 28 attention heads (num_attention_heads)",
    )
    status = build_status(obs(fit=failed, fit_blocks=True, pinned=None), {}, NOW)
    found = conditions(status)
    assert status["phase"] == "Failed"
    assert (found["FitCheck"]["status"], found["FitCheck"]["reason"]) == ("False", "Failed")
    assert (found["Ready"]["status"], found["Ready"]["reason"]) == ("False", "FitCheckFailed")
    assert found["Degraded"]["reason"] == "FitCheckFailed"
    assert "8" in found["Ready"]["message"] and "28" in found["Ready"]["message"]
    # Not enforced: reported, nothing blocked.
    relaxed = build_status(obs(fit=failed, fit_blocks=False, pinned=None), {}, NOW)
    assert conditions(relaxed)["Ready"]["reason"] != "FitCheckFailed"


COMMIT = "0" * 40


def configmap_md(revision: str = COMMIT) -> Any:
    from tests.operator_factories import make_md

    return make_md(
        {
            "model": {
                "revision": revision,
                "digests": {"configMapRef": {"name": "digests", "key": "manifest.json"}},
            }
        }
    )


def test_digest_manifest_from_a_configmap() -> None:
    from modeldeploy_operator.decide.model_checks import digest_manifest
    from modeldeploy_serving.digests import Manifest, render_manifest

    md = configmap_md()
    text = render_manifest(Manifest(files={"model.safetensors": GOOD}, revision=COMMIT))
    assert digest_manifest(md, {"manifest.json": text}) == ({"model.safetensors": GOOD}, [])
    assert digest_manifest(md, None)[1] == [
        "spec.model.digests.configMapRef: ConfigMap 'digests' does not exist"
    ]
    assert digest_manifest(md, {"other": text})[1] == [
        "spec.model.digests.configMapRef: ConfigMap 'digests' has no key 'manifest.json'"
    ]
    other = render_manifest(Manifest(files={"model.safetensors": GOOD}, revision="1" * 40))
    [problem] = digest_manifest(md, {"manifest.json": other})[1]
    assert f"the manifest is for revision {'1' * 40}, spec.model.revision is {COMMIT}" in problem
    [problem] = digest_manifest(md, {"manifest.json": "garbage"})[1]
    assert "key 'manifest.json': line 1" in problem


def test_fit_from_config_text() -> None:
    import json
    from pathlib import Path

    from modeldeploy_operator.decide.model_checks import fit_from_config
    from tests.operator_factories import make_md

    config = (Path(__file__).parents[2] / "data/models/qwen2.5-7b-instruct/config.json").read_text()
    md = make_md(
        {"engine": {"tensorParallelSize": 8}, "resources": {"gpuProduct": "NVIDIA-H100-80GB-HBM3"}}
    )
    failed = fit_from_config(md, config, "ConfigMap qwen key config.json")
    assert (failed.status, failed.reason) == ("False", "Failed")
    assert "tensorParallelSize 8" in failed.message and "28 attention heads" in failed.message
    missing = fit_from_config(md, None, "hf:// source")
    assert (missing.status, missing.reason) == ("Unknown", "NoModelConfig")
    broken = fit_from_config(md, json.dumps({"model_type": "x"}), "ConfigMap c key k")
    assert broken.reason == "NoModelConfig" and "ConfigMap c key k: config.json" in broken.message


def test_starting_replicas_and_their_progress() -> None:
    instance = {
        "applications": {
            "llm": {
                "status": "DEPLOYING",
                "deployments": {
                    "VLLMServer": {
                        "status": "UPDATING",
                        "replicas": [
                            {"state": "STARTING", "actor_id": "a1", "node_ip": "10.0.0.1"},
                            {"state": "RUNNING", "actor_id": "a2", "node_ip": "10.0.0.2"},
                        ],
                    }
                },
            }
        }
    }
    serve = ServeObservation.from_instance(instance, "llm")
    assert [r.actor_id for r in serve.starting_replicas] == ["a1"]
    progress = "downloading openai/gpt-oss-20b: 3/14 files, 5.20/13.80 GB (38%)"
    from dataclasses import replace

    status = build_status(obs(serve=replace(serve, replica_progress=progress)), {}, NOW)
    assert status["model"] == {"revision": "c" * 40, "progress": progress}
