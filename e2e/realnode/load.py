"""A bounded load from this machine against a model's Service address (kube-proxy routes the
host's own traffic to ClusterIPs): client threads send chat requests until told to stop and
count what each request ended as."""

from __future__ import annotations

import collections
import threading
import time

import openai

from .workload import SERVED_NAME


class Load:
    """`clients` closed-loop clients; `outcomes` counts 'ok' and each error's type by the time
    the request was sent (seconds since start), so losses can be placed around a fault."""

    def __init__(self, base_url: str, clients: int, max_tokens: int = 200) -> None:
        self.base_url = base_url
        self.max_tokens = max_tokens
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.results: list[tuple[float, str]] = []  # (sent at, "ok" or error type)
        self.started = time.monotonic()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=180)

    def _client(self) -> None:
        # The official client's own retries (2) stay on: they are what a user has.
        api = openai.OpenAI(base_url=self.base_url, api_key="unused", timeout=120)
        messages = [{"role": "user", "content": "Count on"}]
        while not self.stop_event.is_set():
            sent = time.monotonic() - self.started
            try:
                api.chat.completions.create(
                    model=SERVED_NAME,
                    messages=messages,
                    max_tokens=self.max_tokens,
                    extra_body={"ignore_eos": True},
                )
                outcome = "ok"
            except openai.OpenAIError as exc:
                outcome = type(exc).__name__
            with self.lock:
                self.results.append((sent, outcome))

    def counts(self, since: float = 0.0) -> dict[str, int]:
        with self.lock:
            return dict(collections.Counter(o for t, o in self.results if t >= since))

    def now(self) -> float:
        return time.monotonic() - self.started
