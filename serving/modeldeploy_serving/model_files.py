"""Getting a replica's model files ready before its engine starts: download once, then verify.

Every replica calls `prepare_model` in its own process before vLLM loads anything:
- A hub model (`org/name`) is downloaded into the Hub cache (`HF_HOME`, which the worker pods
  point at the model cache volume) under an exclusive file lock in that cache. Replicas sharing a
  node and a cache volume therefore download it once: the first takes the lock and downloads,
  the others wait, then find the finished marker and go straight on, without even asking the
  Hub. Progress (files and bytes) is logged after each file. The engine is then given the local
  snapshot folder, so vLLM itself never downloads.
- With `verify`, every listed file is hashed (streaming SHA-256) and compared with the audited
  digests; any difference raises ModelVerificationError naming the file and both digests, and
  the engine never starts.

`select_files`, `progress_line` and `cache_key` are pure; the rest reads, writes and downloads.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from modeldeploy_serving.config import ServingConfig
from modeldeploy_serving.digests import ModelVerificationError, verify_dir

Log = Callable[[str], None]
LOCK_DIR = ".modeldeploy-locks"
LOG_PREFIX = "modeldeploy: "
# What an engine reads from a model repository: configuration, tokenizer, chat template,
# weights. Never code (`*.py`), and never the subfolders (gpt-oss ships a second, original copy
# of its weights under original/).
_ALWAYS = (".json", ".model", ".tiktoken", ".txt", ".jinja")
_PREFERRED_WEIGHTS = (".safetensors",)
_FALLBACK_WEIGHTS = (".bin", ".pt")


def log_line(message: str) -> None:
    """Replica logs: Ray keeps them per replica and forwards them to a local driver's console;
    the operator reads the last one back (`last_progress`) into status and events.

    Ray Serve may take a replica's sys.stderr over into its own log file of the replica (it
    does with its throughput-optimized settings); the line then also goes to the process's own
    stderr, which Ray keeps in the worker's log and forwards to a local run's console.
    """
    line = f"{LOG_PREFIX}{message}\n"
    for stream in dict.fromkeys(s for s in (sys.stderr, sys.__stderr__) if s is not None):
        stream.write(line)
        stream.flush()


def last_progress(log: str) -> str | None:
    """The last step a replica reported (download, wait, verification) in its log's text, with
    whatever Ray put in front of the line removed; None when it reported none."""
    found = None
    for line in log.splitlines():
        at = line.find(LOG_PREFIX)
        if at >= 0:
            found = line[at + len(LOG_PREFIX) :].strip()
    return found


def is_hub_id(model: str) -> bool:
    """True for `org/name` (or `name`); False for a folder path or a streamed URI."""
    return "://" not in model and not model.startswith(("/", ".", "~")) and not Path(model).exists()


def select_files(sizes: Mapping[str, int]) -> list[str]:
    """The files of a repository (name -> size) that an engine needs, as vLLM would pick them:
    top-level configuration and tokenizer files, and safetensors weights when there are any
    (else .bin/.pt)."""
    top = [name for name in sizes if "/" not in name]
    weights = [n for n in top if n.endswith(_PREFERRED_WEIGHTS)] or [
        n for n in top if n.endswith(_FALLBACK_WEIGHTS)
    ]
    return sorted({n for n in top if n.endswith(_ALWAYS)} | set(weights))


def progress_line(repo: str, files_done: int, files: int, bytes_done: int, total: int) -> str:
    share = 100.0 * bytes_done / total if total else 100.0
    return (
        f"downloading {repo}: {files_done}/{files} files, "
        f"{bytes_done / 1e9:.2f}/{total / 1e9:.2f} GB ({share:.0f}%)"
    )


def cache_key(repo: str, revision: str | None) -> str:
    return f"{repo.replace('/', '--')}@{revision or 'main'}"


@contextmanager
def file_lock(path: Path, log: Log, waiting: str) -> Iterator[None]:
    """Hold an exclusive flock on path; log `waiting` once if another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(waiting)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def fetch_once(
    cache: Path, key: str, fetch: Callable[[], Path], log: Log, what: str
) -> tuple[Path, bool]:
    """(folder, fetched): run `fetch` unless a finished fetch of `key` is recorded in `cache`.

    Under an exclusive lock in the cache, so replicas sharing the cache fetch once; the marker
    is written only after `fetch` returns, so a crash half-way leaves no false "done".
    """
    locks = cache / LOCK_DIR
    done = locks / f"{key}.done"
    with file_lock(locks / f"{key}.lock", log, f"waiting for another replica to fetch {what}"):
        if done.is_file() and Path(done.read_text().strip()).is_dir():
            return Path(done.read_text().strip()), False
        folder = fetch()
        staging = done.with_suffix(".tmp")
        staging.write_text(str(folder) + "\n")
        staging.replace(done)
        return folder, True


