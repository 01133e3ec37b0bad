"""A bounded HTTP GET for smoke checks: one deadline per attempt (connect, headers and the
whole body) and a body read up to a cap, on the synchronous and the asynchronous path.

httpx's timeouts bound each network operation, not the request: a server that sends one
byte every 0.2 s never trips a 5 s read timeout. The asynchronous path wraps the attempt in
`asyncio.timeout`; the synchronous one has no cancellation, so its client's network backend
gives every connect, read and write only the time left before the attempt's deadline.

Imported on first use (it imports httpx): releasegate.ops and releasegate.smoke load it lazily.
"""

from __future__ import annotations

import contextvars
import time
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from releasegate.imports import load_httpx

load_httpx()

import httpcore  # noqa: E402
import httpx  # noqa: E402

# Identity: the cap then counts the bytes on the wire, and no decoder expands them first.
REQUEST_HEADERS = {"Accept-Encoding": "identity"}

# The deadline (time.monotonic) of the synchronous attempt running in this context, if any.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "releasegate_http_deadline", default=None
)


@dataclass(frozen=True)
class Answer:
    status: int
    text: str  # the body's first `max_body` bytes, decoded
    size: int  # bytes kept
    truncated: bool  # the answer was longer than the cap; the rest was never read


# ---- the synchronous client -------------------------------------------------------------------


def _left(timeout: float | None) -> float | None:
    """`timeout`, shortened to what is left of the attempt's deadline."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("no complete answer before the attempt's deadline")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, _left(timeout), local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(
            self._inner.connect_unix_socket(path, _left(timeout), socket_options)
        )

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _DeadlineTransport(httpx.HTTPTransport):
    def __init__(self, *, tls: bool) -> None:
        # Not super().__init__(): it would build (and load certificates for) the very pool
        # replaced here. HTTPTransport reaches its pool only through `_pool`; the e2e trickle
        # test fails if a later httpx stops doing so.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=tls, trust_env=False),
            network_backend=_DeadlineBackend(httpcore.SyncBackend()),
        )


def make_client(tls: bool) -> httpx.Client:
    """The synchronous smoke client: every request obeys its attempt's deadline.

    trust_env=False: no proxy from the environment may sit between us and the service.
    Without an https check no TLS is ever spoken (redirects are not followed), so the
    certificate store (about 50 ms to load) is skipped; with one, it is verified."""
    return httpx.Client(
        transport=_DeadlineTransport(tls=tls), trust_env=False, follow_redirects=False
    )


# ---- one attempt --------------------------------------------------------------------------------


def get_sync(client: httpx.Client, url: str, timeout: float, max_body: int) -> Answer:
    """GET `url`, answer and body within `timeout` seconds, reading at most `max_body` bytes.
    Raises httpx.HTTPError (a passed deadline: httpx.TimeoutException). The deadline holds
    with a client from make_client; any other client bounds each operation only."""
    token = _DEADLINE.set(time.monotonic() + timeout)
    try:
        with client.stream("GET", url, timeout=timeout, headers=REQUEST_HEADERS) as response:
            return _answer(response, _capped(response.iter_raw(), max_body), max_body)
    finally:
        _DEADLINE.reset(token)


async def get_async(client: httpx.AsyncClient, url: str, timeout: float, max_body: int) -> Answer:
    """As get_sync, awaited (any AsyncClient); a passed deadline raises TimeoutError."""
    import asyncio

    async with asyncio.timeout(timeout):
        async with client.stream("GET", url, timeout=timeout, headers=REQUEST_HEADERS) as response:
            chunks = [c async for c in _acapped(response.aiter_raw(), max_body)]
            return _answer(response, chunks, max_body)


def _capped(chunks: Iterator[bytes], cap: int) -> Iterator[bytes]:
    """The chunks up to one byte past `cap` (which says "there was more"); the rest stays
    unread: closing the response then drops the connection."""
    read = 0
    for chunk in chunks:
        yield chunk[: cap + 1 - read]
        read += len(chunk)
        if read > cap:
            return


async def _acapped(chunks: AsyncIterator[bytes], cap: int) -> AsyncIterator[bytes]:
    read = 0
    async for chunk in chunks:
        yield chunk[: cap + 1 - read]
        read += len(chunk)
        if read > cap:
            return


def _answer(response: httpx.Response, chunks: Iterable[bytes], cap: int) -> Answer:
    raw = b"".join(chunks)
    truncated = len(raw) > cap
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        # Asked for identity, sent compressed anyway: decoded here under the same cap, so a
        # small compressed answer cannot expand without bound.
        wbits = zlib.MAX_WBITS if encoding == "deflate" else zlib.MAX_WBITS | 16
        try:
            raw = zlib.decompressobj(wbits).decompress(raw, cap + 1)
        except zlib.error as exc:
            raise httpx.DecodingError(f"{encoding} body: {exc}", request=response.request) from exc
        truncated = truncated or len(raw) > cap
    elif encoding not in ("", "identity"):
        raise httpx.DecodingError(
            f"content-encoding {encoding!r} was not asked for", request=response.request
        )
    raw = raw[:cap]
    charset = response.charset_encoding or "utf-8"
    try:
        text = raw.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        text = raw.decode("utf-8", errors="replace")
    return Answer(response.status_code, text, len(raw), truncated)
