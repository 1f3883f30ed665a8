"""No secret value anywhere the operator writes: its logs, its Events, ModelDeployment statuses.

The e2e tier puts API keys, provider keys and model tokens in Secrets. Before each test namespace
is deleted, its Secrets' values, Events and ModelDeployment statuses are collected into one
`Ledger`; when the session ends, every operator log is read too and `find_leaks` looks for each
value, as written and base64-encoded (how a Secret's data travels), in all of it. A finding names
the Secret and where its value was seen, never the value itself.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Shorter values would match ordinary words; the tier's secrets are all longer.
MIN_SECRET_LENGTH = 8
# Logs of the operator processes started by the tests (the harness registers each).
OPERATOR_LOGS: list[Path] = []


def _needles(value: str) -> list[str]:
    """The forms a value may be written in: as is, each line of it (a keys file holds one key
    per line), and base64 of it."""
    forms = [value, *(line.strip() for line in value.splitlines())]
    forms.append(base64.b64encode(value.encode()).decode())
    found: list[str] = []
    for form in forms:
        if len(form) >= MIN_SECRET_LENGTH and form not in found:
            found.append(form)
    return found


def find_leaks(texts: Mapping[str, str], secrets: Mapping[str, str]) -> list[str]:
    """One line per (secret, place) where a secret's value appears: `texts` maps where a text
    came from (a log file, an Event, a status) to the text, `secrets` a Secret's name and key to
    its value. Log lines are numbered; values are never repeated in the result."""
    leaks: list[str] = []
    needles = {label: _needles(value) for label, value in secrets.items()}
    for where, text in texts.items():
        lines = text.splitlines()
        for label, forms in needles.items():
            hits = [n for n, line in enumerate(lines, 1) if any(f in line for f in forms)]
            if not hits and any(f in text for f in forms):
                hits = [0]  # across a line break
            if hits:
                at = ", ".join(str(n) for n in hits[:5]) + (" ..." if len(hits) > 5 else "")
                where_in = f"{where} (line {at})" if len(lines) > 1 and hits != [0] else where
                leaks.append(f"the value of {label} appears in {where_in}")
    return leaks


def secret_values(namespace: str, secrets: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Values of Secrets in API form (data base64, stringData as is), by `Secret ns/name key`."""
    values: dict[str, str] = {}
    for secret in secrets:
        name = secret["metadata"]["name"]
        for key, encoded in (secret.get("data") or {}).items():
            try:
                value = base64.b64decode(encoded).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue  # binary data: no text form to look for
            values[f"Secret {namespace}/{name} key {key}"] = value
        for key, value in (secret.get("stringData") or {}).items():
            values[f"Secret {namespace}/{name} key {key}"] = str(value)
    return values


@dataclass
class Ledger:
    """What the session collected: secret values and the texts they must not appear in."""

    secrets: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    logs: set[Path] = field(default_factory=set)

    def add_namespace(
        self,
        namespace: str,
        secrets: Iterable[Mapping[str, Any]],
        events: Iterable[Mapping[str, Any]],
        model_deployments: Iterable[Mapping[str, Any]],
    ) -> None:
        self.secrets.update(secret_values(namespace, secrets))
        for event in events:
            metadata = event["metadata"]
            involved = event.get("involvedObject") or {}
            where = f"Event {namespace}/{metadata['name']} on {involved.get('name')}"
            self.texts[where] = " ".join(
                str(event.get(k) or "") for k in ("reason", "message", "note", "action")
            )
        for md in model_deployments:
            where = f"status of ModelDeployment {namespace}/{md['metadata']['name']}"
            self.texts[where] = json.dumps(md.get("status") or {}, sort_keys=True)

    def leaks(self) -> list[str]:
        texts = dict(self.texts)
        for log in sorted(self.logs):
            if log.is_file():
                texts[f"log {log}"] = log.read_text(errors="replace")
        return find_leaks(texts, self.secrets)


def collect_namespace(ledger: Ledger, api: Any, namespace: str) -> None:
    """Secrets, Events and ModelDeployment statuses of a namespace into the ledger (`api`: a
    kubernetes.client.ApiClient; imported here only, so find_leaks needs no client)."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api)
    secrets = api.sanitize_for_serialization(core.list_namespaced_secret(namespace).items)
    events = api.sanitize_for_serialization(core.list_namespaced_event(namespace).items)
    mds: list[dict[str, Any]] = []
    try:
        found = client.CustomObjectsApi(api).list_namespaced_custom_object(
            "modeldeploy.dev", "v1alpha1", namespace, "modeldeployments"
        )
        mds = list(found.get("items") or [])
    except ApiException as exc:
        if exc.status != 404:  # 404: the CRD is not installed in this session
            raise
    ledger.add_namespace(namespace, secrets, events, mds)
