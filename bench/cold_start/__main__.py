"""`python -m bench.cold_start [--runs N] [--out-dir DIR]`: see the package docstring."""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
from cluster import binaries, images
from cluster.kubeclient import api_client
from cluster.localcluster import LocalCluster, running, wait_until
from kubernetes import client
from realnode import workload

RESULTS = Path(__file__).resolve().parents[1] / "results"
PHASES = (
    "image_pull",
    "container_start",
    "ray_head_up",
    "worker_joined",
    "serve_running",
    "endpoint_answers",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.cold_start", description=__doc__)
    p.add_argument("--runs", type=int, default=3, help="cold starts to measure (median)")
    p.add_argument("--timeout", type=float, default=900.0, help="per run, seconds")
    p.add_argument("--out-dir", type=Path, default=RESULTS, help="where the JSON and .md go")
    return p.parse_args(argv)


def _event_times(core: client.CoreV1Api, namespace: str, pod: str) -> dict[str, datetime]:
    """First time of each event reason about one pod (Pulling, Pulled, Started, ...)."""
    times: dict[str, datetime] = {}
    for event in core.list_namespaced_event(namespace).items:
        if event.involved_object.name != pod:
            continue
        stamp = event.first_timestamp or event.event_time
        if stamp and (event.reason not in times or stamp < times[event.reason]):
            times[event.reason] = stamp
    return times


def _ready_time(core: client.CoreV1Api, namespace: str, pod: str) -> datetime | None:
    status = core.read_namespaced_pod(pod, namespace).status
    ready = next((c for c in status.conditions or [] if c.type == "Ready"), None)
    return ready.last_transition_time if ready and ready.status == "True" else None


def _first_token(base_url: str, deadline: float) -> float:
    """Stream one chat request until a token arrives; retry while the endpoint is not there."""
    api = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=30)
    messages = [{"role": "user", "content": "Say hello"}]
    while time.monotonic() < deadline:
        try:
            stream = api.chat.completions.create(
                model=workload.SERVED_NAME, messages=messages, max_tokens=4, stream=True
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    return time.time()
        except openai.OpenAIError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"no token from {base_url}")


def one_run(
    cluster: LocalCluster, core: client.CoreV1Api, run: int, serving: str, timeout: float
) -> dict[str, float]:
    assert cluster.node is not None
    namespace = f"cold-start-{run}"
    # The image leaves the node, so the run pulls it as a new node would.
    crictl = [str(binaries.binary("crictl")), *cluster.node.crictl_flags()]
    subprocess.run([*crictl, "rmi", serving], capture_output=True, check=False)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    objects = [
        *workload.model_volume(namespace, workload.tiny_model()),
        workload.tiny_model_deployment(serving),
    ]
    applied = time.time()
    workload.apply(cluster, namespace, *objects)
    deadline = time.monotonic() + timeout
    service_ip = wait_until(
        lambda: _service_ip(core, namespace), timeout=120, what="the model's Service"
    )
    token = _first_token(f"http://{service_ip}:8000/v1", deadline)
    head, worker = f"{workload.MODEL}-head", f"{workload.MODEL}-worker-0"
    events = _event_times(core, namespace, head)
    # The status may trail the first token by a resync: wait for Ready=True, then read when.
    md_ready = wait_until(
        lambda: _ready_condition(cluster, namespace), timeout=120, what="Ready=True"
    )
    marks = {
        "image_pull": events["Pulled"].timestamp(),
        "container_start": events["Started"].timestamp(),
        "ray_head_up": _ready_time(core, namespace, head).timestamp(),  # type: ignore[union-attr]
        "worker_joined": _ready_time(core, namespace, worker).timestamp(),  # type: ignore[union-attr]
        "serve_running": datetime.fromisoformat(md_ready["lastTransitionTime"]).timestamp(),
        "endpoint_answers": token,
    }
    result = {f"{name}_at_s": round(marks[name] - applied, 2) for name in PHASES}
    result["image_pull_s"] = round((events["Pulled"] - events["Pulling"]).total_seconds(), 2)
    result["apply_to_first_token_s"] = round(token - applied, 2)
    core.delete_namespace(namespace)
    wait_until(lambda: not _pods(core, namespace), timeout=180, what=f"{namespace} emptied")
    return result


def _ready_condition(cluster: LocalCluster, namespace: str) -> dict[str, Any] | None:
    ready = workload.condition(workload.read_md(cluster_admin(cluster), namespace), "Ready")
    return ready if ready.get("status") == "True" else None


def _pods(core: client.CoreV1Api, namespace: str) -> list[Any]:
    return list(core.list_namespaced_pod(namespace).items)


def _service_ip(core: client.CoreV1Api, namespace: str) -> str | None:
    try:
        ip: str = core.read_namespaced_service(workload.MODEL, namespace).spec.cluster_ip
    except client.ApiException:
        return None
    return ip


_admins: dict[int, client.ApiClient] = {}


def cluster_admin(cluster: LocalCluster) -> client.ApiClient:
    return _admins.setdefault(id(cluster), api_client(cluster))


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Cold start on the real node",
        "",
        f"{report['generated']}; {report['runs']} runs of `python -m bench.cold_start`; "
        "seconds after `kubectl apply` (events have one-second resolution).",
        "",
        "| run | " + " | ".join(PHASES) + " | image pull took | apply -> first token |",
        "|" + "---|" * (len(PHASES) + 3),
    ]
    for i, run in enumerate(report["results"], 1):
        cells = [str(run[f"{p}_at_s"]) for p in PHASES]
        lines.append(
            f"| {i} | "
            + " | ".join(cells)
            + f" | {run['image_pull_s']} | {run['apply_to_first_token_s']} |"
        )
    s = report["summary"]
    lines += ["", f"Median apply -> first token: **{s['apply_to_first_token_s']} s**."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    refs = {}
    results: list[dict[str, float]] = []
    with running(nodes=(), real_node=True) as cluster:
        assert cluster.node is not None
        refs = {n: images.push_image(n, cluster.node.registry_port) for n in images.IMAGES
                if n != "pause"}  # fmt: skip
        scratch = Path(tempfile.mkdtemp(prefix="cold-start-"))
        try:
            workload.install_release(cluster, refs, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        core = client.CoreV1Api(cluster_admin(cluster))
        for run in range(1, args.runs + 1):
            results.append(one_run(cluster, core, run, refs["serving-cpu"], args.timeout))
            print(json.dumps(results[-1]), flush=True)
    summary = {
        key: round(statistics.median(r[key] for r in results), 2)
        for key in ("apply_to_first_token_s", "image_pull_s", *(f"{p}_at_s" for p in PHASES))
    }
    report = {
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "runs": args.runs,
        "images": refs,
        "results": results,
        "summary": summary,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "cold-start.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out_dir / "cold-start.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
