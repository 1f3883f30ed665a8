"""Build modeldeploy's container images without Docker or Docker Hub, and cache them by content.

The real node of the e2e tier runs the operator and serving images, but the machines this
project is tested on have no container daemon and cannot reach Docker Hub; they do reach the
Debian mirror and PyPI. So the base image is made from Debian packages with mmdebstrap, the
Dockerfiles in docker/ are built on it with buildah (daemonless; the Dockerfiles take the base
as ``--build-arg BASE_IMAGE``, so they are the ones users build with Docker), and each image is
exported as an OCI archive to ``<cache>/images/``, named by a hash of everything it is built
from. A second run, or any run with the same sources, reuses the archive without building, and
buildah's layer cache makes a rebuild after a code change reinstall only modeldeploy, not torch.
``push_image`` copies an archive into the node's registry with skopeo.

Images: ``operator`` (docker/operator.Dockerfile), ``serving-cpu`` (docker/serving.Dockerfile
with ENGINE=cpu) and the real node's ``pause``. Needs root and
``apt-get install buildah mmdebstrap skopeo``. Stdlib only, like binaries.py, so it runs
before the virtualenv exists.
Usage: ``python3 -m cluster.images [operator|serving-cpu ...]`` with ``e2e`` on PYTHONPATH; it
prints the archive of each image, building what is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cluster import binaries
from cluster.binaries import cache_root

ROOT = Path(__file__).resolve().parents[2]
LOG_TAIL_LINES = 30  # how much of a failed command's output the error message quotes
KEEP_ARCHIVES = 2  # per image: the current one and the one before (another checkout may use it)

# The base image, from Debian packages: what the Dockerfiles' RUN lines need (python and venv,
# groupadd/useradd from passwd, apt for the serving image's gcc), and the mirror apt uses on
# these machines. It replaces python:3.11-slim-bookworm (Docker Hub), which runs the same
# commands; its python is Debian's 3.11 instead of a source build.
SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
BASE_PACKAGES = ("python3.11", "python3-venv", "python-is-python3", "ca-certificates", "passwd")
# As Debian's slim images: no manuals, docs or translations; mmdebstrap also writes these to
# /etc/dpkg/dpkg.cfg.d/, so packages the Dockerfiles install later leave them out too.
DPKG_OPTIONS = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
)
BASE_CONFIG = ("--env", "LANG=C.UTF-8", "--cmd", "python3")
BASE_REPOSITORY = "localhost/modeldeploy-base"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's; Debian's pip and uv read it


class ImageBuildError(RuntimeError):
    """An image could not be built, exported or pushed; the message names the part and its log."""


@dataclass(frozen=True)
class Image:
    """One image: its Dockerfile and build arguments, all relative to the repository root."""

    name: str
    dockerfile: str
    build_args: dict[str, str] = field(default_factory=dict)
    # What the Dockerfile COPYs from the build context; hashed into the image's tag.
    inputs: tuple[str, ...] = ("pyproject.toml", "README.md", "operator", "serving")
    # The Dockerfile declares ARG UV_CACHE_DIR: the build may use the host's uv cache.
    uv_cache: bool = False


IMAGES: dict[str, Image] = {
    image.name: image
    for image in (
        Image("operator", "docker/operator.Dockerfile"),
        Image(
            "serving-cpu",
            "docker/serving.Dockerfile",
            build_args={"ENGINE": "cpu"},
            inputs=("pyproject.toml", "README.md", "operator", "serving", "requirements"),
            uv_cache=True,
        ),
        # The real node's sandbox image (e2e/cluster/node.py): built from the Dockerfile alone.
        Image("pause", "e2e/cluster/pause.Dockerfile", inputs=()),
    )
}


# -- content hashes ---------------------------------------------------------------------------
def mmdebstrap_command(output: str) -> list[str]:
    """The command that makes the base's root filesystem as a tarball at `output`."""
    return [
        "mmdebstrap",
        "--variant=minbase",
        f"--include={','.join(BASE_PACKAGES)}",
        *(f"--dpkgopt={option}" for option in DPKG_OPTIONS),
        "--aptopt=Acquire::Retries 3",
        "--skip=output/dev",  # the runtime mounts its own /dev; device nodes have no place here
        "--format=tar",
        SUITE,
        output,
        *MIRRORS,
    ]


def base_ref() -> str:
    """The base image's local name: the suite and a hash of its recipe."""
    recipe = [*mmdebstrap_command("OUTPUT"), *BASE_CONFIG]
    digest = hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:16]
    return f"{BASE_REPOSITORY}:{SUITE}-{digest}"


