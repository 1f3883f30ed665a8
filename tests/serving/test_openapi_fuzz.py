"""schemathesis against the OpenAPI document the served endpoint publishes (vLLM's FastAPI app,
fetched through HAProxy): generated requests, valid and invalid, to every OpenAI route the
product serves. None may get a 5xx: a bad request is the client's error (4xx), and anything the
schema allows must be served.

The budget is a fixed number of generated cases per operation and mode, so the run is bounded
on a small machine. Generated token limits are clamped before sending (`_bounded`): the engine
is asked for at most a few tokens per choice, which keeps the run short without narrowing what
is validated (the limits' types and the other fields are sent as generated).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from .conftest import Servers

pytestmark = pytest.mark.timeout(1200)

# Cases per operation and generation mode (positive: fits the schema; negative: violates it).
CASES_PER_MODE = 25
GENERATION_ROUTES = ["/v1/chat/completions", "/v1/completions", "/v1/responses"]
EMBEDDING_ROUTES = ["/v1/embeddings"]
# Generous: a hang guard on a shared machine, not a latency target.
REQUEST_TIMEOUT_S = 120.0

# Output limits a generated case may set; clamped so no case asks for a long generation.
TOKEN_LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "min_tokens")
MOST_TOKENS = 8
# Fields that multiply the work per request (choices, beams).
FAN_OUT = ("n", "best_of")
MOST_CHOICES = 2


def _bounded(body: Any) -> Any:
    """`body` with integer token limits and fan-out clamped (other values as generated)."""
    if not isinstance(body, dict):
        return body
    clamped = dict(body)
    for key, most in [(k, MOST_TOKENS) for k in TOKEN_LIMITS] + [
        (k, MOST_CHOICES) for k in FAN_OUT
    ]:
        value = clamped.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > most:
            clamped[key] = most
    return clamped


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)


def _fuzz(base_url: str, routes: list[str], tally: Tally) -> list[str]:
    """Run the generated cases of `routes` against `base_url`; return the operations run."""
    document = httpx.get(f"{base_url}/openapi.json", timeout=60).json()
    schema = schemathesis.openapi.from_dict(document).include(path=routes)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"schemathesis cannot read an operation: {result}"
        operations.append(result.ok())
    session = requests.Session()

    def send(case: Any) -> None:
        case.body = _bounded(case.body)
        response = case.call(base_url=base_url, session=session, timeout=REQUEST_TIMEOUT_S)
        tally.statuses[response.status_code] += 1
        if response.status_code >= 500:
            tally.server_errors.append(
                f"{case.method} {case.path} -> {response.status_code}: "
                f"body={str(case.body)[:400]} headers={case.headers} query={case.query} "
                f"answer={response.text[:400]}"
            )

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)

            @settings(
                max_examples=CASES_PER_MODE,
                deadline=None,
                database=None,
                derandomize=True,
                # Failures are collected, not raised: no shrinking, one pass of generation.
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def run(case: Any) -> None:
                send(case)

            try:
                run()
            except Unsatisfiable:
                # An operation with nothing to violate (GET /v1/models takes no input) has no
                # negative case; every operation must still have positive ones.
                if mode is not GenerationMode.NEGATIVE:
                    raise
    return [f"{op.method.upper()} {op.path}" for op in operations]


def test_no_5xx_on_the_openai_routes(servers: Servers) -> None:
    tally = Tally()
    served = _fuzz(servers.tiny.base_url, ["/v1/models", *GENERATION_ROUTES], tally)
    served += _fuzz(servers.embed.base_url, EMBEDDING_ROUTES, tally)
    print(f"operations: {served}; statuses: {dict(sorted(tally.statuses.items()))}")
    # Every route the product serves was in the document and was exercised.
    for route in ["/v1/models", *GENERATION_ROUTES, *EMBEDDING_ROUTES]:
        assert any(op.endswith(f" {route}") for op in served), (route, served)
    assert sum(tally.statuses.values()) >= len(served) * CASES_PER_MODE
    # Both accepted and refused requests were generated (the fuzzing reached the engine).
    assert any(200 <= s < 300 for s in tally.statuses), tally.statuses
    assert any(400 <= s < 500 for s in tally.statuses), tally.statuses
    assert not tally.server_errors, "\n".join(tally.server_errors[:20])
