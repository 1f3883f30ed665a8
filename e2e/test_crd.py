"""The committed ModelDeployment CRD against the real apiserver: schema, CEL rules, scale.

The cases come from tests/data/api-cases.yaml, the file the unit tier checks pydantic with, and
the expected messages from the API's own rule list (`api_rules()`): the apiserver (CEL) and the
CLI/operator (pydantic) are held to the same inputs and the same words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster.localcluster import LocalCluster, wait_until

from modeldeploy_operator.api import api_rules
from tests.api_cases import document, load_cases

ROOT = Path(__file__).resolve().parents[1]
CRD_FILE = ROOT / "crds" / "modeldeployments.modeldeploy.dev.yaml"
CRD_NAME = "modeldeployments.modeldeploy.dev"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
CASES = load_cases()
RULES = {rule.id: rule for rule in api_rules()}
RULE_CASES = {case["rule"]: case for case in CASES["rules"]}
SCHEMA_CASES = [case for case in CASES["schema"] if not case.get("unit_only")]


def flat(text: str) -> str:
    """Whitespace collapsed: kubectl wraps long descriptions and messages."""
    return " ".join(text.split())


def dns_name(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:40].rstrip("-")


@pytest.fixture(scope="module")
def crd(cluster: LocalCluster) -> dict[str, Any]:
    cluster.kubectl("apply", "--server-side", "-f", str(CRD_FILE))
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    loaded: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def md_namespace(cluster: LocalCluster, crd: dict[str, Any]) -> Iterator[str]:
    """One namespace for the module: each case's object has its own name."""
    cluster.kubectl("create", "namespace", "md-cases")
    yield "md-cases"
    cluster.kubectl("delete", "namespace", "md-cases", "--wait=false")


def named(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """The document under its own name, unless the case is about the name itself."""
    if doc["metadata"]["name"] != CASES["base"]["metadata"]["name"]:
        return doc
    return {**doc, "metadata": {**doc["metadata"], "name": name}}


def apply_md(cluster: LocalCluster, namespace: str, doc: dict[str, Any]) -> tuple[int, str]:
    """`kubectl apply` one ModelDeployment; (exit status, stderr)."""
    done = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc), check=False)
    return done.returncode, done.stderr


def test_crd_is_established(cluster: LocalCluster, crd: dict[str, Any]) -> None:
    live = json.loads(cluster.kubectl("get", f"crd/{CRD_NAME}", "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in live["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    assert live["status"]["acceptedNames"]["shortNames"] == ["md"]


def test_explain_shows_the_descriptions(cluster: LocalCluster, crd: dict[str, Any]) -> None:
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    wanted = [spec["description"]] + [f["description"] for f in spec["properties"].values()]

    def explained() -> str | None:
        # The apiserver publishes a new CRD's OpenAPI a moment after it is Established.
        done = cluster.kubectl("explain", "md.spec", check=False)
        text = flat(done.stdout)
        return text if done.returncode == 0 and flat(spec["description"]) in text else None

    text = wait_until(explained, timeout=60, what="`kubectl explain md.spec`")
    missing = [d for d in wanted if flat(d) not in text]
    assert not missing, text
    for field in spec["properties"]:
        assert re.search(rf"\b{field}\b", text), field


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_rule_rejects_its_bad_example(
    cluster: LocalCluster, md_namespace: str, rule_id: str
) -> None:
    case = RULE_CASES.get(rule_id)
    assert case, f"rule {rule_id} has no case in tests/data/api-cases.yaml"
    rule = RULES[rule_id]
    doc = named(document(case["invalid"]), dns_name(rule_id))
    status, stderr = apply_md(cluster, md_namespace, doc)
    assert status != 0, f"the apiserver accepted the bad example of {rule_id}"
    assert flat(rule.message) in flat(stderr), stderr
    if not rule.field.startswith("metadata."):
        # The CEL fieldPath puts the message on the offending field, as pydantic does.
        assert f"{case['path']}:" in stderr, stderr


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_rule_accepts_its_good_example(
    cluster: LocalCluster, md_namespace: str, rule_id: str
) -> None:
    case = RULE_CASES.get(rule_id)
    assert case, f"rule {rule_id} has no case in tests/data/api-cases.yaml"
    doc = named(document(case["valid"]), dns_name(rule_id))
    status, stderr = apply_md(cluster, md_namespace, doc)
    assert status == 0, stderr


@pytest.mark.parametrize("case", SCHEMA_CASES, ids=[c["name"] for c in SCHEMA_CASES])
def test_schema_rejects_bad_field(
    cluster: LocalCluster, md_namespace: str, case: dict[str, Any]
) -> None:
    status, stderr = apply_md(cluster, md_namespace, named(document(case["invalid"]), case["name"]))
    assert status != 0, f"the apiserver accepted {case['name']}"
    assert case["path"] in stderr, stderr


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_are_accepted(cluster: LocalCluster, md_namespace: str, example: Path) -> None:
    done = cluster.kubectl("apply", "-n", md_namespace, "-f", str(example), check=False)
    assert done.returncode == 0, done.stderr
    name = yaml.safe_load(example.read_text(encoding="utf-8"))["metadata"]["name"]
    stored = json.loads(cluster.kubectl("get", "md", name, "-n", md_namespace, "-o", "json").stdout)
    # Omitted sections come back filled with the schema's defaults.
    assert stored["spec"]["scaling"]["mode"] in ("queue", "external")
    assert stored["spec"]["endpoint"]["port"] >= 1


def test_scale_subresource(cluster: LocalCluster, md_namespace: str) -> None:
    doc = document({"spec": {"scaling": {"mode": "external", "replicas": 1, "maxReplicas": 4}}})
    status, stderr = apply_md(cluster, md_namespace, named(doc, "scaled"))
    assert status == 0, stderr

    cluster.kubectl("scale", "md/scaled", "-n", md_namespace, "--replicas=2")

    replicas = cluster.kubectl(
        "get", "md", "scaled", "-n", md_namespace, "-o", "jsonpath={.spec.scaling.replicas}"
    ).stdout
    assert replicas == "2"
    path = f"/apis/modeldeploy.dev/v1alpha1/namespaces/{md_namespace}/modeldeployments/scaled/scale"
    scale = json.loads(cluster.kubectl("get", "--raw", path).stdout)
    assert scale["kind"] == "Scale"
    assert scale["spec"]["replicas"] == 2
    # A scale request goes through the same CEL rules as an edit of the object.
    beyond = cluster.kubectl("scale", "md/scaled", "-n", md_namespace, "--replicas=9", check=False)
    assert beyond.returncode != 0
    assert flat(RULES["scaling-external-replicas-in-bounds"].message) in flat(beyond.stderr)
