"""The two checks of what a ModelDeployment runs, as conditions: FitCheck and ModelVerified.

FitCheck is decided by the operator itself before any worker pod exists (preflight.py), so it
is final as soon as the spec is read. ModelVerified is decided inside each replica, which hashes
the files before its engine loads them; the operator learns a refusal only from what Ray Serve
says about the replica that failed to start, so it reads the refusal back out of Serve's message
with the serving layer's own parser (one wording, one module). Everything here is pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modeldeploy_serving.digests import Mismatch, parse_manifest, parse_refusal

from ..api import ModelDeployment, ModelDeploymentSpec
from ..common.quantities import parse_quantity
from .gpus import gpu_memory_bytes
from .preflight import EngineSettings, FitReport, architecture_from_config, check_fit
from .serve_status import ServeObservation

FIT_CHECK = "FitCheck"
MODEL_VERIFIED = "ModelVerified"


@dataclass(frozen=True)
class Check:
    """One condition's status, reason and message."""

    status: str
    reason: str
    message: str


@dataclass(frozen=True)
class Pinned:
    """The revision and digests a spec pins (the manifest already read from its ConfigMap)."""

    revision: str | None
    digests: Mapping[str, str] = field(default_factory=dict)


def digest_manifest(
    md: ModelDeployment, configmap: Mapping[str, str] | None
) -> tuple[dict[str, str], list[str]]:
    """(digests, problems) for a spec whose digests live in a ConfigMap (`configmap`: its data,
    None when it does not exist). Inline digests come back as they are. A manifest that names
    another revision than the spec is a problem: the digests would pin other files."""
    digests = md.spec.model.digests
    if digests is None:
        return {}, []
    ref = digests.config_map_ref
    if ref is None:
        return dict(digests.files), []
    where = "spec.model.digests.configMapRef"
    if configmap is None:
        return {}, [f"{where}: ConfigMap {ref.name!r} does not exist"]
    if ref.key not in configmap:
        return {}, [f"{where}: ConfigMap {ref.name!r} has no key {ref.key!r}"]
    try:
        manifest = parse_manifest(configmap[ref.key])
    except ValueError as exc:
        return {}, [f"{where}: ConfigMap {ref.name!r} key {ref.key!r}: {exc}"]
    if not manifest.files:
        return {}, [
            f"{where}: ConfigMap {ref.name!r} key {ref.key!r}: expected digests, found none"
        ]
    revision = md.spec.model.revision
    if manifest.revision and revision and manifest.revision != revision:
        return {}, [
            f"{where}: the manifest is for revision {manifest.revision}, spec.model.revision is "
            f"{revision}"
        ]
    return manifest.files, []


def fit_from_config(md: ModelDeployment, config_text: str | None, where: str) -> Check:
    """FitCheck for a spec from the text of its model's config.json (`where` it came from);
    Unknown (NoModelConfig) when there is none or it cannot be read."""
    if config_text is None:
        return Check(
            "Unknown",
            "NoModelConfig",
            f"no config.json to check the fit with ({where}); name one in "
            "spec.preflight.configMapRef",
        )
    try:
        config = json.loads(config_text)
        if not isinstance(config, dict):
            raise ValueError("expected a JSON object")
        report = check_fit(architecture_from_config(config), engine_settings(md.spec))
    except ValueError as exc:
        return Check("Unknown", "NoModelConfig", f"{where}: {exc}")
    return fit_check(report)


def local_model_config(spec: ModelDeploymentSpec) -> Path | None:
    """config.json in a file:// source's folder: readable where the operator or the CLI runs on
    the machine that holds the model (a workstation, a node, the e2e tier)."""
    folder = spec.model.parsed_source().local_path
    return None if folder is None else folder / "config.json"


def engine_settings(spec: ModelDeploymentSpec) -> EngineSettings:
    """What the fit check needs from a spec: parallelism, lengths, dtypes, the GPU's memory."""
    engine, resources = spec.engine, spec.resources
    if resources.gpu_memory is not None:
        memory: int | None = int(parse_quantity(resources.gpu_memory))
    else:
        memory = gpu_memory_bytes(resources.gpu_product)
    return EngineSettings(
        tensor_parallel_size=engine.tensor_parallel_size,
        pipeline_parallel_size=engine.pipeline_parallel_size,
        max_model_len=engine.max_model_len,
        max_num_seqs=engine.max_num_seqs,
        dtype=engine.dtype,
        quantization=engine.quantization,
        kv_cache_dtype=engine.kv_cache_dtype,
        gpu_memory_utilization=engine.gpu_memory_utilization,
        accelerator="cpu" if resources.accelerator == "cpu" else "gpu",
        gpu_product=resources.gpu_product,
        gpu_memory=memory,
    )


def fit_check(report: FitReport | None, unavailable: str = "") -> Check:
    """FitCheck from a preflight report; without one, Unknown with why (`unavailable`)."""
    if report is None:
        return Check("Unknown", "NoModelConfig", unavailable)
    status = {"Passed": "True", "Warning": "True", "Failed": "False"}.get(report.verdict, "Unknown")
    reason = "UnknownGPU" if report.verdict == "Unknown" else report.verdict
    return Check(status, reason, report.message)


def serve_refusal(serve: ServeObservation) -> list[Mismatch]:
    """The files a replica refused to load, from what Serve reports about its failed start."""
    return parse_refusal(f"{serve.deployment_message}\n{serve.app_message}")


def model_verified(pinned: Pinned, serve: ServeObservation) -> Check:
    """ModelVerified: False naming each file and both digests once a replica refused; True once
    replicas of the current config serve (each verified before its engine loaded)."""
    refused = serve_refusal(serve)
    if refused:
        return Check("False", "DigestMismatch", "; ".join(m.describe() for m in refused))
    revision = f" of revision {pinned.revision}" if pinned.revision else ""
    if serve.app_status == "RUNNING" and serve.ready_replicas > 0:
        return Check(
            "True", "Verified", f"{len(pinned.digests)} files match their digests{revision}"
        )
    return Check(
        "Unknown",
        "Verifying",
        f"replicas check {len(pinned.digests)} files{revision} before their engines load them",
    )


def model_status(pinned: Pinned | None, serve: ServeObservation) -> dict[str, Any]:
    """status.model: the pinned revision, the digests once a replica verified them, and what a
    starting replica last reported (its download's progress, its verification)."""
    status: dict[str, Any] = {}
    if pinned is not None and pinned.revision:
        status["revision"] = pinned.revision
    if pinned is not None and pinned.digests and model_verified(pinned, serve).status == "True":
        status["verifiedDigests"] = dict(sorted(pinned.digests.items()))
    if serve.replica_progress:
        status["progress"] = serve.replica_progress
    return status


def extra_checks(
    fit: Check | None, pinned: Pinned | None, serve: ServeObservation
) -> Sequence[tuple[str, Check]]:
    """The FitCheck and ModelVerified conditions that apply to one observation."""
    checks: list[tuple[str, Check]] = []
    if fit is not None:
        checks.append((FIT_CHECK, fit))
    if pinned is not None and pinned.digests:
        checks.append((MODEL_VERIFIED, model_verified(pinned, serve)))
    return checks