def _file_digests(relative: str) -> Iterator[bytes]:
    """Path and content hash of a file, or of every file under a folder (no mtimes: clones
    differ). Bytecode caches are skipped: the images are built from the sources, and tests on
    the host rewrite the caches all the time."""
    path = ROOT / relative
    for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if "__pycache__" in file.parts or file.suffix == ".pyc" or not file.is_file():
            continue
        yield file.relative_to(ROOT).as_posix().encode() + b"\0"
        yield hashlib.sha256(file.read_bytes()).digest()


def image_tag(name: str) -> str:
    """A hash of everything the image is built from: Dockerfile, inputs, build args, base."""
    image = IMAGES[name]
    digest = hashlib.sha256(json.dumps([base_ref(), sorted(image.build_args.items())]).encode())
    for relative in (image.dockerfile, *image.inputs):
        for chunk in _file_digests(relative):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def images_dir() -> Path:
    """Archives, the base's rootfs tarball and build logs: beside the cached cluster binaries."""
    return cache_root() / "images"


# -- running tools ----------------------------------------------------------------------------
def _require(tool: str, part: str) -> None:
    """Fail early, naming the part and the package, rather than deep inside a build."""
    if shutil.which(tool) is None:
        raise ImageBuildError(
            f"{part}: `{tool}` is not on PATH (apt-get install buildah mmdebstrap skopeo)"
        )


def _run(command: list[str], log: Path, part: str) -> str:
    """Run one command, appending its output to the log; raise naming the part and the log."""
    _require(command[0], part)
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=out, text=True)
        out.write(done.stdout)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
        raise ImageBuildError(
            f"{part} failed ({command[0]} exited {done.returncode}, full log: {log}):\n{tail}"
        )
    return done.stdout


def _fresh_log(stem: str) -> Path:
    """An empty log for one build: a retry after a failure starts a new one."""
    log = images_dir() / "logs" / f"{stem}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    return log


def _has_image(ref: str) -> bool:
    _require("buildah", "base image")
    done = subprocess.run(["buildah", "inspect", "--type", "image", ref], capture_output=True)
    return done.returncode == 0


def _progress(message: str) -> None:
    """On stderr, so that stdout is only the archives' paths."""
    print(message, file=sys.stderr, flush=True)


def _isolation() -> str:
    """chroot: the RUN steps need no namespaces or cgroups, and crun cannot create containers
    on the hybrid cgroup v1/v2 hosts these tests run on. BUILDAH_ISOLATION overrides it."""
    return os.environ.get("BUILDAH_ISOLATION", "chroot")


# -- the base image ---------------------------------------------------------------------------
def ensure_base() -> str:
    """The base image in buildah's storage, made from its cached rootfs tarball, which
    mmdebstrap makes first if missing (about a minute; the tarball survives a storage reset)."""
    ref = base_ref()
    if _has_image(ref):
        return ref
    tag = ref.rsplit(":", 1)[1]
    with binaries.locked(images_dir() / ".base.lock"):
        if _has_image(ref):  # another process may have made it meanwhile
            return ref
        log = _fresh_log(f"base-{tag}")
        rootfs = images_dir() / f"base-{tag}.tar"
        if not rootfs.is_file():
            partial = rootfs.with_suffix(".partial")
            partial.unlink(missing_ok=True)  # left by an interrupted run
            _run(mmdebstrap_command(str(partial)), log, "base image (mmdebstrap)")
            partial.replace(rootfs)
        _import_rootfs(rootfs, ref, log)
    return ref


def _import_rootfs(rootfs: Path, ref: str, log: Path) -> None:
    """A one-layer image from the tarball: `buildah from scratch`, add, config, commit."""
    part = "base image (buildah import)"
    container = _run(["buildah", "from", "scratch"], log, part).strip()
    try:
        _run(["buildah", "add", "--quiet", container, str(rootfs), "/"], log, part)
        _run(["buildah", "config", *BASE_CONFIG, container], log, part)
        _run(["buildah", "commit", "--quiet", container, ref], log, part)
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True)


# -- the images -------------------------------------------------------------------------------
def ensure_image(name: str) -> str:
    """The path of the image's OCI archive, building and exporting the image first if missing.

    A present archive is used as it is, without buildah: its name holds the hash of its
    sources. The archive's image is named localhost/modeldeploy/NAME:TAG."""
    return str(_ensure(name)[0])


