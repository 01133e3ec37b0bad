"""A bounded HTTP load on loopback: N threads GET one URL in a loop until stopped (or a
deadline), with or without keep-alive, counting every failed request and the latencies.

Like browsers and urllib3 (RFC 9112 9.3.1), a GET sent on a *reused* keep-alive connection
that the server closed before any byte of an answer is sent again once on a new connection:
that is how nginx's graceful reload ends idle connections. Such retries are counted apart
(`stale_retries`); a request that fails on a fresh connection is a failure."""

from __future__ import annotations

import http.client
import ipaddress
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    ok: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    bodies: dict[str, int] = field(default_factory=dict)  # first line of each answer: count
    latencies: list[float] = field(default_factory=list)
    stale_retries: int = 0  # reused idle connections closed by the server, sent again

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class Load:
    """`with Load(url, clients=4, keepalive=True) as load: ...` then `load.result`."""

    def __init__(
        self, url: str, *, clients: int = 4, keepalive: bool = True, max_s: float = 120.0
    ) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        # Loopback only (127.0.0.0/8: the SSH lab's hosts listen on 127.0.0.1N too).
        assert host == "localhost" or ipaddress.ip_address(host).is_loopback, "loopback only"
        self.host, self.port, self.path = parts.hostname, parts.port or 80, parts.path or "/"
        self.clients, self.keepalive, self.max_s = clients, keepalive, max_s
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Load:
        for _ in range(self.clients):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_s
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            error = ""
            line = ""
            for attempt in (1, 2):
                reused = conn is not None
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                try:
                    headers = {} if self.keepalive else {"Connection": "close"}
                    conn.request("GET", self.path, headers=headers)
                    answer = conn.getresponse()
                    body = answer.read(4096)
                    line = body.decode("utf-8", "replace").split("\n")[0][:80]
                    error = f"HTTP {answer.status}" if answer.status != 200 else ""
                    if not self.keepalive or answer.will_close:
                        conn.close()
                        conn = None
                    break
                except (
                    http.client.RemoteDisconnected,
                    ConnectionResetError,
                    BrokenPipeError,
                ) as exc:
                    conn.close()
                    conn = None
                    error = type(exc).__name__
                    if reused and attempt == 1:  # closed while idle: send it again, once
                        with self._lock:
                            self.result.stale_retries += 1
                        continue
                    break
                except (OSError, http.client.HTTPException) as exc:
                    error = type(exc).__name__
                    conn.close()
                    conn = None
                    break
            elapsed = time.monotonic() - started
            with self._lock:
                if error:
                    self.result.failed += 1
                    self.result.errors[error] = self.result.errors.get(error, 0) + 1
                else:
                    self.result.ok += 1
                    self.result.latencies.append(elapsed)
                    self.result.bodies[line] = self.result.bodies.get(line, 0) + 1
        if conn is not None:
            conn.close()
