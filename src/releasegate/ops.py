"""Operations as data: a runtime phase or a smoke check is a generator that yields what it
needs done (run a command, with text or a local file on its stdin; GET a URL; wait; talk to
a socket on the host) and receives the answer.

The same program is carried out by `run_sync` (one host, the engine's synchronous path) or
awaited by `run_async` (many hosts at once on one event loop, one SSH connection each; no
thread per host). The program decides what to do, the driver only how.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar, Union

from releasegate.transport.base import CommandResult

if TYPE_CHECKING:
    import httpx

    from releasegate.smoke import HttpClientSource
    from releasegate.transport.base import Transport
    from releasegate.transport.ssh import AsyncSshHost

T = TypeVar("T")

DEFAULT_MAX_BODY = 1024 * 1024  # bytes of an HTTP answer read at most (a check's max_body_bytes)


@dataclass(frozen=True)
class Cmd:
    """Run argv on the host. Answer: a CommandResult."""

    argv: tuple[str, ...]
    cwd: PurePosixPath | None = None
    env: Mapping[str, str] | None = None
    timeout: float = 120.0
    stdin: str | Path | None = None  # a Path is streamed as bytes (SSH hosts only)


@dataclass(frozen=True)
class Get:
    """HTTP GET from the controller. Answer: an HttpReply.

    `timeout` bounds the whole attempt (connect, headers and body); at most `max_body`
    bytes of the body are read (see releasegate.httpget)."""

    url: str
    timeout: float
    max_body: int = DEFAULT_MAX_BODY


@dataclass(frozen=True)
class Sleep:
    """Wait between attempts. Answer: None."""

    seconds: float


@dataclass(frozen=True)
class Talk:
    """Connect to a stream socket as the host sees it, send `request`, read the answer until
    the other end closes. Answer: a TalkReply.

    `target` is a unix socket path (absolute) or HOST:PORT (on the host's own network: an
    SSH host reaches it through its connection's forwarding, no tool needed there). The whole
    exchange is bounded by `timeout`; at most `max_answer` bytes are read."""

    target: str
    request: bytes
    timeout: float
    max_answer: int = 256 * 1024
    connect_only: bool = False  # only whether something accepts a connection there


@dataclass(frozen=True)
class TalkReply:
    data: bytes = b""
    error: str = ""  # could not connect, or no complete answer in time
    truncated: bool = False  # the answer was longer than max_answer; the rest was not read

    @property
    def ok(self) -> bool:
        return not self.error and not self.truncated


@dataclass(frozen=True)
class HttpReply:
    status: int | None
    text: str  # at most the Get's max_body bytes, decoded
    latency_ms: float
    error: str | None = None
    truncated: bool = False  # the body was longer than max_body; the rest was not read


Op = Union[Cmd, Get, Sleep, Talk]  # noqa: UP007 (a runtime alias: `|` of classes is fine too)
Program = Generator[Op, Any, T]


def cmd(argv: list[str] | tuple[str, ...], **kw: Any) -> Cmd:
    return Cmd(tuple(argv), **kw)


def done(value: T) -> Program[T]:
    """A program that asks nothing and returns `value`: for a hook that is a program in one
    runtime (it asks the host) and a plain computation in another."""
    return value
    yield  # unreachable: makes this function a generator


# ---- synchronous driver -------------------------------------------------------------------


def run_sync(
    program: Program[T],
    transport: Transport,
    *,
    http: HttpClientSource | None = None,
    sleep: Any = time.sleep,
) -> T:
    """Carry out a program with a synchronous transport (local or one SSH host)."""
    answer: Any = None
    try:
        op = next(program)
        while True:
            answer = _do_sync(op, transport, http, sleep)
            op = program.send(answer)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def _do_sync(op: Op, transport: Transport, http: HttpClientSource | None, sleep: Any) -> Any:
    if isinstance(op, Cmd):
        kw: dict[str, Any] = {"stdin": op.stdin} if op.stdin is not None else {}
        if isinstance(op.stdin, Path) and getattr(transport, "name", "") != "ssh":
            return CommandResult(op.argv, -1, "", "", 0.0, error="a file on stdin needs SSH")
        return transport.run(
            list(op.argv),
            cwd=Path(str(op.cwd)) if op.cwd else None,
            env=op.env,
            timeout=op.timeout,
            **kw,
        )
    if isinstance(op, Get):
        if http is None:
            from releasegate.smoke import HttpClientSource

            http = HttpClientSource()
        return _get_sync(op, http.client_for(op.url))
    if isinstance(op, Talk):
        runner, host = getattr(transport, "runner", None), getattr(transport, "host", None)
        if getattr(transport, "name", "") == "ssh" and runner is not None and host is not None:
            return runner.call(_talk_async(op, host))  # one SSH host, driven synchronously
        return talk_local(op)
    sleep(op.seconds)
    return None


def _get_sync(op: Get, client: httpx.Client) -> HttpReply:
    import httpx

    from releasegate import httpget

    started = time.monotonic()
    try:
        answer = httpget.get_sync(client, op.url, op.timeout, op.max_body)
    except httpx.TimeoutException:
        return HttpReply(None, "", _ms(started), _deadline_error(op))
    except httpx.HTTPError as exc:
        return HttpReply(None, "", _ms(started), _http_error(exc))
    return HttpReply(answer.status, answer.text, _ms(started), truncated=answer.truncated)


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000


def _http_error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _deadline_error(op: Get) -> str:
    return f"Timeout: no complete answer within {op.timeout:.3g} s"


def split_target(target: str) -> str | tuple[str, int]:
    """A Talk's target: a unix socket path, or (host, port); ValueError for anything else."""
    if target.startswith("/"):
        if "\0" in target or len(target) > 107:  # sun_path's size
            raise ValueError(f"'{target[:120]}' is not a usable unix socket path")
        return target
    host, sep, port = target.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"'{target[:120]}' is neither a socket path nor HOST:PORT")
    return host, int(port)