def download_hub_model(
    repo: str, revision: str | None, files: list[str] | None, log: Log = log_line
) -> Path:
    """The local snapshot folder of repo@revision, downloading it once per cache (see module)."""
    cache = hub_cache_dir()

    def fetch() -> Path:
        from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download

        if constants.HF_HUB_OFFLINE:
            # No hub to ask (HF_HUB_OFFLINE=1): the snapshot must be in the cache already.
            log(f"HF_HUB_OFFLINE is set: using the cached snapshot of {repo}")
            return Path(snapshot_download(repo, revision=revision, local_files_only=True))
        info = HfApi().model_info(repo, revision=revision, files_metadata=True)
        sizes = {s.rfilename: int(s.size or 0) for s in info.siblings or []}
        wanted = sorted(files) if files else select_files(sizes)
        total = sum(sizes.get(name, 0) for name in wanted)
        log(f"downloading {repo}@{info.sha}: {len(wanted)} files, {total / 1e9:.2f} GB")
        done_bytes, snapshot = 0, cache
        for index, name in enumerate(wanted, start=1):
            local = Path(str(hf_hub_download(repo, name, revision=info.sha, cache_dir=cache)))
            snapshot = local.parents[len(Path(name).parts) - 1]
            done_bytes += sizes.get(name, 0)
            log(progress_line(repo, index, len(wanted), done_bytes, total))
        return snapshot

    started = time.monotonic()
    folder, fetched = fetch_once(cache, cache_key(repo, revision), fetch, log, repo)
    if fetched:
        log(f"downloaded {repo} to {folder} in {time.monotonic() - started:.0f} s")
    else:
        log(f"{repo} is already in the model cache: {folder}")
    return folder


def prepare_model(config: ServingConfig, log: Log = log_line) -> ServingConfig:
    """The config the engine starts from: hub models downloaded, digests verified.

    Raises ModelVerificationError when a file differs from its audited digest.
    """
    if is_hub_id(config.model):
        files = sorted(config.verify.digests) if config.verify else None
        folder = download_hub_model(config.model, config.revision, files, log)
        config = config.model_copy(update={"model": str(folder), "revision": None})
    if config.verify is not None:
        folder = Path(config.model)
        revision = f" (revision {config.verify.revision})" if config.verify.revision else ""
        log(f"verifying {len(config.verify.digests)} files{revision}")
        started = time.monotonic()
        try:
            verified = verify_dir(folder, config.verify.digests)
        except ModelVerificationError as refused:
            # Logged as well as raised: the log reaches a local run's console and the
            # operator's status even where the exception's text does not travel.
            log(str(refused))
            raise
        size = sum(os.path.getsize(folder / name) for name in verified)
        seconds = time.monotonic() - started
        log(
            f"verified {len(verified)} files, {size / 1e9:.3f} GB{revision}, "
            f"sha256 in {seconds:.1f} s"
        )
    return config
