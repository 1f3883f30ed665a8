"""The gateway's own CPU per streamed request, without an engine.

On a small machine the gateway's cost is CPU taken from the engine, and the full overhead
benchmark (`run.py --modes gateway`) shows it only through the noise of a shared machine. This
isolates it: an upstream that answers every POST with a 33-chunk server-sent-event stream (the
shape of a 32-token streamed chat completion, a few milliseconds apart), the gateway in its own
process exactly as the local run starts it (`python -m modeldeploy_serving.gateway`), and a
client that streams completions through it at several concurrencies. The gateway process's CPU
time (user + system, its idle rate subtracted) per request is the figure.

    python bench/overhead/gateway_cpu.py                 # 1, 8, 32 concurrent; 400 each
    PYTHONPATH=OTHER/serving python bench/overhead/gateway_cpu.py   # another tree's gateway
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from modeldeploy_serving.local import free_port

ROOT = Path(__file__).resolve().parents[2]
CHUNK = (
    b'data: {"id":"chatcmpl-0","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":" tok"},"logprobs":null,"finish_reason":null}]}'
    b"\n\n"
)
CHUNKS = 33
IDLE_S = 3.0

UPSTREAM = f"""
import asyncio, sys
import uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]}})
    for _ in range(int(sys.argv[2])):
        await asyncio.sleep(0.002)
        await send({{"type": "http.response.body", "body": {CHUNK!r}, "more_body": True}})
    await send({{"type": "http.response.body", "body": b"data: [DONE]\\n\\n", "more_body": False}})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
            log_level="warning", access_log=False)
"""


async def load(url: str, pid: int, concurrency: int, requests: int) -> dict[str, float]:
    import aiohttp
    import psutil

    process = psutil.Process(pid)
    body = json.dumps(
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi " * 32}]}
    ).encode()

    def cpu() -> float:
        times = process.cpu_times()
        return float(times.user + times.system)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> None:
            headers = {"content-type": "application/json", "authorization": "Bearer k"}
            async with session.post(url, data=body, headers=headers) as response:
                if response.status != 200:
                    raise RuntimeError(f"{response.status}: {await response.text()}")
                async for _ in response.content.iter_any():
                    pass

        for _ in range(10):
            await one()
        idle_from = cpu()
        await asyncio.sleep(IDLE_S)
        idle_rate = (cpu() - idle_from) / IDLE_S
        left = [requests]

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                await one()

        began, cpu_from = time.monotonic(), cpu()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.monotonic() - began
        used = cpu() - cpu_from - idle_rate * wall
    return {
        "concurrency": concurrency,
        "requests": requests,
        "req_per_s": requests / wall,
        "gateway_cpu_ms_per_request": 1000 * used / requests,
        "gateway_idle_cpu_ms_per_s": 1000 * idle_rate,
    }


def wait_for(url: str, timeout_s: float = 120.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


def gateway_command(upstream_port: int, gateway_port: int) -> list[str]:
    """The gateway as the local run starts it, with one model `m` at `upstream_port`: its config
    and replica files written to a scratch folder, one replica ready (so every request goes
    local)."""
    scratch = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    route = {
        "name": "m",
        "base_url": f"http://127.0.0.1:{upstream_port}",
        "app_name": "m",
        "slots_per_replica": 1000,
    }
    (scratch / "gateway.json").write_text(json.dumps({"routes": [route]}))
    (scratch / "replicas.json").write_text(json.dumps({"m": 1}))
    argv = [sys.executable, "-m", "modeldeploy_serving.gateway", str(scratch / "gateway.json")]
    argv += ["--port", str(gateway_port), "--replicas-file", str(scratch / "replicas.json")]
    return argv


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--requests", type=int, default=400, help="per concurrency level")
    args = parser.parse_args(argv)
    upstream_port, gateway_port = free_port(), free_port()
    upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(upstream_port), str(CHUNKS)])
    gateway_argv = gateway_command(upstream_port, gateway_port)
    gateway = subprocess.Popen(gateway_argv)
    try:
        wait_for(f"http://127.0.0.1:{gateway_port}/health")
        url = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            result = asyncio.run(load(url, gateway.pid, concurrency, args.requests))
            print(json.dumps(result), flush=True)
    finally:
        for process in (gateway, upstream):
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
