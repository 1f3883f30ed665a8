"""SHA-256 digests of a model's files: manifests, streaming hashes, and the comparison.

Open weights cannot be audited for what they learned, only pinned: what an operator can promise
is that the bytes a replica loads are exactly the bytes someone reviewed. A manifest maps each
file of a model folder (relative path) to its SHA-256; a replica hashes every listed file before
its engine starts and refuses to start on any difference.

Why the rules are as they are:
- Every listed file must match, and every weight file present must be listed: an extra
  `*.safetensors` beside the audited ones would otherwise be loaded unchecked.
- Files are hashed in a stream of fixed-size chunks (never read whole), so a 60 GB checkpoint
  costs memory of one chunk; independent files are hashed on a few threads, since hashlib
  releases the GIL on large buffers.
- The refusal has one fixed wording (`Mismatch.describe`), and `parse_refusal` reads it back: the
  operator finds the file and both digests in whatever text Ray Serve reports about the failed
  replica, and both sides use this one module, so the wording cannot drift apart.

Pure except for `sha256_file`, `digest_dir` and `verify_dir`, which read files.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

SHA256_PATTERN = r"^[0-9a-f]{64}$"
CHUNK_BYTES = 8 * 1024 * 1024
HASH_THREADS = 2
# Files an engine loads as weights: each one present must be in the manifest.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack")
MISSING = "nothing (file missing)"
UNLISTED = "no digest (file not in the manifest)"
REFUSAL_PREFIX = "model verification failed"

_REFUSAL = re.compile(
    r"(?P<file>[^\s;:]+): sha256 expected (?P<expected>[0-9a-f]{64}|no digest \(file not in the "
    r"manifest\)), got (?P<actual>[0-9a-f]{64}|nothing \(file missing\))"
)


@dataclass(frozen=True)
class Mismatch:
    """One file whose bytes are not the audited ones."""

    file: str
    expected: str
    """The manifest's digest, or UNLISTED for a weight file the manifest does not name."""
    actual: str
    """The digest of the bytes found, or MISSING."""

    def describe(self) -> str:
        return f"{self.file}: sha256 expected {self.expected}, got {self.actual}"


class ModelVerificationError(Exception):
    """Raised by a replica that refuses to load weights whose digests do not match."""

    def __init__(self, mismatches: list[Mismatch]) -> None:
        self.mismatches = mismatches
        super().__init__(refusal_message(mismatches))


@dataclass(frozen=True)
class Manifest:
    """The digests of one model folder, and the revision they were taken from."""

    files: dict[str, str] = field(default_factory=dict)
    revision: str | None = None


def refusal_message(mismatches: list[Mismatch]) -> str:
    return f"{REFUSAL_PREFIX}: " + "; ".join(m.describe() for m in mismatches)


def parse_refusal(text: str) -> list[Mismatch]:
    """The mismatches named in any text that quotes a refusal (a traceback, Serve's message)."""
    found: list[Mismatch] = []
    for match in _REFUSAL.finditer(text):
        mismatch = Mismatch(match["file"], match["expected"], match["actual"])
        if mismatch not in found:
            found.append(mismatch)
    return found


def is_weight_file(name: str) -> bool:
    return name.endswith(WEIGHT_SUFFIXES)


def compare(
    expected: Mapping[str, str], actual: Mapping[str, str], present: Iterable[str]
) -> list[Mismatch]:
    """Mismatches between the manifest and what was found, in file order.

    `actual` holds the digests of the expected files that exist; `present` is every file in the
    folder, so weight files missing from the manifest are caught too.
    """
    mismatches = [
        Mismatch(name, digest, actual.get(name, MISSING))
        for name, digest in sorted(expected.items())
        if actual.get(name) != digest
    ]
    return mismatches + [
        Mismatch(name, UNLISTED, actual.get(name, MISSING)) for name in unlisted(expected, present)
    ]


