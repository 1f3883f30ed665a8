"""Digest manifests, the streaming hash, the comparison and the refusal's wording (real files)."""

from __future__ import annotations

import hashlib
import multiprocessing
import time
from pathlib import Path

import pytest

from modeldeploy_serving.digests import (
    MISSING,
    UNLISTED,
    Manifest,
    Mismatch,
    ModelVerificationError,
    compare,
    digest_dir,
    parse_manifest,
    parse_refusal,
    render_manifest,
    sha256_file,
    verify_dir,
)
from modeldeploy_serving.model_files import (
    cache_key,
    fetch_once,
    is_hub_id,
    progress_line,
    select_files,
)

A = "a" * 64
B = "b" * 64


def model_folder(root: Path) -> Path:
    folder = root / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 4096)
    (folder / "sub" / "tokenizer.json").write_text("{}")
    (folder / ".hidden-marker").write_text("not part of the model")
    return folder


def flip_one_byte(path: Path, offset: int = 1000) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_sha256_file_streams_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 1_000_003)
    expected = hashlib.sha256(b"x" * 1_000_003).hexdigest()
    assert sha256_file(path, chunk_bytes=4096) == expected
    assert sha256_file(path) == expected


def test_digest_dir_lists_every_file_but_hidden_ones(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    digests = digest_dir(folder)
    assert sorted(digests) == ["config.json", "model.safetensors", "sub/tokenizer.json"]
    assert digests["config.json"] == hashlib.sha256(b'{"model_type": "llama"}').hexdigest()


def test_verify_dir_accepts_the_audited_bytes(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    digests = digest_dir(folder)
    assert verify_dir(folder, digests) == digests


def test_one_flipped_byte_is_refused_naming_file_and_both_digests(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    digests = digest_dir(folder)
    flip_one_byte(folder / "model.safetensors")
    found = sha256_file(folder / "model.safetensors")
    with pytest.raises(ModelVerificationError) as refused:
        verify_dir(folder, digests)
    assert refused.value.mismatches == [
        Mismatch("model.safetensors", digests["model.safetensors"], found)
    ]
    text = str(refused.value)
    assert "model.safetensors" in text
    assert digests["model.safetensors"] in text and found in text


def test_missing_and_unlisted_weight_files_are_refused(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    digests = digest_dir(folder)
    (folder / "sub" / "tokenizer.json").unlink()
    (folder / "extra.safetensors").write_bytes(b"unaudited")
    with pytest.raises(ModelVerificationError) as refused:
        verify_dir(folder, digests)
    assert refused.value.mismatches == [
        Mismatch("sub/tokenizer.json", digests["sub/tokenizer.json"], MISSING),
        Mismatch("extra.safetensors", UNLISTED, hashlib.sha256(b"unaudited").hexdigest()),
    ]


def test_compare_is_pure_and_ordered() -> None:
    expected = {"b.safetensors": B, "a.json": A}
    assert compare(expected, {"a.json": A, "b.safetensors": B}, ["a.json", "b.safetensors"]) == []
    assert compare(expected, {"a.json": B}, ["a.json"]) == [
        Mismatch("a.json", A, B),
        Mismatch("b.safetensors", B, MISSING),
    ]
    # Files that are not weights may sit beside the listed ones (a README, a license).
    assert compare({"a.json": A}, {"a.json": A}, ["a.json", "README.md"]) == []


def test_refusal_wording_round_trips_through_any_surrounding_text() -> None:
    mismatches = [Mismatch("model-00001.safetensors", A, B), Mismatch("x.bin", UNLISTED, A)]
    text = str(ModelVerificationError(mismatches))
    traceback = f"Traceback (most recent call last):\n  ...\nModelVerificationError: {text}\n"
    assert parse_refusal(f"A replica failed to start with exception. Error:\n{traceback}") == (
        mismatches
    )
    assert parse_refusal("RuntimeError: CUDA out of memory") == []


def test_manifest_round_trip_and_sha256sum_format() -> None:
    manifest = Manifest(files={"z.safetensors": B, "a.json": A}, revision="c" * 40)
    text = render_manifest(manifest)
    assert text.index('"a.json"') < text.index('"z.safetensors"')
    assert parse_manifest(text) == manifest
    sha256sum = f"{A}  a.json\n{B} *./z.safetensors\n"
    assert parse_manifest(sha256sum) == Manifest(files={"a.json": A, "z.safetensors": B})


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('{"files": {"a.json": "nope"}}', "files.a.json"),
        ('{"files": []}', "'files' object"),
        ('{"algorithm": "md5", "files": {}}', "algorithm"),
        ("not-a-digest  a.json", "line 1"),
        ("{broken", "not valid JSON"),
    ],
)
def test_bad_manifests_name_what_is_wrong(text: str, names: str) -> None:
    with pytest.raises(ValueError, match=None) as error:
        parse_manifest(text)
    assert names in str(error.value)


def test_select_files_picks_what_an_engine_loads() -> None:
    sizes = {
        "config.json": 1,
        "model-00001-of-00002.safetensors": 10,
        "model-00002-of-00002.safetensors": 10,
        "pytorch_model.bin": 20,
        "tokenizer.json": 1,
        "chat_template.jinja": 1,
        "original/model.safetensors": 20,
        "modeling_custom.py": 1,
        "README.md": 1,
    }
    assert select_files(sizes) == [
        "chat_template.jinja",
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "tokenizer.json",
    ]
    assert select_files({"pytorch_model.bin": 1, "config.json": 1}) == [
        "config.json",
        "pytorch_model.bin",
    ]


def test_progress_and_keys() -> None:
    assert progress_line("openai/gpt-oss-20b", 3, 14, 5_200_000_000, 13_800_000_000) == (
        "downloading openai/gpt-oss-20b: 3/14 files, 5.20/13.80 GB (38%)"
    )
    assert cache_key("openai/gpt-oss-20b", None) == "openai--gpt-oss-20b@main"
    assert is_hub_id("openai/gpt-oss-20b")
    assert not is_hub_id("/models/tiny") and not is_hub_id("s3://bucket/model")


def _fetch_in_process(cache: str, source: str, started: float, out: str) -> None:
    def fetch() -> Path:
        # A slow copy: the other process must wait for it, not start its own.
        target = Path(cache) / "copied"
        target.mkdir(exist_ok=True)
        time.sleep(0.5)
        (target / "weights").write_bytes(Path(source).read_bytes())
        with Path(out).open("a") as log:
            log.write("fetched\n")
        return target

    folder, fetched = fetch_once(Path(cache), "model@main", fetch, lambda _: None, "model")
    with Path(out).open("a") as log:
        log.write(f"{fetched} {folder}\n")


def test_fetch_once_fetches_once_under_a_lock(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.write_bytes(b"weights")
    cache, out = tmp_path / "cache", tmp_path / "out.log"
    cache.mkdir()
    context = multiprocessing.get_context("spawn")
    args = (str(cache), str(source), time.monotonic(), str(out))
    processes = [context.Process(target=_fetch_in_process, args=args) for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    lines = out.read_text().splitlines()
    assert lines.count("fetched") == 1
    results = sorted(line for line in lines if line != "fetched")
    assert results == sorted([f"True {cache / 'copied'}"] + [f"False {cache / 'copied'}"] * 2)
    assert (cache / "copied" / "weights").read_bytes() == b"weights"


def test_last_progress_reads_the_replicas_own_lines_through_rays_prefix() -> None:
    from modeldeploy_serving.model_files import last_progress

    log = (
        "(ServeReplica:tiny:VLLMServer pid=4242) INFO engine starting\n"
        "(ServeReplica:tiny:VLLMServer pid=4242) modeldeploy: downloading org/m: 1/3 files, "
        "0.10/0.30 GB (33%)\n"
        "modeldeploy: downloading org/m: 2/3 files, 0.20/0.30 GB (67%)\n"
        "WARNING something else\n"
    )
    assert last_progress(log) == "downloading org/m: 2/3 files, 0.20/0.30 GB (67%)"
    assert last_progress("nothing of ours\n") is None


def test_prepare_model_verifies_and_logs_the_refusal(tmp_path: Path) -> None:
    from modeldeploy_serving.config import ServingConfig, Verification
    from modeldeploy_serving.model_files import prepare_model

    folder = model_folder(tmp_path)
    verify = Verification(revision="c" * 40, digests=digest_dir(folder))
    config = ServingConfig(
        model=str(folder),
        served_model_name="m",
        accelerator="cpu",
        gpus_per_replica=0,
        verify=verify,
    )
    lines: list[str] = []
    assert prepare_model(config, lines.append) == config
    assert lines[0] == f"verifying 3 files (revision {'c' * 40})"
    assert lines[1].startswith("verified 3 files, 0.001 GB")

    flip_one_byte(folder / "model.safetensors")
    lines.clear()
    with pytest.raises(ModelVerificationError):
        prepare_model(config, lines.append)
    assert parse_refusal(lines[-1])[0].file == "model.safetensors"


@pytest.mark.parametrize("name", ["../secret", "a/../../secret", "/etc/passwd"])
def test_a_manifest_never_reaches_outside_the_folder(tmp_path: Path, name: str) -> None:
    folder = model_folder(tmp_path)
    with pytest.raises(ValueError, match="outside the model folder"):
        verify_dir(folder, {name: A})


HUB_PROBE = """
import sys
from modeldeploy_serving.config import ServingConfig, Verification
from modeldeploy_serving.model_files import prepare_model
digests = dict(arg.split("=", 1) for arg in sys.argv[1:])
config = ServingConfig(
    model="org/tiny", served_model_name="tiny", accelerator="cpu", gpus_per_replica=0,
    verify=Verification(revision=None, digests=digests),
)
print("MODEL", prepare_model(config).model)
"""


def test_a_hub_model_comes_from_the_cache_once_and_is_verified(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    # A Hub cache as huggingface_hub lays it out, read with HF_HUB_OFFLINE=1 (no hub here).
    commit = "e" * 40
    repo = tmp_path / "hub" / "models--org--tiny"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model.safetensors").write_bytes(b"weights")
    digests = digest_dir(snapshot)
    env = {**os.environ, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, "-c", HUB_PROBE, *(f"{k}={v}" for k, v in digests.items())]

    first = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    assert f"MODEL {snapshot}" in first.stdout
    assert "verified 2 files" in first.stderr
    second = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    assert "org/tiny is already in the model cache" in second.stderr
    assert (tmp_path / "hub" / ".modeldeploy-locks" / "org--tiny@main.done").is_file()

    (snapshot / "model.safetensors").write_bytes(b"tampered")
    refused = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert refused.returncode != 0
    assert parse_refusal(refused.stderr)[0].file == "model.safetensors"
