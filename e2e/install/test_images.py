"""The two Dockerfiles, checked without a container runtime (there is none on these machines).

Structure: one base, a build argument pinned by tag and digest by default, a numeric non-root
user, exec-form commands, the versions the rest of the project pins, and the build inputs that
e2e/cluster/images.py hashes into the tags of the images it builds. Behaviour: the commands
each image runs are run here, in an environment installed the way the Dockerfile installs it
(operator), or in the project's own environment, which has the serving image's Ray and vLLM
versions (serving).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from cluster import images
from cluster.localcluster import LocalCluster, free_port, wait_until

from modeldeploy_operator.api import ModelDeploymentSpec
from modeldeploy_operator.builders.owner import Owner
from modeldeploy_operator.builders.pods import build_head_pod, build_worker_pod

from .chart import DOCKERFILES, ROOT, documents, of_kind, render

PINNED_BASE = re.compile(r"^[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def exec_form(path: Path, instruction: str) -> list[str]:
    [args] = [a for i, a in instructions(path) if i == instruction]
    parsed: list[str] = json.loads(args)  # exec form: JSON, so signals reach the process
    return parsed


def build_args(steps: list[tuple[str, str]]) -> list[tuple[str, str | None]]:
    """(name, default) of each ARG among the steps, in order; None where it has no default."""
    declared = [args.partition("=") for name, args in steps if name == "ARG"]
    return [(name, value if sep else None) for name, sep, value in declared]


def base_default(path: Path) -> str | None:
    """The default of BASE_IMAGE: declared before the first FROM, as FROM can only use those."""
    steps = instructions(path)
    first_from = next(n for n, (name, _) in enumerate(steps) if name == "FROM")
    return dict(build_args(steps[:first_from])).get("BASE_IMAGE")


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_dockerfile_is_pinned_and_unprivileged(image: str) -> None:
    """Every stage starts from ${BASE_IMAGE} (or an earlier stage), whose default is pinned:
    Docker users build the pinned base, images.py passes its own with --build-arg."""
    steps = instructions(DOCKERFILES[image])
    default = base_default(DOCKERFILES[image])
    assert default and PINNED_BASE.match(default), default
    stages: list[str] = []
    for words in (args.split() for name, args in steps if name == "FROM"):
        assert words[0] in ("${BASE_IMAGE}", *stages), words
        stages += words[2:3] if words[1:2] in (["AS"], ["as"]) else []
    assert words[0] == "${BASE_IMAGE}", "the image itself is on the base, not on a build stage"
    users = [args for name, args in steps if name == "USER"]
    assert users, "no USER: the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) > 0, "a numeric uid lets runAsNonRoot verify it"
    assert not any(name == "ADD" for name, _ in steps), "COPY only: ADD can fetch URLs"


def test_images_share_one_base() -> None:
    bases = {base_default(path) for path in DOCKERFILES.values()}
    assert len(bases) == 1, bases


def test_serving_image_pins_the_engine_the_project_tests() -> None:
    """vLLM, torch (the CPU engine's) and uv: the versions scripts/install.sh installs."""
    script = (ROOT / "scripts" / "install.sh").read_text()
    pinned = dict(re.findall(r"^(\w+_VERSION)=(\S+)$", script, flags=re.MULTILINE))
    declared = [
        (n, v)
        for n, v in build_args(instructions(DOCKERFILES["serving"]))
        if n.endswith("_VERSION")
    ]
    assert {n for n, _ in declared} == {"VLLM_VERSION", "TORCH_VERSION", "UV_VERSION"}
    for name, value in declared:
        assert value == pinned[name], name


@pytest.mark.parametrize("name", sorted(images.IMAGES))
def test_image_tags_hash_every_build_input(name: str) -> None:
    """images.py names each image by a hash of its inputs: a file the Dockerfile COPYs from
    the build context but the hash leaves out would let a stale image be reused."""
    image = images.IMAGES[name]
    copied = [
        args.split()[:-1]
        for step, args in instructions(ROOT / image.dockerfile)
        if step == "COPY" and not args.startswith("--from")
    ]
    for source in {source for c in copied for source in c}:
        assert any(source == i or source.startswith(f"{i}/") for i in image.inputs), source


def test_serving_image_uid_is_the_pods_uid() -> None:
    spec = ModelDeploymentSpec.model_validate({"model": {"source": "hf://org/model"}})
    pod = build_head_pod(Owner(name="m", namespace="ns", uid="u", spec=spec))
    context = pod["spec"]["securityContext"]
    user = [a for i, a in instructions(DOCKERFILES["serving"]) if i == "USER"][-1]
    assert user == f"{context['runAsUser']}:{context['runAsGroup']}"


def test_chart_runs_the_operator_image_as_its_user() -> None:
    [deployment] = of_kind(documents(render()), "Deployment")
    context = deployment["spec"]["template"]["spec"]["securityContext"]
    user = [a for i, a in instructions(DOCKERFILES["operator"]) if i == "USER"][-1]
    assert user == f"{context['runAsUser']}:{context['runAsGroup']}"


# -- the commands the images run --------------------------------------------------------------
def test_serving_image_commands_parse() -> None:
    """The image's default command and the `ray start` commands the operator gives its pods.

    `--help` makes each command parse every argument before it (an unknown flag fails) and stop
    there, so nothing is started.
    """
    bin_dir = Path(sys.executable).parent
    default = exec_form(DOCKERFILES["serving"], "CMD")
    spec = ModelDeploymentSpec.model_validate({"model": {"source": "hf://org/model"}})
    owner = Owner(name="m", namespace="ns", uid="u", spec=spec)
    pod_commands = [
        pod["spec"]["containers"][0]["command"]
        for pod in (build_head_pod(owner), build_worker_pod(owner, 0))
    ]
    for command in [default, *pod_commands]:
        done = subprocess.run(
            [str(bin_dir / command[0]), *command[1:], "--help"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (command, done.stderr[-2000:])


@pytest.fixture(scope="module")
def operator_image_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the project installed as operator.Dockerfile installs it:
    `pip install .` from a copy of the files it COPYs (not editable, only declared
    dependencies), so a dependency the package forgot to declare shows up here."""
    work = tmp_path_factory.mktemp("operator-image")
    src = work / "src"
    copied = [
        args.split() for name, args in instructions(DOCKERFILES["operator"]) if name == "COPY"
    ]
    for *sources, _ in (c for c in copied if not c[0].startswith("--from")):
        for source in sources:
            target = src / source
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / source, target)
    venv = work / "venv"
    uv = [sys.executable, "-m", "uv"]
    subprocess.run([*uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    subprocess.run(
        [*uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), str(src)],
        check=True,
        timeout=600,
    )
    return venv


def test_operator_image_entrypoint_help(operator_image_env: Path) -> None:
    command = exec_form(DOCKERFILES["operator"], "ENTRYPOINT") + exec_form(
        DOCKERFILES["operator"], "CMD"
    )
    done = subprocess.run(
        [str(operator_image_env / "bin" / command[0]), *command[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "--liveness" in done.stdout and "--metrics-port" in done.stdout


def test_operator_image_entrypoint_runs_against_the_cluster(
    operator_image_env: Path, cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    """The image's command with the chart's flags starts and serves /healthz and /metrics:
    nothing it imports at run time is missing from the installed dependencies."""
    metrics, health = free_port(), free_port()
    command = exec_form(DOCKERFILES["operator"], "ENTRYPOINT") + exec_form(
        DOCKERFILES["operator"], "CMD"
    )
    log = tmp_path / "operator.log"
    # Only the image's own environment: no project virtualenv on PATH.
    env = {"PATH": f"{operator_image_env / 'bin'}:/usr/bin:/bin", "POD_ID": "image-check"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(operator_image_env / "bin" / command[0]),
                *command[1:],
                f"--kubeconfig={cluster.kubeconfig}",
                f"--namespace={namespace}",
                f"--metrics-port={metrics}",
                f"--liveness=http://127.0.0.1:{health}/healthz",
                "--log-format=json",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def serving() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            for port, path in ((health, "/healthz"), (metrics, "/metrics")):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2):
                    pass
        except OSError:
            return False
        return True

    try:
        wait_until(serving, 60, "the operator image's command to serve /healthz and /metrics")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