def unlisted(expected: Mapping[str, str], present: Iterable[str]) -> list[str]:
    """Weight files present in the folder that the manifest does not name."""
    return sorted(n for n in present if is_weight_file(n) and n not in expected)


def sha256_file(path: Path, chunk_bytes: int = CHUNK_BYTES) -> str:
    """The SHA-256 of one file, read in chunks of chunk_bytes into one reused buffer."""
    digest = hashlib.sha256()
    buffer = bytearray(chunk_bytes)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as stream:
        while read := stream.readinto(view):
            digest.update(view[:read])
    return digest.hexdigest()


def list_files(folder: Path) -> list[str]:
    """Every regular file below folder as a relative POSIX path, hidden names left out."""
    names = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        names.append(relative.as_posix())
    return sorted(names)


def _hash_many(folder: Path, names: Iterable[str], threads: int) -> dict[str, str]:
    names = list(names)
    with ThreadPoolExecutor(max(1, threads)) as pool:
        digests = pool.map(lambda name: sha256_file(folder / name), names)
        return dict(zip(names, digests, strict=True))


def digest_dir(folder: Path, threads: int = HASH_THREADS) -> dict[str, str]:
    """file -> sha256 for every file of a model folder (what `modeldeploy digest` writes)."""
    return _hash_many(folder, list_files(folder), threads)


def _inside(folder: Path, name: str) -> bool:
    """True when `name` names a path inside folder (a manifest never reaches outside it)."""
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


def verify_dir(
    folder: Path, expected: Mapping[str, str], threads: int = HASH_THREADS
) -> dict[str, str]:
    """Hash the files the manifest names; return them when all match, else raise.

    Raises ModelVerificationError naming each file and both digests, and ValueError for a
    manifest path that leaves the folder (a ConfigMap manifest never passed the spec's rules).
    """
    outside = [name for name in expected if not _inside(folder, name)]
    if outside:
        raise ValueError(f"digest manifest: paths outside the model folder: {', '.join(outside)}")
    present = list_files(folder)
    existing = [name for name in expected if (folder / name).is_file()]
    actual = _hash_many(folder, existing + unlisted(expected, present), threads)
    mismatches = compare(expected, actual, present)
    if mismatches:
        raise ModelVerificationError(mismatches)
    return {name: actual[name] for name in existing}


def render_manifest(manifest: Manifest) -> str:
    """A manifest as JSON, keys sorted: the same folder always gives the same text."""
    files = dict(sorted(manifest.files.items()))
    document: dict[str, object] = {"algorithm": "sha256", "files": files}
    if manifest.revision:
        document["revision"] = manifest.revision
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def parse_manifest(text: str) -> Manifest:
    """A manifest from JSON (as `modeldeploy digest` writes it) or `sha256sum` output.

    Raises ValueError naming the line or key that is wrong.
    """
    stripped = text.strip()
    if stripped.startswith("{"):
        return _parse_json_manifest(stripped)
    files: dict[str, str] = {}
    for number, line in enumerate(stripped.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not re.fullmatch(SHA256_PATTERN, parts[0]):
            raise ValueError(f"line {number}: expected '<64 hex digits>  <file>', got {line!r}")
        files[parts[1].strip().removeprefix("*").removeprefix("./")] = parts[0]
    return Manifest(files=files)


def _parse_json_manifest(text: str) -> Manifest:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("files"), dict):
        raise ValueError("expected a JSON object with a 'files' object (file -> sha256)")
    if document.get("algorithm", "sha256") != "sha256":
        raise ValueError(f"algorithm: expected sha256, got {document['algorithm']!r}")
    files: dict[str, str] = {}
    for name, digest in document["files"].items():
        if not isinstance(digest, str) or not re.fullmatch(SHA256_PATTERN, digest):
            raise ValueError(f"files.{name}: expected 64 lowercase hex digits, got {digest!r}")
        files[str(name)] = digest
    revision = document.get("revision")
    if revision is not None and not isinstance(revision, str):
        raise ValueError(f"revision: expected a string, got {revision!r}")
    return Manifest(files=files, revision=revision)
