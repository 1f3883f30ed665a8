"""The session's secret scan, on the real apiserver: a value planted in an Event, a
ModelDeployment status and a log line is found in each, named by place and never printed.

The planted Secret is deleted before the namespace is collected for the session's own scan, so
this deliberate leak does not fail the run; the scan of the real run is the same code.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from kubernetes import client
from secret_scan import Ledger, collect_namespace

from .conftest import ModelDeployments
from .test_operator_faults import GPU_SPEC


def test_planted_values_are_found_where_they_were_written(
    crds: None, mds: ModelDeployments, tmp_path: Path
) -> None:
    value = f"planted-{secrets.token_hex(12)}"
    core, namespace = mds.core, mds.namespace
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="planted"), string_data={"k": value}),
    )
    try:
        created = mds.create("leaky", GPU_SPEC)
        mds.custom.patch_namespaced_custom_object_status(
            "modeldeploy.dev",
            "v1alpha1",
            namespace,
            "modeldeployments",
            "leaky",
            {"status": {"endpoint": f"http://user:{value}@leaky.svc:8000/v1"}},
        )
        core.create_namespaced_event(
            namespace,
            client.CoreV1Event(
                metadata=client.V1ObjectMeta(name="leaky.planted"),
                involved_object=client.V1ObjectReference(
                    api_version="modeldeploy.dev/v1alpha1",
                    kind="ModelDeployment",
                    name="leaky",
                    namespace=namespace,
                    uid=created["metadata"]["uid"],
                ),
                reason="Planted",
                message=f"token {value} rejected",
                type="Warning",
            ),
        )
        log = tmp_path / "planted.log"
        log.write_text(f"INFO start\nDEBUG sending Authorization: Bearer {value}\n")

        ledger = Ledger(logs={log})
        collect_namespace(ledger, core.api_client, namespace)
        leaks = ledger.leaks()
        secret = f"Secret {namespace}/planted key k"
        assert leaks == [
            f"the value of {secret} appears in Event {namespace}/leaky.planted on leaky",
            f"the value of {secret} appears in status of ModelDeployment {namespace}/leaky",
            f"the value of {secret} appears in log {log} (line 2)",
        ]
        assert not [leak for leak in leaks if value in leak]
    finally:
        core.delete_namespaced_secret("planted", namespace)
