"""The Talk op on this machine's driver (a unix socket, TCP on loopback; answers bounded in
bytes and time), and an HTTP/1.1 exchange over it written and parsed with h11 (Caddy's admin
API, as the adapter speaks it)."""

from __future__ import annotations

import json
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from releasegate.ops import Talk, TalkReply, _Answer, run_sync, split_target, talk_local
from releasegate.proxy.base import ProxyError, run_here
from releasegate.proxy.http1 import parse_answer, request_bytes
from releasegate.transport.local import LocalTransport

Handler = Callable[[socket.socket], None]


def _serve(server: socket.socket, handler: Handler) -> threading.Thread:
    def loop() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return  # the server socket was closed
            with conn:
                try:
                    handler(conn)
                except OSError:
                    pass

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


@pytest.fixture()
def unix_server() -> Iterator[Callable[[Handler], str]]:
    folder = tempfile.mkdtemp(prefix="rg-talk-")  # short: sun_path holds 107 bytes
    servers: list[socket.socket] = []

    def start(handler: Handler) -> str:
        path = f"{folder}/s{len(servers)}.sock"
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(4)
        servers.append(server)
        _serve(server, handler)
        return path

    yield start
    for server in servers:
        server.close()


@pytest.fixture()
def tcp_server() -> Iterator[Callable[[Handler], str]]:
    servers: list[socket.socket] = []

    def start(handler: Handler) -> str:
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)
        _serve(server, handler)
        return f"127.0.0.1:{server.getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