class _Answer:
    """A Talk's answer as it arrives, bounded by `max_answer`: the one rule both drivers
    read by (a socket here, an SSH channel there)."""

    def __init__(self, op: Talk) -> None:
        self.op = op
        self.data = b""

    def want(self) -> int:
        """How much to ask for next: one byte past the bound shows an answer too long."""
        return min(65536, self.op.max_answer + 1 - len(self.data))

    def add(self, chunk: bytes) -> TalkReply | None:
        """The reply once the peer closed (b"") or the bound is passed; else None."""
        if not chunk:
            return TalkReply(self.data)
        self.data += chunk
        if len(self.data) > self.op.max_answer:
            return TalkReply(self.data[: self.op.max_answer], truncated=True)
        return None


def talk_local(op: Talk) -> TalkReply:
    """A Talk on this machine: a plain socket, every wait bounded by what is left of the
    Talk's deadline."""
    import socket

    deadline = time.monotonic() + op.timeout
    try:
        where = split_target(op.target)
    except ValueError as exc:
        return TalkReply(error=str(exc))
    answer = _Answer(op)
    try:
        if isinstance(where, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(op.timeout)
            try:
                sock.connect(where)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection(where, timeout=op.timeout)
        with sock:
            if op.connect_only:
                return TalkReply()
            sock.sendall(op.request)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                if (reply := answer.add(sock.recv(answer.want()))) is not None:
                    return reply
    except TimeoutError:
        return TalkReply(answer.data, error=_talk_deadline(op))
    except OSError as exc:
        return TalkReply(answer.data, error=f"{op.target}: {exc.strerror or exc}")


def _talk_deadline(op: Talk) -> str:
    return f"{op.target}: no complete answer within {op.timeout:.3g} s"


async def _talk_async(op: Talk, host: AsyncSshHost) -> TalkReply:
    """A Talk on an SSH host: a direct-streamlocal (unix socket) or direct-tcpip channel on
    the host's connection, so the host needs no tool of its own."""
    import asyncio

    try:
        where = split_target(op.target)
    except ValueError as exc:
        return TalkReply(error=str(exc))
    answer = _Answer(op)
    writer: Any = None
    try:
        async with asyncio.timeout(op.timeout):
            reader, writer = await host.open_stream(where)
            if op.connect_only:
                return TalkReply()
            writer.write(op.request)
            while (reply := answer.add(await reader.read(answer.want()))) is None:
                pass
            return reply
    except TimeoutError:
        return TalkReply(answer.data, error=_talk_deadline(op))
    except Exception as exc:  # asyncssh's ChannelOpenError, a lost connection, an OSError
        return TalkReply(answer.data, error=f"{op.target} on {host.target}: {_http_error(exc)}")
    finally:
        if writer is not None:
            writer.close()


# ---- asynchronous driver ------------------------------------------------------------------


async def run_async(
    program: Program[T], host: AsyncSshHost, *, client: httpx.AsyncClient | None
) -> T:
    """Await a program against one SSH host; many run side by side on one loop."""
    answer: Any = None
    try:
        op = next(program)
        while True:
            answer = await _do_async(op, host, client)
            op = program.send(answer)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def _do_async(op: Op, host: AsyncSshHost, client: httpx.AsyncClient | None) -> Any:
    if isinstance(op, Cmd):
        return await host.run(op.argv, cwd=op.cwd, env=op.env, timeout=op.timeout, stdin=op.stdin)
    if isinstance(op, Get):
        import httpx

        from releasegate import httpget

        if client is None:
            raise RuntimeError("an HTTP check needs the run's HTTP client")
        started = time.monotonic()
        try:
            answer = await httpget.get_async(client, op.url, op.timeout, op.max_body)
        except (TimeoutError, httpx.TimeoutException):
            return HttpReply(None, "", _ms(started), _deadline_error(op))
        except httpx.HTTPError as exc:
            return HttpReply(None, "", _ms(started), _http_error(exc))
        return HttpReply(answer.status, answer.text, _ms(started), truncated=answer.truncated)
    if isinstance(op, Talk):
        return await _talk_async(op, host)
    import asyncio  # here: the synchronous path (one host, most commands) never loads it

    await asyncio.sleep(op.seconds)
    return None


# ---- fewer round trips ----------------------------------------------------------------------

# Runs several argv lists in one shell, in turn, stopping at the first failure. The words
# arrive as positional parameters, each list preceded by its length; `eval` only ever sees
# "${N}" references built from numbers, so no word is ever parsed as shell code.
_CHAIN = """\
i=1; k=0
while [ "$i" -le "$#" ]; do
  eval "n=\\${$i}"; k=$((k+1)); j=$((i+1)); end=$((i+n)); line=""
  while [ "$j" -le "$end" ]; do line="$line \\"\\${$j}\\""; j=$((j+1)); done
  eval "$line" || { rc=$?; echo "releasegate: command $k of the chain failed (exit $rc)" >&2; \
exit "$rc"; }
  i=$((end+1))
done
"""


def chain(commands: list[list[str]]) -> list[str]:
    """One `sh -c` that runs `commands` in turn and stops at the first failure: over SSH a
    command costs a round trip and a process on the host, so a phase sends one, not ten."""
    words: list[str] = []
    for argv in commands:
        if not argv:
            raise ValueError("an empty command in a chain")
        words += [str(len(argv)), *argv]
    return ["sh", "-c", _CHAIN, "releasegate-chain", *words]


def chain_failure(result: CommandResult) -> int | None:
    """Which command of a chain failed (1-based), from its message; None if none did."""
    import re

    if result.ok:
        return None
    found = re.search(r"releasegate: command (\d+) of the chain failed", result.stderr)
    return int(found.group(1)) if found else None
