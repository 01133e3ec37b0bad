"""One HTTP/1.1 exchange carried by a Talk op (releasegate.ops): the request written and the
answer parsed with h11, so an admin API on a host's loopback (Caddy's) is reached the same
way from here and through an SSH host's connection. `Connection: close`: the answer ends
when the server closes, which is what a Talk reads up to."""

from __future__ import annotations

from dataclasses import dataclass

import h11

from releasegate.proxy.base import ProxyError


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes


def _request(
    method: str, authority: str, path: str, headers: list[tuple[str, str]], body: bytes | None
) -> h11.Request:
    fields = [("Host", authority), ("Connection", "close"), *headers]
    if body is not None:
        fields.append(("Content-Length", str(len(body))))
    return h11.Request(method=method, target=path, headers=fields)


def request_bytes(
    method: str,
    authority: str,
    path: str,
    *,
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
) -> bytes:
    """The request as bytes on the wire; h11 refuses a header or target that is not valid."""
    conn = h11.Connection(our_role=h11.CLIENT)
    try:
        data = conn.send(_request(method, authority, path, headers or [], body)) or b""
        if body:
            data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
    except h11.LocalProtocolError as exc:
        raise ProxyError(f"cannot write the request: {exc}") from None
    return data


def parse_answer(method: str, data: bytes, *, max_body: int) -> HttpAnswer:
    """The status and body of a whole answer (read until the server closed); ProxyError
    for anything that is not one complete HTTP/1.1 answer."""
    if not data:
        raise ProxyError("no HTTP answer (the server closed without a status line)")
    conn = h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=16 * 1024)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    conn.receive_data(b"")  # the server closed: whatever is missing now is missing
    status: int | None = None
    body = b""
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
                if len(body) > max_body:
                    raise ProxyError(f"the answer's body is larger than {max_body} bytes")
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
            elif event is h11.NEED_DATA:
                raise ProxyError("the answer ended before it was complete")
            elif event is h11.PAUSED:
                break
    except h11.RemoteProtocolError as exc:
        raise ProxyError(f"not an HTTP/1.1 answer: {exc}") from None
    if status is None:
        raise ProxyError("no HTTP answer (the server closed without a status line)")
    return HttpAnswer(status, body)