def echo_upper(conn: socket.socket) -> None:
    """Answers its one-line request in capitals, then closes (HAProxy's runtime API does)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1024)
        if not chunk:
            break
        data += chunk
    conn.sendall(data.upper())


def test_talk_over_a_unix_socket(unix_server: Callable[[Handler], str]) -> None:
    path = unix_server(echo_upper)
    reply = talk_local(Talk(path, b"show servers state app\n", 5))
    assert reply == TalkReply(b"SHOW SERVERS STATE APP\n")
    assert reply.ok


def test_talk_over_tcp_on_loopback(tcp_server: Callable[[Handler], str]) -> None:
    target = tcp_server(echo_upper)
    assert talk_local(Talk(target, b"hello\n", 5)).data == b"HELLO\n"


def test_talk_is_an_op_of_the_sync_driver(tcp_server: Callable[[Handler], str]) -> None:
    target = tcp_server(echo_upper)

    def program() -> object:
        first = yield Talk(target, b"one\n", 5)
        second = yield Talk(target, b"two\n", 5)
        return first.data + second.data

    assert run_sync(program(), LocalTransport()) == b"ONE\nTWO\n"  # type: ignore[arg-type]


def test_a_long_answer_is_cut_at_its_bound(unix_server: Callable[[Handler], str]) -> None:
    def flood(conn: socket.socket) -> None:
        conn.recv(64)
        for _ in range(64):
            conn.sendall(b"x" * 65536)  # 4 MiB: far past the bound

    reply = talk_local(Talk(unix_server(flood), b"go\n", 5, max_answer=100_000))
    assert reply.truncated and not reply.ok and len(reply.data) == 100_000


def test_the_answer_bound_both_drivers_read_by() -> None:
    """The rule of _Answer, which the local socket and the SSH channel both read by: ask
    for one byte past the bound; an answer that passes it is cut and marked truncated; a
    closed peer (b"") ends a complete answer."""
    answer = _Answer(Talk("/run/x.sock", b"q", 1, max_answer=10))
    assert answer.want() == 11
    assert answer.add(b"12345") is None and answer.want() == 6
    assert answer.add(b"") == TalkReply(b"12345")
    long = _Answer(Talk("/run/x.sock", b"q", 1, max_answer=10))
    assert long.add(b"1234567890") is None and long.want() == 1
    assert long.add(b"X") == TalkReply(b"1234567890", truncated=True)
    big = _Answer(Talk("/run/x.sock", b"q", 1, max_answer=1 << 20))
    assert big.want() == 65536  # never more than one read's worth at a time


def test_an_answer_that_never_ends_is_bounded_in_time(
    tcp_server: Callable[[Handler], str],
) -> None:
    def stall(conn: socket.socket) -> None:
        conn.recv(64)
        conn.sendall(b"partial")
        time.sleep(3)  # never closes within the Talk's timeout

    started = time.monotonic()
    reply = talk_local(Talk(tcp_server(stall), b"go\n", 0.5))
    assert "no complete answer within 0.5 s" in reply.error
    assert reply.data == b"partial"
    assert time.monotonic() - started < 2.5  # the bound the op names, with generous slack


def test_nothing_listening_is_an_error_not_an_exception(tmp_path: Path) -> None:
    gone = talk_local(Talk(str(tmp_path / "none.sock"), b"x", 2))
    assert gone.error and not gone.ok
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert talk_local(Talk(f"127.0.0.1:{port}", b"x", 2)).error


@pytest.mark.parametrize(
    ("target", "ok"),
    [
        ("/run/haproxy/admin.sock", True),
        ("127.0.0.1:2019", True),
        ("[::1]:2019", True),
        ("relative.sock", False),
        ("127.0.0.1", False),
        ("127.0.0.1:0", False),
        ("127.0.0.1:99999", False),
        ("/" + "a" * 200, False),
    ],
)
def test_talk_targets(target: str, ok: bool) -> None:
    if ok:
        split_target(target)
    else:
        with pytest.raises(ValueError):
            split_target(target)
        assert talk_local(Talk(target, b"", 1)).error


# ---- HTTP/1.1 over a Talk ---------------------------------------------------------------------


def test_request_bytes_are_one_complete_request() -> None:
    data = request_bytes(
        "PATCH",
        "127.0.0.1:2019",
        "/id/releasegate/upstreams",
        headers=[("Origin", "http://127.0.0.1:2019"), ("Content-Type", "application/json")],
        body=b'[{"dial": "127.0.0.1:8102"}]',
    )
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"PATCH /id/releasegate/upstreams HTTP/1.1"
    assert b"host: 127.0.0.1:2019" in [line.lower() for line in lines]
    assert b"connection: close" in [line.lower() for line in lines]
    assert b"origin: http://127.0.0.1:2019" in [line.lower() for line in lines]
    assert b"content-length: 28" in [line.lower() for line in lines]
    assert body == b'[{"dial": "127.0.0.1:8102"}]'
    with pytest.raises(ProxyError):  # a header value with a line break is refused
        request_bytes("GET", "h:1", "/", headers=[("Origin", "x\r\nInjected: 1")])


@pytest.mark.parametrize(
    ("raw", "status", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]", 200, b"[]"),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close", 200, b"until close"),
        (
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n",
            400,
            b"hello",
        ),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", 200, b"x"),
    ],
)
def test_answers_are_parsed(raw: bytes, status: int, body: bytes) -> None:
    answer = parse_answer("GET", raw, max_body=1000)
    assert (answer.status, answer.body) == (status, body)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"", "no HTTP answer"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP/1.1 answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "not an HTTP/1.1 answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000, "larger than"),
    ],
)
def test_bad_answers_are_refused(raw: bytes, says: str) -> None:
    with pytest.raises(ProxyError, match=says):
        parse_answer("GET", raw, max_body=1000)


def test_caddy_adapter_over_a_talk_against_an_admin_api(
    tcp_server: Callable[[Handler], str],
) -> None:
    """The adapter's GET and PATCH, over a Talk, against a minimal admin endpoint: the
    request it writes is what a server reads, the answer it parses moves `current`."""
    from releasegate.proxy.base import adapter_for
    from releasegate.proxy.config import ProxyConfig

    state = {"dial": "127.0.0.1:8101"}
    seen: list[bytes] = []

    def admin(conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(4096)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (int(v) for k, _, v in (x.partition(b": ") for x in head.split(b"\r\n"))
             if k.lower() == b"content-length"),
            0,
        )  # fmt: skip
        while len(body) < length:
            body += conn.recv(4096)
        seen.append(head)
        if head.startswith(b"PATCH"):
            state["dial"] = json.loads(body)[0]["dial"]
            out = b""
        else:
            out = json.dumps([{"dial": state["dial"]}]).encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(out), out))

    target = tcp_server(admin)
    cfg = ProxyConfig.model_validate(
        {
            "kind": "caddy",
            "slots": {"blue": "127.0.0.1:8101", "green": "127.0.0.1:8102"},
            "caddy": {"admin": f"http://{target}"},
        }
    )
    switch = adapter_for(cfg)
    assert run_here(switch.current()) == "blue"
    moved = run_here(switch.switch("green"))
    assert moved.ok, moved.summary
    assert state["dial"] == "127.0.0.1:8102"
    assert any(h.startswith(b"PATCH /id/releasegate/upstreams HTTP/1.1") for h in seen)
    assert all(b"Origin: http://" + target.encode() in h for h in seen)
