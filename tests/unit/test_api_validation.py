"""Every API rule and schema constraint, checked through the same path the CLI uses."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy_operator.api import ModelDeployment, api_rules
from modeldeploy_operator.common.validation import Problem, validate_object
from tests.api_cases import document, load_cases

CASES = load_cases()
RULES = {rule.id: rule for rule in api_rules()}


def _ids(entries: list[dict[str, Any]], key: str) -> list[str]:
    return [str(e[key]) for e in entries]


def test_base_document_is_valid() -> None:
    assert validate_object(document({})) == []


def test_every_rule_has_cases() -> None:
    covered = {case["rule"] for case in CASES["rules"]}
    assert covered == set(RULES), "each API rule needs an invalid and a valid case"


@pytest.mark.parametrize("case", CASES["rules"], ids=_ids(CASES["rules"], "rule"))
def test_rule_rejects_invalid_case(case: dict[str, Any]) -> None:
    problems = validate_object(document(case["invalid"]))
    assert Problem(case["path"], RULES[case["rule"]].message) in problems, problems


@pytest.mark.parametrize("case", CASES["rules"], ids=_ids(CASES["rules"], "rule"))
def test_rule_accepts_valid_case(case: dict[str, Any]) -> None:
    assert validate_object(document(case["valid"])) == []


@pytest.mark.parametrize("case", CASES["schema"], ids=_ids(CASES["schema"], "name"))
def test_schema_problem_names_field(case: dict[str, Any]) -> None:
    problems = validate_object(document(case["invalid"]))
    assert [p.path for p in problems] == [case["path"]], problems


def test_unknown_field_lists_allowed_fields() -> None:
    [problem] = validate_object(document({"spec": {"scaling": {"maxReplica": 3}}}))
    assert problem.path == "spec.scaling.maxReplica"
    assert "maxReplicas" in problem.message


def test_type_error_shows_bad_value() -> None:
    [problem] = validate_object(document({"spec": {"engine": {"maxNumSeqs": "many"}}}))
    assert problem.path == "spec.engine.maxNumSeqs"
    assert "'many'" in problem.message


def test_non_mapping_document_is_reported() -> None:
    [problem] = validate_object(["not", "a", "mapping"])
    assert "mapping" in problem.message


def test_quantities_accept_numbers_and_strings() -> None:
    md = ModelDeployment.model_validate(
        document({"spec": {"resources": {"cpu": 4, "memory": "16Gi"}}})
    )
    assert (md.spec.resources.cpu, md.spec.resources.memory) == ("4", "16Gi")


@pytest.mark.parametrize(
    ("source", "served_name", "expected"),
    [
        ("hf://openai/gpt-oss-20b", None, "openai/gpt-oss-20b"),
        ("hf://gpt2", None, "gpt2"),
        ("s3://bucket/models/llama-8b/", None, "llama-8b"),
        ("file:///models/tiny", "tiny-llama", "tiny-llama"),
    ],
)
def test_served_model_name_default(source: str, served_name: str | None, expected: str) -> None:
    md = ModelDeployment.model_validate(
        document({"spec": {"model": {"source": source, "servedModelName": served_name}}})
    )
    assert md.spec.model.effective_served_model_name() == expected


@pytest.mark.parametrize(
    ("patch", "per_replica", "per_worker"),
    [
        ({}, 1, 1),
        ({"engine": {"tensorParallelSize": 2, "pipelineParallelSize": 2}}, 4, 4),
        ({"engine": {"tensorParallelSize": 2}, "resources": {"gpusPerWorker": 8}}, 2, 8),
        ({"resources": {"accelerator": "cpu"}}, 0, 0),
    ],
)
def test_gpu_counts(patch: dict[str, Any], per_replica: int, per_worker: int) -> None:
    spec = ModelDeployment.model_validate(document({"spec": patch})).spec
    assert (spec.gpus_per_replica(), spec.gpus_per_worker()) == (per_replica, per_worker)


def test_defaults_fill_every_section() -> None:
    spec = ModelDeployment.model_validate(document({})).spec
    assert spec.engine.tensor_parallel_size == 1
    assert spec.resources.accelerator == "nvidia.com/gpu"
    assert spec.scaling.mode == "queue"
    assert spec.endpoint.port == 8000
