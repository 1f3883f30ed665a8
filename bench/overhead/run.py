"""Overhead of the modeldeploy serving path over bare vLLM, measured with vLLM's own benchmark.

Both servers get the very same engine arguments (`ServingConfig.vllm_args()` of
examples/tiny-cpu.yaml) and the very same load (`vllm.benchmarks.serve`, the code behind
`vllm bench serve`, with the openai-chat backend: streamed chat completions, greedy, fixed output
length). For each ingress mode of the serving path, bare vLLM and the serving path are both up
and loaded in alternating batches, one at a time: on a shared machine whose load drifts by
minutes, that keeps the two comparable. Figures are medians over batches; ratios are ours / bare.
Both servers being up means bare vLLM is measured next to an idle Ray (its control loops use a
little CPU); the serving path's own cost is what the ratios show.

    python bench/overhead/run.py                 # full run, writes bench/results/overhead.*
    python bench/overhead/run.py --short --out-dir /tmp/x   # smoke run (make test)
    python bench/overhead/run.py --file examples/llama-3.1-8b-instruct.yaml   # on a GPU node
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from modeldeploy_operator.builders.serving_config import load_serving_config  # noqa: E402
from modeldeploy_serving.config import ServingConfig  # noqa: E402
from modeldeploy_serving.ingress import DEFAULT_INGRESS, INGRESS_MODES  # noqa: E402
from modeldeploy_serving.local import free_port  # noqa: E402
from modeldeploy_serving.procs import ServerProcess, bare_vllm_server  # noqa: E402
from modeldeploy_serving.tiny_model import make_tiny_model  # noqa: E402

EXAMPLE = ROOT / "examples" / "tiny-cpu.yaml"
BARE = "bare"
# The default ingress with the gateway (modeldeploy_serving.gateway) in front: what a model with
# API keys, overflow or localOnly is served through. Compared with bare vLLM like the others,
# and with the plain default ingress in the same run.
GATEWAY = "gateway"
MODES = (*INGRESS_MODES, GATEWAY)

# (result key of vllm.benchmarks.serve, our name, higher is better)
METRICS: list[tuple[str, str, bool]] = [
    ("request_throughput", "request_throughput_rps", True),
    ("output_throughput", "output_tokens_per_s", True),
    ("median_e2el_ms", "e2e_p50_ms", False),
    ("p99_e2el_ms", "e2e_p99_ms", False),
    ("median_ttft_ms", "ttft_p50_ms", False),
    ("p99_ttft_ms", "ttft_p99_ms", False),
    ("mean_itl_ms", "itl_mean_ms", False),
    ("median_itl_ms", "itl_p50_ms", False),
    ("p99_itl_ms", "itl_p99_ms", False),
]


def bench_args(
    base_url: str, config: ServingConfig, concurrency: int, prompts: int, io_len: int
) -> argparse.Namespace:
    from vllm.benchmarks.serve import add_cli_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    return parser.parse_args(
        [
            "--backend", "openai-chat",
            "--base-url", base_url,
            "--endpoint", "/v1/chat/completions",
            "--model", config.served_model_name,
            "--tokenizer", config.model,
            "--dataset-name", "random",
            "--random-input-len", str(io_len),
            "--random-output-len", str(io_len),
            "--num-prompts", str(prompts),
            "--max-concurrency", str(concurrency),
            "--ignore-eos",
            "--temperature", "0",
            "--seed", "0",
            "--percentile-metrics", "ttft,tpot,itl,e2el",
            "--metric-percentiles", "50,99",
            "--disable-tqdm",
        ]
    )  # fmt: skip


def run_load(
    base_url: str, config: ServingConfig, concurrency: int, prompts: int, io_len: int
) -> dict[str, float]:
    from vllm.benchmarks.serve import main as bench_main

    args = bench_args(base_url, config, concurrency, prompts, io_len)
    # vLLM's benchmark prints a long report per run; keep the console to our one-line summary.
    with contextlib.redirect_stdout(io.StringIO()):
        result: dict[str, Any] = bench_main(args)
    if result.get("failed"):
        raise RuntimeError(f"{result['failed']} requests failed against {base_url}")
    return {ours: float(result[theirs]) for theirs, ours, _ in METRICS}


def start(kind: str, config: ServingConfig, serving_file: Path, logs: Path) -> ServerProcess:
    if kind == BARE:
        server = bare_vllm_server(config, logs)
    else:
        # Exactly what a user runs: `modeldeploy serve -f examples/tiny-cpu.yaml`.
        port = free_port()
        argv = [sys.executable, "-m", "modeldeploy_operator.cli", "serve", "-f", str(serving_file)]
        if kind == GATEWAY:
            argv += ["--port", str(port), "--ingress", DEFAULT_INGRESS, "--gateway"]
        else:
            argv += ["--port", str(port), "--ingress", kind]
        server = ServerProcess(argv, port, logs / f"modeldeploy-{kind}-{port}.log", kind)
    began = time.monotonic()
    server.start()
    print(f"  {kind}: ready in {time.monotonic() - began:.0f} s", flush=True)
    return server


def measure(args: argparse.Namespace) -> dict[str, Any]:
    config = load_serving_config(args.file)
    if args.file == EXAMPLE:
        make_tiny_model(config.model)
    logs = Path(tempfile.mkdtemp(prefix="overhead-logs-"))
    print(f"server logs: {logs}", flush=True)
    # runs[mode][side][concurrency] -> one figures dict per batch; side is "bare" or "ours".
    runs: Runs = {}
    failures: dict[str, str] = {}
    bare = start(BARE, config, args.file, logs)
    try:
        for mode in args.modes:
            try:
                ours = start(mode, config, args.file, logs)
            except (RuntimeError, TimeoutError) as error:
                # One mode that cannot start (an overloaded machine) must not lose the others.
                failures[mode] = str(error).splitlines()[0]
                print(f"  {mode}: did not start: {failures[mode]}", flush=True)
                continue
            runs[mode] = {"bare": {c: [] for c in args.concurrency}}
            runs[mode]["ours"] = {c: [] for c in args.concurrency}
            try:
                for server in (bare, ours):
                    run_load(server.base_url, config, 4, args.warmup, args.io_len)
                for concurrency in args.concurrency:
                    prompts = max(args.prompts, args.waves * concurrency)
                    for batch in range(args.rounds):
                        # Alternate which goes first, so neither always follows the other.
                        sides = [("bare", bare), ("ours", ours)]
                        for side, server in sides if batch % 2 == 0 else sides[::-1]:
                            figures = run_load(
                                server.base_url, config, concurrency, prompts, args.io_len
                            )
                            runs[mode][side][concurrency].append(figures)
                    _print_level(mode, concurrency, runs[mode])
            finally:
                ours.stop()
            write(args.out_dir, summarize(args, config, runs, failures))
    finally:
        bare.stop()
    return summarize(args, config, runs, failures)


def _print_level(mode: str, concurrency: int, sides: dict[str, dict[int, list[Any]]]) -> None:
    line = f"    {mode:<18} c={concurrency:<3}"
    for side in ("bare", "ours"):
        batches = sides[side][concurrency]
        rps = statistics.median(b["request_throughput_rps"] for b in batches)
        e2e = statistics.median(b["e2e_p50_ms"] for b in batches)
        line += f" {side} {rps:7.2f} req/s e2e p50 {e2e:7.1f} ms |"
    print(line, flush=True)


Runs = dict[str, dict[str, dict[int, list[dict[str, float]]]]]


def _medians(batches: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(b[name] for b in batches) for _, name, _ in METRICS}


def summarize(
    args: argparse.Namespace, config: ServingConfig, runs: Runs, failures: dict[str, str]
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for mode, sides in runs.items():
        per_c = {}
        for c in args.concurrency:
            ours, bare = _medians(sides["ours"][c]), _medians(sides["bare"][c])
            per_c[str(c)] = {
                "bare": bare,
                "ours": ours,
                "ratio": {k: (ours[k] / bare[k] if bare[k] else None) for k in ours},
                "e2e_p50_delta_ms": ours["e2e_p50_ms"] - bare["e2e_p50_ms"],
            }
        c1 = per_c.get("1")
        results[mode] = {
            "by_concurrency": per_c,
            "goal_throughput_ge_0_97": all(
                v["ratio"]["request_throughput_rps"] >= 0.97 for v in per_c.values()
            ),
            "goal_e2e_p50_within_2ms_at_c1": None if c1 is None else c1["e2e_p50_delta_ms"] <= 2.0,
        }
    return {
        "description": (
            "modeldeploy serving path (a Ray Serve replica hosting vLLM's OpenAI app, local Ray) "
            "vs bare vLLM (python -m vllm.entrypoints.openai.api_server), same engine arguments, "
            "loaded by vllm.benchmarks.serve. Per ingress mode both servers are up and loaded in "
            "alternating batches (never at once), so the shared machine's drift hits both alike; "
            "figures are medians over batches, ratio = ours / bare"
        ),
        "machine": {"cpus": _cpu_count(), "platform": platform.platform()},
        "serving_file": os.path.relpath(args.file, ROOT),
        "engine_args": config.vllm_args(),
        "load": {
            "backend": "openai-chat (streamed)",
            "dataset": "random",
            "input_len": args.io_len,
            "output_len": args.io_len,
            "ignore_eos": True,
            "temperature": 0,
            "prompts_per_batch": {
                str(c): max(args.prompts, args.waves * c) for c in args.concurrency
            },
            "batches_per_server_and_level": args.rounds,
            "niceness_change_for_both_servers": args.nice,
        },
        "default_ingress": DEFAULT_INGRESS,
        "modes": results,
        "modes_that_did_not_start": failures,
        "raw_batches": {
            mode: {side: {str(c): b for c, b in by_c.items()} for side, by_c in sides.items()}
            for mode, sides in runs.items()
        },
    }


def _cpu_count() -> int:
    return os.cpu_count() or 0


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Serving overhead: modeldeploy vs bare vLLM",
        "",
        report["description"] + ".",
        "",
        f"Machine: {report['machine']['cpus']} CPUs, {report['machine']['platform']}. "
        f"Load: {report['load']['backend']}, {report['load']['input_len']} tokens in / "
        f"{report['load']['output_len']} out, "
        f"{report['load']['batches_per_server_and_level']} batches per server and level. "
        f"Default ingress: `{report['default_ingress']}`.",
        "",
        "| ingress | conc. | req/s bare | req/s ours | ratio | out tok/s ratio "
        "| e2e p50 bare | e2e p50 ours | Δ ms | e2e p99 ratio | TTFT p50 bare | TTFT p50 ours "
        "| TTFT p99 ratio | ITL mean bare | ITL mean ours |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, result in report["modes"].items():
        for c, row in result["by_concurrency"].items():
            b, o, r = row["bare"], row["ours"], row["ratio"]
            lines.append(
                f"| {mode} | {c} | {b['request_throughput_rps']:.2f} | "
                f"{o['request_throughput_rps']:.2f} | {r['request_throughput_rps']:.3f} | "
                f"{r['output_tokens_per_s']:.3f} | {b['e2e_p50_ms']:.1f} | {o['e2e_p50_ms']:.1f} | "
                f"{row['e2e_p50_delta_ms']:+.1f} | {r['e2e_p99_ms']:.3f} | "
                f"{b['ttft_p50_ms']:.1f} | {o['ttft_p50_ms']:.1f} | {r['ttft_p99_ms']:.3f} | "
                f"{b['itl_mean_ms']:.2f} | {o['itl_mean_ms']:.2f} |"
            )
    lines += ["", "Goals: throughput >= 0.97x bare at every concurrency; e2e p50 +2 ms at c=1.", ""]
    for mode, result in report["modes"].items():
        throughput = "met" if result["goal_throughput_ge_0_97"] else "missed"
        latency = "met" if result["goal_e2e_p50_within_2ms_at_c1"] else "missed"
        lines.append(f"- `{mode}`: throughput goal {throughput}; latency goal {latency}")
    for mode, error in report.get("modes_that_did_not_start", {}).items():
        lines.append(f"- `{mode}`: did not start in this run ({error})")
    return "\n".join(lines + gateway_vs_plain(report)) + "\n"


def gateway_vs_plain(report: dict[str, Any]) -> list[str]:
    """What the gateway adds to the plain default path, both measured in the same run (each
    against its own alternating bare batches, so the machine's drift cancels)."""
    plain = report["modes"].get(report["default_ingress"])
    gateway = report["modes"].get(GATEWAY)
    if not plain or not gateway:
        return []
    lines = [
        "",
        f"## The gateway in front of `{report['default_ingress']}` (same run)",
        "",
        "| conc. | e2e p50 Δ vs bare, plain | with gateway | gateway adds | req/s ratio, plain "
        "| with gateway |",
        "|---|---|---|---|---|---|",
    ]
    for c, g in gateway["by_concurrency"].items():
        q = plain["by_concurrency"].get(c)
        if q is None:
            continue
        added = g["e2e_p50_delta_ms"] - q["e2e_p50_delta_ms"]
        lines.append(
            f"| {c} | {q['e2e_p50_delta_ms']:+.1f} ms | {g['e2e_p50_delta_ms']:+.1f} ms | "
            f"{added:+.1f} ms | {q['ratio']['request_throughput_rps']:.3f} | "
            f"{g['ratio']['request_throughput_rps']:.3f} |"
        )
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--modes", default=",".join(MODES), help=f"ingress modes, and {GATEWAY} (default + gateway)"
    )
    parser.add_argument(
        "--file",
        type=Path,
        default=EXAMPLE,
        help="the ModelDeployment served by both sides (default: the tiny CPU model)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="batches per server and level")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--prompts", type=int, default=64, help="least prompts per batch")
    parser.add_argument("--waves", type=int, default=12, help="prompts per batch >= waves x c")
    parser.add_argument(
        "--nice",
        type=int,
        default=-10,
        help="niceness change for this process and both servers (negative needs root)",
    )
    parser.add_argument("--warmup", type=int, default=16)
    parser.add_argument("--io-len", type=int, default=32, help="input and output tokens")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--short", action="store_true", help="smoke run: default mode, one round, few prompts"
    )
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="only rewrite overhead.md from this JSON"
    )
    args = parser.parse_args(argv)
    if args.short:
        args.modes, args.rounds, args.concurrency = f"{DEFAULT_INGRESS},{GATEWAY}", 2, "1,8"
        args.prompts, args.waves, args.warmup = 8, 1, 4
    args.modes = [m for m in args.modes.split(",") if m]
    unknown = set(args.modes) - set(MODES)
    if unknown:
        parser.error(f"unknown ingress modes {sorted(unknown)}; choose from {INGRESS_MODES}")
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.file = args.file.resolve()
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.render:
        report = json.loads(args.render.read_text())
        report["default_ingress"] = DEFAULT_INGRESS
        args.render.write_text(json.dumps(report, indent=2) + "\n")
        args.render.with_suffix(".md").write_text(markdown(report))
        return
    _raise_priority(args.nice)
    report = measure(args)
    write(args.out_dir, report)
    print(markdown(report))


def _raise_priority(increment: int) -> None:
    """Both servers (started from here) inherit it: on a machine shared with other work, the
    two sides then lose the same, smaller share of CPU to it."""
    import os

    try:
        os.nice(increment)
    except PermissionError:
        print(f"note: niceness {increment:+d} needs root; running at the default", flush=True)


def write(out_dir: Path, report: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "overhead.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "overhead.md").write_text(markdown(report))


if __name__ == "__main__":
    main()