def _ensure(name: str) -> tuple[Path, str]:
    """(archive, tag), the tag computed once so that a file edited meanwhile cannot split them."""
    if name not in IMAGES:
        raise KeyError(f"no image named {name!r}; known: {', '.join(IMAGES)}")
    tag = image_tag(name)
    archive = images_dir() / f"{name}-{tag}.oci.tar"
    if archive.is_file():
        return archive, tag
    with binaries.locked(images_dir() / f".{name}.lock"):
        if not archive.is_file():  # another process may have built it meanwhile
            started = time.monotonic()
            _progress(f"building image {name} -> {archive}")
            _build(IMAGES[name], tag, archive)
            _progress(f"built image {name} in {time.monotonic() - started:.0f}s")
            _prune_archives(name)
    return archive, tag


def _build(image: Image, tag: str, archive: Path) -> None:
    """buildah bud with the layer cache on the Debian base, then export as an OCI archive
    (gzip layers, compressed once here rather than at each push)."""
    ref = f"localhost/modeldeploy/{image.name}:{tag}"
    log = _fresh_log(f"{image.name}-{tag}")
    build_args = {"BASE_IMAGE": ensure_base(), **image.build_args}
    # --force-rm: a failed step leaves no working container behind to pin its image.
    command = ["buildah", "bud", "--layers", "--force-rm", "--network", "host"]
    command += ["--isolation", _isolation()]
    command += ["--file", str(ROOT / image.dockerfile), "--tag", ref]
    if image.uv_cache and (uv_cache := _host_uv_cache()):
        # The wheels `make venv` downloaded (torch and the CUDA libraries it brings are GBs):
        # the first build installs from them instead of downloading them again.
        command += ["--volume", f"{uv_cache}:/var/cache/host-uv"]
        build_args["UV_CACHE_DIR"] = "/var/cache/host-uv"
    if bundle := _host_ca_bundle():
        # The RUN steps trust what this machine trusts (a proxy's CA between it and PyPI); the
        # image keeps Debian's bundle.
        command += ["--volume", f"{bundle}:{CA_BUNDLE}:ro"]
    for key, value in build_args.items():
        command += ["--build-arg", f"{key}={value}"]
    started = time.monotonic()
    _run([*command, str(ROOT)], log, f"image {image.name} (buildah bud)")
    _progress(f"image {image.name}: buildah bud took {time.monotonic() - started:.0f}s")
    started = time.monotonic()
    partial = archive.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    part = f"image {image.name} (buildah push to an OCI archive)"
    _run(["buildah", "push", "--quiet", ref, f"oci-archive:{partial}:{ref}"], log, part)
    partial.replace(archive)
    _progress(f"image {image.name}: export took {time.monotonic() - started:.0f}s")


def _host_uv_cache() -> Path | None:
    """uv's cache on this machine, where uv would look for it, if there is one."""
    if env := os.environ.get("UV_CACHE_DIR"):
        path = Path(env)
    else:
        path = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uv"
    return path if path.is_dir() else None


def _host_ca_bundle() -> Path | None:
    """The certificate bundle this machine's TLS clients use, as pip and uv find it."""
    path = Path(os.environ.get("SSL_CERT_FILE") or CA_BUNDLE)
    return path if path.is_file() else None


def _prune_archives(name: str) -> None:
    """Keep the newest archives of one image: each serving archive is GBs."""
    archives = sorted(
        images_dir().glob(f"{name}-*.oci.tar"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for old in archives[KEEP_ARCHIVES:]:
        old.unlink(missing_ok=True)


def push_image(name: str, port: int) -> str:
    """Copy the image into the registry at 127.0.0.1:PORT over plain http, building it first
    if needed; return the reference pods pull it by, 127.0.0.1:PORT/modeldeploy/NAME:TAG."""
    archive, tag = _ensure(name)
    ref = f"127.0.0.1:{port}/modeldeploy/{name}:{tag}"
    log = _fresh_log(f"push-{name}")
    command = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
    _run([*command, f"oci-archive:{archive}", f"docker://{ref}"], log, f"push of image {name}")
    return ref


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", help=f"default: all of {', '.join(IMAGES)}")
    args = parser.parse_args(argv)
    names = args.images or list(IMAGES)
    if unknown := [n for n in names if n not in IMAGES]:
        parser.error(f"unknown image(s): {', '.join(unknown)}")
    return binaries.build_each(names, ensure_image, ImageBuildError)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
