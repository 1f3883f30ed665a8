"""What one hop in front of a streamed completion adds to its latency at concurrency 1.

The full overhead benchmark (`run.py --modes gateway`) measures the gateway with the engine
behind it, where a few milliseconds drown in the engine's own variation. This isolates the hop:
an upstream that answers every POST with N server-sent-event chunks 2 ms apart (the shape of a
streamed chat completion), reached three ways, alternating in rounds:
- direct;
- through a byte relay (asyncio streams on uvloop, nothing parsed): the least any hop can cost;
- through the gateway, started as the local run starts it (`python -m modeldeploy_serving.gateway`).

Time to first byte and to the last byte, medians over every request, for N = 1, 33, 66.
`gateway - relay` is what the gateway's own code costs; `relay - direct` is the hop itself.

    python bench/overhead/gateway_hop.py   # writes bench/results/gateway/hop-latency.{json,md}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway_cpu import UPSTREAM, free_port, gateway_command, wait_for

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "results" / "gateway"
PATHS = ("direct", "relay", "gateway")

RELAY = """
import asyncio, sys
import uvloop

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
    finally:
        writer.close()

async def handle(client_reader, client_writer):
    reader, writer = await asyncio.open_connection("127.0.0.1", int(sys.argv[2]))
    await asyncio.gather(pipe(client_reader, writer), pipe(reader, client_writer))

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()

uvloop.run(main())
"""


async def timed_requests(url: str, requests: int) -> list[tuple[float, float]]:
    """(time to first byte, time to last byte) in ms of `requests` streamed POSTs, one at a
    time over one kept-alive connection."""
    import aiohttp

    body = json.dumps(
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi " * 32}]}
    ).encode()
    headers = {"content-type": "application/json"}
    timings = []
    async with aiohttp.ClientSession() as session:
        for _ in range(requests):
            began = time.perf_counter()
            first = None
            async with session.post(url, data=body, headers=headers) as response:
                if response.status != 200:
                    raise RuntimeError(f"{url}: {response.status} {await response.text()}")
                async for _ in response.content.iter_any():
                    first = first or time.perf_counter()
            ended = time.perf_counter()
            assert first is not None
            timings.append(((first - began) * 1000, (ended - began) * 1000))
    return timings


def measure(chunks: int, rounds: int, requests: int) -> dict[str, Any]:
    upstream_port, relay_port, gateway_port = free_port(), free_port(), free_port()
    python = sys.executable
    processes = [
        subprocess.Popen([python, "-c", UPSTREAM, str(upstream_port), str(chunks)]),
        subprocess.Popen([python, "-c", RELAY, str(relay_port), str(upstream_port)]),
        subprocess.Popen(gateway_command(upstream_port, gateway_port)),
    ]
    ports = dict(zip(PATHS, (upstream_port, relay_port, gateway_port), strict=True))
    samples: dict[str, list[tuple[float, float]]] = {path: [] for path in PATHS}
    try:
        wait_for(f"http://127.0.0.1:{gateway_port}/health")
        for path in PATHS:  # warm-up, and the relay is up by then
            asyncio.run(timed_requests(f"http://127.0.0.1:{ports[path]}/v1/chat/completions", 10))
        for _ in range(rounds):
            for path in PATHS:
                url = f"http://127.0.0.1:{ports[path]}/v1/chat/completions"
                samples[path] += asyncio.run(timed_requests(url, requests))
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
    result: dict[str, Any] = {"chunks": chunks, "requests_per_path": rounds * requests}
    for path in PATHS:
        result[path] = {
            "ttfb_p50_ms": statistics.median(s[0] for s in samples[path]),
            "total_p50_ms": statistics.median(s[1] for s in samples[path]),
        }
    result["hop_adds_ms"] = result["relay"]["total_p50_ms"] - result["direct"]["total_p50_ms"]
    result["gateway_adds_ms"] = result["gateway"]["total_p50_ms"] - result["direct"]["total_p50_ms"]
    result["gateway_code_adds_ms"] = (
        result["gateway"]["total_p50_ms"] - result["relay"]["total_p50_ms"]
    )
    return result


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# What one hop adds to a streamed completion at concurrency 1",
        "",
        f"`python bench/overhead/gateway_hop.py` ({report['when']}, {report['machine']}): an "
        "upstream streaming N chunks 2 ms apart, reached directly, through a byte relay and "
        "through the gateway, alternating; medians of time to last byte (TTFB in brackets).",
        "",
        "| chunks | direct | relay | gateway | the hop (relay - direct) | gateway's code "
        "(gateway - relay) | gateway - direct |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        cells = [f"{r[p]['total_p50_ms']:.2f} ms ({r[p]['ttfb_p50_ms']:.2f})" for p in PATHS]
        lines.append(
            f"| {r['chunks']} | {' | '.join(cells)} | {r['hop_adds_ms']:+.2f} ms | "
            f"{r['gateway_code_adds_ms']:+.2f} ms | {r['gateway_adds_ms']:+.2f} ms |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", default="1,33,66")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=60, help="per path and round")
    parser.add_argument("--out-dir", type=Path, default=OUT)
    args = parser.parse_args(argv)
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs",
        "results": [measure(int(n), args.rounds, args.requests) for n in args.chunks.split(",")],
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "hop-latency.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out_dir / "hop-latency.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
