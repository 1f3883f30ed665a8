"""The e2e tier's secret scan finds a planted value wherever the operator writes, and names the
place without the value."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from e2e.secret_scan import Ledger, find_leaks, secret_values

TOKEN = "hf_planted-model-token-1234"
KEYS = "ck-first-client-key\nck-second-client-key\n"


def secret(name: str, data: dict[str, str], as_string: bool = False) -> dict[str, Any]:
    if as_string:
        return {"metadata": {"name": name}, "stringData": data}
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"metadata": {"name": name}, "type": "Opaque", "data": encoded}


def event(name: str, message: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "involvedObject": {"kind": "ModelDeployment", "name": "llm"},
        "reason": "InvalidSpec",
        "message": message,
    }


def model_deployment(name: str, status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": status}


def ledger_with(tmp_path: Path, log: str, message: str, status: dict[str, Any]) -> Ledger:
    ledger = Ledger()
    (tmp_path / "operator.log").write_text(log)
    ledger.logs.add(tmp_path / "operator.log")
    ledger.add_namespace(
        "team",
        [secret("hf-token", {"token": TOKEN}), secret("team-keys", {"api-keys": KEYS})],
        [event("llm.1", message)],
        [model_deployment("llm", status)],
    )
    return ledger


def test_clean_run_has_no_leaks(tmp_path: Path) -> None:
    ledger = ledger_with(
        tmp_path,
        "INFO created Ray head pod llm-head\nINFO Secret 'hf-token' key 'token' found\n",
        "Ready=False: spec.model.tokenSecretRef: Secret 'hf-token' has no key 'hf_token'",
        {"phase": "Failed", "conditions": [{"type": "Ready", "message": "no key"}]},
    )
    assert ledger.leaks() == []


def test_finds_a_value_in_a_log_line_an_event_and_a_status(tmp_path: Path) -> None:
    ledger = ledger_with(
        tmp_path,
        f"INFO starting\nDEBUG headers Authorization: Bearer {TOKEN}\nINFO done\n",
        "auth failed for ck-second-client-key",
        {"conditions": [{"type": "Ready", "message": f"download with {TOKEN} failed"}]},
    )
    leaks = ledger.leaks()
    log = tmp_path / "operator.log"
    assert leaks == [
        "the value of Secret team/team-keys key api-keys appears in Event team/llm.1 on llm",
        "the value of Secret team/hf-token key token appears in status of ModelDeployment team/llm",
        f"the value of Secret team/hf-token key token appears in log {log} (line 2)",
    ]
    # The report names the Secret and the place, never the value.
    for leak in leaks:
        assert TOKEN not in leak and "client-key" not in leak


def test_base64_of_a_value_is_a_leak_too() -> None:
    encoded = base64.b64encode(TOKEN.encode()).decode()
    leaks = find_leaks({"log x": f"body: {{'data': {{'token': '{encoded}'}}}}"}, {"t": TOKEN})
    assert leaks == ["the value of t appears in log x"]


def test_every_line_of_a_log_is_numbered() -> None:
    text = "\n".join(["clean"] * 3 + [TOKEN] * 7)
    [leak] = find_leaks({"log x": text}, {"t": TOKEN})
    assert leak == "the value of t appears in log x (line 4, 5, 6, 7, 8 ...)"


def test_short_values_are_not_looked_for() -> None:
    assert find_leaks({"log x": "level=info ok"}, {"t": "ok"}) == []


def test_secret_values_decode_data_and_take_string_data() -> None:
    values = secret_values(
        "team",
        [
            secret("a", {"token": TOKEN}),
            secret("b", {"k": "plain-string-value"}, as_string=True),
            {"metadata": {"name": "bin"}, "data": {"blob": base64.b64encode(b"\xff\xfe").decode()}},
        ],
    )
    assert values == {
        "Secret team/a key token": TOKEN,
        "Secret team/b key k": "plain-string-value",
    }
