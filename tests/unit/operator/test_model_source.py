"""spec.model.source read once, as a ModelSource, by every part that needs it."""

from __future__ import annotations

from pathlib import Path
from re import fullmatch

import pytest

from modeldeploy_operator.api.source import MODEL_SOURCE_PATTERN, ModelSource, is_streamed
from modeldeploy_operator.builders.serving_config import PVC_MOUNT_ROOT, model_location


@pytest.mark.parametrize(
    ("source", "hub_id", "local_path", "claim", "streamed", "location"),
    [
        ("hf://openai/gpt-oss-20b", "openai/gpt-oss-20b", None, None, False, "openai/gpt-oss-20b"),
        ("file:///models/tiny", None, Path("/models/tiny"), None, False, "/models/tiny"),
        (
            "pvc://weights/llama/8b",
            None,
            None,
            "weights",
            False,
            f"{PVC_MOUNT_ROOT}/weights/llama/8b",
        ),
        ("s3://bucket/llama", None, None, None, True, "s3://bucket/llama"),
        ("gs://bucket/llama", None, None, None, True, "gs://bucket/llama"),
    ],
)
def test_each_scheme(
    source: str,
    hub_id: str | None,
    local_path: Path | None,
    claim: str | None,
    streamed: bool,
    location: str,
) -> None:
    assert fullmatch(MODEL_SOURCE_PATTERN, source)
    parsed = ModelSource.parse(source)
    assert str(parsed) == source
    assert (parsed.hub_id, parsed.local_path, parsed.claim) == (hub_id, local_path, claim)
    assert parsed.streamed is streamed is is_streamed(source)
    assert model_location(source) == location


@pytest.mark.parametrize("source", ["ftp://host/model", "openai/gpt-oss-20b", ""])
def test_an_unknown_scheme_is_named_with_those_expected(source: str) -> None:
    with pytest.raises(ValueError, match=r"unsupported model source .*expected one of hf://"):
        ModelSource.parse(source)
    assert not is_streamed(source)
