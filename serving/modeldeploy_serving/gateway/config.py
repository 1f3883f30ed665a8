"""What the gateway serves: the `GatewayConfig`, one route per model name.

The operator builds it for a namespace from its ModelDeployments (a pure function on its side)
and ships it as a file in a ConfigMap; `modeldeploy serve -f FILE` builds it for the models of
the file. Secrets never appear in it: it names where each is read from (a file, such as a key of
a mounted Kubernetes Secret, or an environment variable), so the config can be logged, hashed
and shown without leaking a key.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

OverflowWhen = Literal["ColdStart", "Saturated"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretSource(_Model):
    """Where one secret value is read from: exactly one of a file and an environment variable."""

    file: str | None = Field(
        default=None, min_length=1, description="Path of a file holding the value."
    )
    env: str | None = Field(
        default=None, min_length=1, description="Name of an environment variable holding it."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.file is None) == (self.env is None):
            raise ValueError("set exactly one of file and env")
        return self


class OverflowTarget(_Model):
    """An OpenAI-compatible provider that takes a model's requests when the local pool can't."""

    base_url: str = Field(
        pattern=r"^https?://",
        description="Provider base URL including the API version, e.g. https://api.openai.com/v1.",
    )
    model: str = Field(min_length=1, description="The model name at the provider.")
    api_key: SecretSource | None = Field(
        default=None, description="The provider API key, sent as a Bearer token."
    )
    when: tuple[OverflowWhen, ...] = Field(
        default=("ColdStart", "Saturated"),
        description="Causes that send a request to the provider.",
    )
    max_queue_wait_s: float = Field(
        default=5.0,
        ge=0,
        description=(
            "Longest expected local queue wait a request accepts before it overflows; also the "
            "bound on how long connecting to the provider may take."
        ),
    )


class LocalRoute(_Model):
    """One locally served model: where its OpenAI API is and how its replicas are observed."""

    name: str = Field(min_length=1, description="The name clients pass as `model`.")
    base_url: str = Field(
        pattern=r"^https?://",
        description="Base of the model's OpenAI API, without /v1 (e.g. http://NAME.NS.svc:8000).",
    )
    app_name: str = Field(min_length=1, description="Ray Serve application serving the model.")
    dashboard_url: str | None = Field(
        default=None,
        description=(
            "Ray dashboard whose Serve API reports the application's replicas. None: the Serve "
            "instance this process is connected to (the local run)."
        ),
    )
    slots_per_replica: int = Field(
        ge=1, description="Requests one replica's engine runs at once (its max_num_seqs)."
    )
    admitted_per_replica: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Requests Serve sends one replica at once (max_ongoing_requests; those beyond "
            "slots_per_replica wait in the engine). None: slots_per_replica."
        ),
    )
    max_queued_requests: int = Field(
        default=-1,
        ge=-1,
        description=(
            "Requests Serve holds in front of the replicas once each has admitted its share; "
            "beyond it 429. -1: no limit."
        ),
    )
    api_keys: SecretSource | None = Field(
        default=None,
        description="Accepted client API keys, one per line. None: no key needed.",
    )
    overflow: OverflowTarget | None = Field(
        default=None, description="Where requests go when the local replicas can't take them."
    )
    local_only: bool = Field(
        default=False, description="Nothing of this model ever leaves the local replicas."
    )

    def waiting_room(self, ready_replicas: int) -> int:
        """Requests that may wait locally beyond the running ones before Serve answers 429;
        -1 for no limit."""
        if self.max_queued_requests < 0:
            return -1
        admitted = self.admitted_per_replica or self.slots_per_replica
        return max(0, ready_replicas) * max(0, admitted - self.slots_per_replica) + (
            self.max_queued_requests
        )

    @model_validator(mode="after")
    def _local_only_has_no_overflow(self) -> LocalRoute:
        if self.local_only and self.overflow is not None:
            raise ValueError(f"route {self.name!r}: local_only forbids overflow")
        return self


class HostedRoute(_Model):
    """A model served only by a provider, listed and routed like a local one."""

    name: str = Field(min_length=1, description="The name clients pass as `model`.")
    target: OverflowTarget = Field(description="The provider, its model name and key.")
    api_keys: SecretSource | None = Field(
        default=None,
        description="Accepted client API keys, one per line. None: no key needed.",
    )


class GatewayConfig(_Model):
    """Every model one gateway serves."""

    routes: tuple[LocalRoute, ...] = Field(default=(), description="Locally served models.")
    hosted: tuple[HostedRoute, ...] = Field(default=(), description="Provider-only models.")
    poll_interval_s: float = Field(
        default=0.5, gt=0, description="How often the replicas of each local model are read."
    )
    key_reload_s: float = Field(
        default=10.0, gt=0, description="How often key files are read again (key rotation)."
    )
    max_request_bytes: int = Field(
        default=32 * 2**20, gt=0, description="Largest request body accepted; larger: 413."
    )
    request_read_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Longest a client may take to send its request line and headers, and then its "
            "body; slower: 408. A client that stalls then holds no connection for long (the "
            "serving proxy's own client timeout)."
        ),
    )

    @model_validator(mode="after")
    def _names_unique(self) -> GatewayConfig:
        names = [r.name for r in self.routes] + [h.name for h in self.hosted]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique across routes and hosted: {duplicates}")
        return self

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): stable for hashing and for shipping in a ConfigMap."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
