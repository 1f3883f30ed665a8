"""A model source (`spec.model.source`) as a value: its scheme and what follows it, read in one
place for every part that needs it (the served name, the engine's `--model`, the pod's claim,
the local config.json, the streamed schemes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODEL_SOURCE_PATTERN = (
    r"^(hf://[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?"
    r"|s3://[a-z0-9][a-z0-9.-]*[a-z0-9]/.+"
    r"|gs://[a-z0-9][a-z0-9._-]*[a-z0-9]/.+"
    r"|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/.+"
    r"|file:///.+)$"
)
SCHEMES = ("hf", "s3", "gs", "pvc", "file")
# Sources whose weights vLLM streams straight to the GPU, never as files on disk.
STREAMED_SCHEMES = ("s3", "gs")


@dataclass(frozen=True)
class ModelSource:
    scheme: str
    rest: str
    """What follows `scheme://`: ORG/NAME, BUCKET/KEY, CLAIM/PATH or /PATH."""

    @classmethod
    def parse(cls, source: str) -> ModelSource:
        scheme, separator, rest = source.partition("://")
        if not separator or scheme not in SCHEMES:
            raise ValueError(
                f"unsupported model source {source!r}: expected one of "
                + ", ".join(f"{s}://" for s in SCHEMES)
            )
        return cls(scheme, rest)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.rest}"

    @property
    def streamed(self) -> bool:
        return self.scheme in STREAMED_SCHEMES

    @property
    def hub_id(self) -> str | None:
        """ORG/NAME of an hf:// source."""
        return self.rest if self.scheme == "hf" else None

    @property
    def local_path(self) -> Path | None:
        """The folder of a file:// source."""
        return Path(self.rest) if self.scheme == "file" else None

    @property
    def claim(self) -> str | None:
        """The PersistentVolumeClaim of a pvc://CLAIM/PATH source."""
        return self.rest.split("/", 1)[0] if self.scheme == "pvc" else None


def is_streamed(source: str) -> bool:
    """Whether vLLM streams this source's weights (also for a source that does not parse)."""
    return source.partition("://")[0] in STREAMED_SCHEMES
