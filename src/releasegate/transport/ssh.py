"""Commands and file uploads on SSH hosts, with asyncssh on asyncio.

- `AsyncSshHost`: one host, one connection, opened on first use and kept open for every
  command and upload of a run (`close()` at the end). Its `run()` is a coroutine: a fleet
  runs many hosts at once on one event loop, not a thread per host.
- `SshTransport`: the same host behind the synchronous `Transport` protocol of the engine. Its
  coroutines run on the event loop of a `LoopRunner` (one thread, shared by any number of
  hosts), so the connection stays open between steps.

Commands are argv lists. The remote side has only a shell command line, so every word is
quoted with `shlex` (`remote_command`); environment values go through `env NAME=value`, quoted
the same way (sshd accepts only its AcceptEnv names through the protocol).

Host keys are verified against known_hosts (a given file, else ~/.ssh/known_hosts). A host
with no entry there is refused unless `accept_new` is set; an accepted key is added to that
file and reported (`AsyncSshHost.accepted_key`, `connect()`'s return) so the caller can record
it. A host whose key differs from its entry is always refused. Settings of ~/.ssh/config
(IdentityFile, User, Port, ProxyJump, ...) apply; the agent is used when SSH_AUTH_SOCK is set.

asyncssh is imported when a host connects, never when releasegate starts
(`releasegate.imports.load_asyncssh`).
"""

from __future__ import annotations

import asyncio
import codecs
import concurrent.futures
import contextlib
import hashlib
import os
import re
import secrets
import shlex
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

from releasegate.errors import ReleasegateError
from releasegate.imports import load_asyncssh
from releasegate.transport.base import (
    DETACH_HINT,
    EXIT_GRACE_S,
    BoundedText,
    CommandResult,
)

if TYPE_CHECKING:
    import asyncssh

T = TypeVar("T")

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEFAULT_CONNECT_TIMEOUT = 15.0
DEFAULT_USER_CONFIG = Path("~/.ssh/config")
DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")


class SshError(ReleasegateError):
    """A host could not be reached, refused us, or an upload did not arrive intact."""


class HostKeyRefused(SshError):
    """The host's key is not in known_hosts (and accept-new is off) or differs from it."""


# ---- command lines ------------------------------------------------------------------------


def quote_word(word: str) -> str:
    """One argv word for a POSIX shell. `shlex.quote`, and a word with '=' is quoted too, so
    the shell or `env` never reads a command name as an assignment."""
    quoted = shlex.quote(word)
    if quoted == word and "=" in word:
        return f"'{word}'"
    return quoted


def env_words(env: Mapping[str, str] | None) -> list[str]:
    """`env NAME=value ...` as argv words (empty without env); names are checked."""
    if not env:
        return []
    words = ["env"]
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"environment variable name {name!r} is not allowed")
        if "\0" in value:
            raise ValueError(f"environment variable {name} contains a NUL character")
        words.append(f"{name}={value}")
    return words


def remote_command(
    argv: Sequence[str],
    *,
    cwd: PurePosixPath | Path | str | None = None,
    env: Mapping[str, str] | None = None,
    pid_marker: str | None = None,
) -> str:
    """The command line the remote shell runs for argv: `[cd DIR && ]exec [env N=v ...] argv`.

    Every word is quoted; nothing of argv, cwd or env is pasted into the line as shell code.
    With `pid_marker` (letters and digits), the line first writes MARKER<pid> on a line of
    stderr: the pid of the command (exec keeps it), so that a timeout can kill it.
    """
    if pid_marker is not None and not pid_marker.isalnum():
        raise ValueError("pid_marker must be letters and digits")
    args = list(argv)
    if not args:
        raise ValueError("argv must not be empty")
    for word in (*args, *([str(cwd)] if cwd is not None else [])):
        if "\0" in word:
            raise ValueError("argv and cwd must not contain a NUL character")
    prefix = env_words(env)
    words = [shlex.quote(w) for w in prefix]
    if prefix and "=" in args[0]:
        # `env` would read it as one more assignment: run it through `command`.
        words.append("command")
    words += [quote_word(args[0]), *(shlex.quote(w) for w in args[1:])]
    line = "exec " + " ".join(words)
    if cwd is not None:
        line = f"cd -- {shlex.quote(str(cwd))} && {line}"
    if pid_marker is not None:
        line = f"printf '%s%s\\n' {pid_marker} \"$$\" >&2; {line}"
    return line


# ---- targets and options ------------------------------------------------------------------


@dataclass(frozen=True)
class SshTarget:
    """Where to connect: user@address:port (None: from ~/.ssh/config, else the defaults)."""

    address: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> SshTarget:
        """`ssh://[user@]host[:port]` (validated like releasegate.yaml's hosts)."""
        from releasegate.config.values import Host

        host = Host.model_validate(text)
        if host.kind != "ssh" or host.address is None:
            raise ValueError(f"{text!r} is not an ssh:// host")
        return cls(address=host.address, user=host.user, port=host.port)

    def __str__(self) -> str:
        address = f"[{self.address}]" if ":" in self.address else self.address
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"ssh://{user}{address}{port}"


@dataclass(frozen=True)
class SshOptions:
    """How to connect. Defaults: ~/.ssh/known_hosts, ~/.ssh/config if present, keys from the
    config, the agent and ~/.ssh/id_*."""

    known_hosts: Path | None = None
    accept_new: bool = False
    config: tuple[Path, ...] | None = None  # None: ~/.ssh/config if it exists
    client_keys: tuple[Path, ...] | None = None  # None: the config's, the agent's, ~/.ssh/id_*
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    keepalive_interval: float = 15.0

    def known_hosts_path(self) -> Path:
        return (self.known_hosts or DEFAULT_KNOWN_HOSTS).expanduser()

    def config_paths(self) -> list[str]:
        if self.config is not None:
            return [str(p.expanduser()) for p in self.config]
        user_config = DEFAULT_USER_CONFIG.expanduser()
        return [str(user_config)] if user_config.is_file() else []


@dataclass(frozen=True)
class AcceptedKey:
    """A host key accepted under accept-new (and added to `known_hosts`)."""

    host: str
    fingerprint: str  # SHA256:...
    line: str  # the known_hosts line written
    known_hosts: Path


@dataclass
class ConnectInfo:
    target: SshTarget
    server_version: str
    accepted_key: AcceptedKey | None = None
    seconds: float = 0.0


def known_hosts_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)

# ---- one host, async ----------------------------------------------------------------------


@dataclass
class _KeyCheck:
    accept_new: bool
    known: Any  # the parsed known_hosts
    has_entry: bool = False  # known_hosts has a key for this host: a different one
    seen: Any = None  # the SSHKey the server offered when it was not trusted
    host: str = ""  # the name and port it answered as, after ~/.ssh/config (HostName, Port)
    port: int = 22


def _client_class(check: _KeyCheck) -> type[asyncssh.SSHClient]:
    import asyncssh

    class _Client(asyncssh.SSHClient):
        def validate_host_public_key(
            self, host: str, addr: str, port: int, key: asyncssh.SSHKey
        ) -> bool:
            # Called only for a key that known_hosts does not trust. The host and port are
            # the ones connected to, so ~/.ssh/config's HostName and Port count here.
            check.seen, check.host, check.port = key, host, port
            check.has_entry = bool(check.known.match(host, addr, port)[0])
            return check.accept_new and not check.has_entry

    return _Client


_KEYPAIRS: dict[tuple[tuple[str, tuple[int, int]], ...], Any] = {}


def _keypairs(paths: tuple[Path, ...]) -> Any:
    """The client keys, read and parsed once per process (not once per host), again when a
    file changes. A key that cannot be read or decoded raises SshError."""
    import asyncssh

    files = [str(p.expanduser()) for p in paths]
    stamp = tuple((f, _stamp(f)) for f in files)
    if stamp not in _KEYPAIRS:
        try:
            _KEYPAIRS[stamp] = asyncssh.load_keypairs(files)
        except (OSError, ValueError) as exc:  # KeyImportError, KeyEncryptionError
            raise SshError(f"cannot load the SSH key(s) {', '.join(files)}: {exc}") from exc
    return _KEYPAIRS[stamp]


_KNOWN_HOSTS: dict[tuple[str, tuple[int, int]], Any] = {}


def _known_hosts(path: Path) -> Any:
    """known_hosts parsed once per process, again when it changes (a key accepted by this
    run is written to it). A missing file trusts nothing."""
    import asyncssh

    stamp = (str(path), _stamp(str(path)))
    if stamp not in _KNOWN_HOSTS:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        except OSError as exc:
            raise SshError(f"cannot read known_hosts {path}: {exc.strerror or exc}") from exc
        _KNOWN_HOSTS[stamp] = asyncssh.import_known_hosts(text)
    return _KNOWN_HOSTS[stamp]


def _stamp(path: str) -> tuple[int, int]:
    """A file's (mtime, size): a file rewritten within the clock's tick still differs."""
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1)
    return (st.st_mtime_ns, st.st_size)


@dataclass
class AsyncSshHost:
    """One SSH host with one connection, reused for every command and upload."""

    target: SshTarget
    options: SshOptions = field(default_factory=SshOptions)
    name: str = "ssh"
    connections_opened: int = 0
    accepted_key: AcceptedKey | None = None
    exit_grace: float = EXIT_GRACE_S
    _conn: Any = None
    _lock: asyncio.Lock | None = None
    _running: dict[int, _RemoteRun] = field(default_factory=dict)

    async def connect(self) -> ConnectInfo:
        """Open the connection if it is not open; raise SshError / HostKeyRefused."""
        load_asyncssh()
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return ConnectInfo(self.target, self._server_version(), self.accepted_key)
            return await self._open()

    def _server_version(self) -> str:
        if self._conn is None:
            return ""
        return str(self._conn.get_extra_info("server_version") or "")

    async def _open(self) -> ConnectInfo:
        import asyncssh

        started = time.monotonic()
        kh_path = self.options.known_hosts_path()
        known = _known_hosts(kh_path)
        check = _KeyCheck(self.options.accept_new, known)
        kwargs: dict[str, Any] = {
            "known_hosts": known,
            "config": self.options.config_paths(),
            "connect_timeout": self.options.connect_timeout,
            "keepalive_interval": self.options.keepalive_interval,
            # AES-GCM first: with AES-NI it costs asyncssh far less CPU per packet than
            # chacha20-poly1305 (a new cipher context per packet), which matters when one
            # artifact goes to many hosts. The others stay offered for older servers.
            "encryption_algs": CIPHERS,
        }
        if self.target.user:
            kwargs["username"] = self.target.user
        if self.target.port:
            kwargs["port"] = self.target.port
        if self.options.client_keys is not None:
            kwargs["client_keys"] = _keypairs(tuple(self.options.client_keys))
            kwargs["agent_path"] = None
        try:
            conn, _ = await asyncssh.create_connection(
                _client_class(check), self.target.address, **kwargs
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            if check.seen is None:  # not this host's key: a jump host's, on the way
                raise HostKeyRefused(
                    f"{self.target}: a host key on the way was refused ({exc.reason})",
                    hint="a ProxyJump host is checked, as by OpenSSH, against ssh_config's "
                    "UserKnownHostsFile for it, else ~/.ssh/known_hosts",
                ) from exc
            raise self._refused(check, kh_path) from exc
        except asyncssh.PermissionDenied as exc:
            raise SshError(
                f"{self.target}: authentication refused ({exc.reason})",
                hint="check the user, the key (IdentityFile in ~/.ssh/config) or the agent",
            ) from exc
        except (TimeoutError, asyncssh.Error, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, TimeoutError):
                reason = f"no answer in {self.options.connect_timeout:g}s"
            raise SshError(f"{self.target}: cannot connect: {reason}") from exc
        self._conn = conn
        self.connections_opened += 1
        if check.seen is not None:
            self.accepted_key = self._record_new_key(check, kh_path)
        return ConnectInfo(
            self.target,
            self._server_version(),
            self.accepted_key,
            time.monotonic() - started,
        )

    def _refused(self, check: _KeyCheck, kh_path: Path) -> HostKeyRefused:
        fingerprint = check.seen.get_fingerprint() if check.seen is not None else "?"
        if check.has_entry:
            return HostKeyRefused(
                f"{self.target}: the host key ({fingerprint}) differs from the one in "
                f"{kh_path}: refused (the host changed, or someone is in between)",
                hint="verify the host's new key, then update its line in known_hosts",
            )
        return HostKeyRefused(
            f"{self.target}: host key {fingerprint} is unknown (not in {kh_path}): refused",
            hint="verify the key and add it to known_hosts, or allow accept-new explicitly",
        )

    def _record_new_key(self, check: _KeyCheck, kh_path: Path) -> AcceptedKey:
        key = check.seen
        name = known_hosts_name(check.host or self.target.address, check.port)
        line = f"{name} {key.export_public_key('openssh').decode().strip()}"
        kh_path.parent.mkdir(parents=True, exist_ok=True)
        with kh_path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
        return AcceptedKey(name, key.get_fingerprint(), line, kh_path)

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: PurePosixPath | Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        stdin: str | Path | None = None,
        stdout: Callable[[bytes], None] | None = None,
    ) -> CommandResult:
        """Run argv on the host; a CommandResult shaped like LocalTransport's. A host that
        cannot be reached gives exit_code -1 and `error` (as a command that cannot start).

        `stdin` is text, or a local file streamed as bytes (an artifact sent to the command
        that unpacks it: no SFTP session, no second round trip). `stdout`, when given, gets
        the output as bytes, chunk by chunk, on the event loop's thread (an archive written
        as it comes); the result's stdout is then empty.

        The output is read as it comes and bounded (`BoundedText`). The result comes when
        the command exits: a background child that kept its output gets `exit_grace` to
        finish writing, then the channel is closed and the result's `note` names it."""
        load_asyncssh()
        import asyncssh

        args = tuple(argv)
        started = time.monotonic()
        try:
            marker = f"RGPID{secrets.token_hex(6)}"
            line = remote_command(args, cwd=cwd, env=env, pid_marker=marker)
            await self.connect()
        except (SshError, ValueError) as exc:
            message = exc.message if isinstance(exc, SshError) else str(exc)
            return CommandResult(args, -1, "", "", time.monotonic() - started, error=message)
        out = BoundedText()
        err = _Stderr(marker)
        try:
            binary = isinstance(stdin, Path) or stdout is not None  # bytes; text decoded here
            process = await self._conn.create_process(
                line, encoding=None if binary else "utf-8", errors="replace"
            )
        except (asyncssh.Error, OSError) as exc:
            return CommandResult(
                args, -1, "", "", time.monotonic() - started, error=f"{self.target}: {exc}"
            )
        run = _RemoteRun(process, err)
        self._running[id(run)] = run
        _hosts_running[id(self)] = (self, asyncio.get_running_loop())

        def result(code: int, **extra: Any) -> CommandResult:
            return CommandResult(
                args, code, out.text(), err.text(), time.monotonic() - started, **extra
            )

        try:
            sink = out if stdout is None else _Bytes(stdout)
            held = await asyncio.wait_for(
                _communicate(process, stdin, sink, err, self.exit_grace, run.stop), timeout
            )
        except TimeoutError:
            await self._kill(process, err.pid)
            return result(-1, timed_out=True, interrupted=False)
        except (asyncssh.Error, OSError) as exc:
            if run.interrupted:
                return result(-1, interrupted=True)
            return result(-1, error=f"{self.target}: connection lost: {exc}")
        finally:
            del self._running[id(run)]
            if not self._running:
                _hosts_running.pop(id(self), None)
        if run.interrupted:
            process.close()
            return result(-1, interrupted=True)
        note = ""
        if held:
            note = await self._held_note(held, err.pid)
            process.close()  # the channel stays open as long as the child holds the output
        code = process.returncode
        if code is None:  # the channel closed without an exit status (connection lost)
            return result(-1, error=f"{self.target}: the command ended without an exit status")
        return result(int(code), note=note)

    async def terminate_running(self, grace: float = 5.0) -> list[int]:
        """Stop the commands running now on this host: SIGTERM to each one's process group
        (through a second channel: OpenSSH ignores the protocol's signals), up to `grace`
        seconds for it to end, then SIGKILL; their `run()` returns with `interrupted=True`.
        Returns the remote process groups signalled."""
        runs = [r for r in self._running.values() if r.process.exit_status is None]
        for run in runs:
            run.interrupted = True

        async def stop(run: _RemoteRun) -> int | None:
            pid = run.err.pid
            if pid is not None and self._conn is not None:
                steps = max(1, int(grace * 10))
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        self._conn.run(
                            remote_command(["sh", "-c", _STOP_GROUP, "sh", str(pid), str(steps)])
                        ),
                        grace + 10,
                    )
            else:  # the pid has not arrived yet: the protocol's signal, then the channel
                with contextlib.suppress(Exception):
                    run.process.terminate()
            run.stop.set()  # its run() returns now, whatever the channel does
            run.process.close()
            return pid

        pids = await asyncio.gather(*(stop(r) for r in runs))
        return [p for p in pids if p is not None]

    async def _held_note(self, streams: list[str], pid: int | None) -> str:
        """The note on a command whose output a background process still holds, naming it
        when the host shows it (processes of the command's session with a pipe as stdout
        or stderr); best effort, bounded."""
        who = "a process it started"
        if pid is not None and self._conn is not None:
            with contextlib.suppress(Exception):
                found = await asyncio.wait_for(
                    self._conn.run(remote_command(["sh", "-c", _SESSION_HOLDERS, "sh", str(pid)])),
                    5,
                )
                lines = str(found.stdout or "").splitlines()[:10]
                names = []
                for holder in lines:
                    hpid, _, cmd = holder.partition(" ")
                    if hpid.isdigit():
                        names.append(f"pid {hpid} ({cmd.strip()[:200] or '?'})")
                if names:
                    who = ", ".join(names)
        return (
            f"the command exited but {who} still holds its {' and '.join(streams)} on "
            f"{self.target}; the step did not wait for it and closed the channel, so its "
            f"next write there may fail (SIGPIPE). To run a process in the background, "
            f"{DETACH_HINT}"
        )

    async def _kill(self, process: Any, pid: int | None) -> None:
        """Stop a timed-out command: SIGKILL its process group (the remote shell is a session
        leader and `exec`s the command) through a second channel of the connection, since
        OpenSSH ignores the protocol's signal requests; then close its channel."""
        if pid is not None and self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._conn.run(f"kill -KILL -{pid} 2>/dev/null || kill -KILL {pid}"), 10
                )
        process.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(process.wait_closed(), 5)

    async def open_stream(self, where: str | tuple[str, int]) -> tuple[Any, Any]:
        """A byte stream to a socket as the host sees it: a unix socket path
        (direct-streamlocal) or (host, port) (direct-tcpip) on this host's connection.
        Raises SshError, or asyncssh's ChannelOpenError when the host refuses."""
        await self.connect()
        if isinstance(where, str):
            streams = await self._conn.open_unix_connection(where, encoding=None)
        else:
            streams = await self._conn.open_connection(where[0], where[1], encoding=None)
        reader, writer = streams
        return reader, writer

    async def put(
        self, local: Path, remote: PurePosixPath | str, *, timeout: float | None = None
    ) -> str:
        """Upload `local` to `remote` over SFTP on this connection; return its sha256 (hex).

        The file arrives as `remote.part-XXXX`, its sha256 is computed on the host
        (`sha256sum`) and compared, and only then is it renamed to `remote`. A mismatch
        raises SshError and leaves nothing at `remote`.
        """
        remote = str(remote)
        digest = await _digest(local)
        await self.connect()
        part = f"{remote}.part-{secrets.token_hex(4)}"
        try:
            await asyncio.wait_for(self._upload(local, part), timeout)
            # One round trip: the host computes the sum, and renames only on a match.
            check = await self.run(
                ["sh", "-c", _VERIFY_AND_MOVE, "sh", part, digest, remote], timeout=timeout
            )
            if not check.ok:
                why = check.stderr.strip() or check.describe()
                raise SshError(f"{self.target}: {remote}: {why}")
        except BaseException:
            with contextlib.suppress(Exception):
                await self.run(["rm", "-f", "--", part], timeout=10)
            raise
        return digest

    async def _upload(self, local: Path, remote: str) -> None:
        import asyncssh

        try:
            async with self._conn.start_sftp_client() as sftp:
                await sftp.put(str(local), remote)
        except (asyncssh.Error, OSError) as exc:
            raise SshError(f"{self.target}: upload of {local} to {remote} failed: {exc}") from exc

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            with contextlib.suppress(Exception):
                await self._conn.wait_closed()
            self._conn = None


_VERIFY_AND_MOVE = """\
sum=$(sha256sum -- "$1") || exit 1
sum=${sum%% *}
if [ "$sum" != "$2" ]; then echo "arrived with sha256 $sum, sent $2" >&2; exit 1; fi
mv -f -- "$1" "$3"
"""


# SIGTERM to process group $1, up to $2 tenths of a second for it to end, then SIGKILL.
_STOP_GROUP = """\
kill -TERM "-$1" 2>/dev/null || exit 0
i=0
while [ "$i" -lt "$2" ] && kill -0 "-$1" 2>/dev/null; do sleep 0.1; i=$((i+1)); done
kill -KILL "-$1" 2>/dev/null
exit 0
"""

# The live processes of session $1 whose stdout or stderr is a pipe: "pid command line".
_SESSION_HOLDERS = """\
exec 2>/dev/null
sid=$1
for d in /proc/[0-9]*; do
  read -r stat < "$d/stat" || continue
  set -- ${stat##*) }
  [ "$4" = "$sid" ] && [ "$1" != Z ] || continue
  case "$(readlink "$d/fd/1") $(readlink "$d/fd/2")" in
    *pipe:*) printf '%s %s\\n' "${d#/proc/}" "$(tr '\\0' ' ' < "$d/cmdline")" ;;
  esac
done
"""


@dataclass
class _RemoteRun:
    process: Any
    err: _Stderr
    interrupted: bool = False
    stop: asyncio.Event = field(default_factory=asyncio.Event)


# Hosts with a command running now, and the loop each runs on (terminate_running below).
_hosts_running: dict[int, tuple[AsyncSshHost, asyncio.AbstractEventLoop]] = {}


def terminate_running(grace: float = 5.0) -> list[str]:
    """`AsyncSshHost.terminate_running` on every host with a command running now, from
    synchronous code (a signal handler, or a thread other than the hosts' loop); returns
    "target pid" per group signalled. A host whose loop runs on this very thread cannot
    be waited for: its stop is scheduled there, and the caller should rather `await`
    `host.terminate_running()` from that loop."""
    return wait_stopped(start_terminating(grace), grace)


Stopping = list[tuple["AsyncSshHost", "concurrent.futures.Future[list[int]]"]]


def start_terminating(grace: float = 5.0) -> Stopping:
    """The first half of `terminate_running`: the stops scheduled on the hosts' loops (from
    the calling thread, which is how a loop of this thread is recognised), not waited for."""
    waits: Stopping = []
    for host, loop in list(_hosts_running.values()):
        if loop.is_closed():
            continue
        future = asyncio.run_coroutine_threadsafe(host.terminate_running(grace), loop)
        if _loop_thread(loop) is not threading.current_thread():
            waits.append((host, future))
    return waits


def wait_stopped(waits: Stopping, grace: float) -> list[str]:
    """The second half: wait for the stops `start_terminating` scheduled."""
    stopped: list[str] = []
    for host, future in waits:
        with contextlib.suppress(Exception):
            stopped += [f"{host.target} {pid}" for pid in future.result(grace + 20)]
    return stopped


def _loop_thread(loop: asyncio.AbstractEventLoop) -> threading.Thread | None:
    try:
        return _LOOP_THREADS.get(loop) or (
            threading.current_thread() if asyncio.get_running_loop() is loop else None
        )
    except RuntimeError:  # no loop runs on this thread
        return None


_LOOP_THREADS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, threading.Thread] = (
    weakref.WeakKeyDictionary()
)


async def _communicate(
    process: Any,
    stdin: str | Path | None,
    out: BoundedText | _Bytes,
    err: _Stderr,
    grace: float,
    stop: asyncio.Event,
) -> list[str]:
    """Feed stdin (then EOF), collect stdout and stderr as they come (a timeout keeps what
    arrived), wait for the exit status. Once the exit status has come, the output gets
    `grace` seconds to end; returns the streams still open then (held by a background
    process), else []. Returns at once when `stop` is set (an interruption)."""

    async def pump(stream: Any, sink: BoundedText | _Bytes | _Stderr) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while data := await stream.read(65536):
            if isinstance(sink, _Bytes):
                sink.append(data)
            else:
                sink.append(decoder.decode(data) if isinstance(data, bytes) else data)
        if not isinstance(sink, _Bytes):
            sink.append(decoder.decode(b"", final=True))

    async def feed() -> None:
        if isinstance(stdin, Path):
            with stdin.open("rb") as source:
                while chunk := source.read(STREAM_CHUNK):
                    process.stdin.write(chunk)
                    await process.stdin.drain()
        elif stdin:
            process.stdin.write(stdin)
        process.stdin.write_eof()

    async def exited() -> None:
        # asyncssh has no event for the exit status alone (wait() waits for the channel to
        # close, which a background child holding the output delays): look now and then.
        while process.exit_status is None and process.exit_signal is None:
            await asyncio.sleep(0.1)

    readers = {
        "stdout": asyncio.ensure_future(pump(process.stdout, out)),
        "stderr": asyncio.ensure_future(pump(process.stderr, err)),
    }
    tasks = [asyncio.ensure_future(feed()), *readers.values()]
    everything = asyncio.gather(*tasks)
    watch = asyncio.ensure_future(exited())
    stopped = asyncio.ensure_future(stop.wait())
    first: list[asyncio.Future[Any]] = [everything, watch, stopped]
    try:
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        if not everything.done() and not stopped.done():
            await asyncio.wait(first[::2], timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        if stopped.done():
            return []
        if everything.done():
            everything.result()  # a connection lost raises here
            await process.wait()
            return []
        return [name for name, task in readers.items() if not task.done()]
    finally:
        for task in (*tasks, watch, stopped):
            task.cancel()
        await asyncio.gather(everything, watch, stopped, return_exceptions=True)


STREAM_CHUNK = 256 * 1024


@dataclass
class _Bytes:
    """stdout handed on as bytes (AsyncSshHost.run's `stdout`)."""

    sink: Callable[[bytes], None]

    def append(self, data: bytes) -> None:
        self.sink(data)


class _Stderr:
    """stderr of a remote command: its first line, MARKER<pid>, is taken out and kept; the
    rest is kept bounded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.pid: int | None = None
        self.chunks = BoundedText()
        self._head: str | None = ""  # None once the first line was seen

    def append(self, data: str) -> None:
        if self._head is None:
            self.chunks.append(data)
            return
        self._head += data
        if "\n" not in self._head:
            if len(self._head) > 256:  # no marker line is that long: plain output
                self.chunks.append(self._head)
                self._head = None
            return
        first, rest = self._head.split("\n", 1)
        self._head = None
        if first.startswith(self.marker) and first[len(self.marker) :].isdigit():
            self.pid = int(first[len(self.marker) :])
        else:
            rest = f"{first}\n{rest}"
        if rest:
            self.chunks.append(rest)

    def text(self) -> str:
        return self.chunks.text() + (self._head or "")


_digests: dict[tuple[str, int, int], asyncio.Future[str]] = {}


async def _digest(path: Path) -> str:
    """sha256 of a local file, computed once per content (a fleet sends one file to N hosts,
    side by side: they all wait on the same computation)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    found = _digests.get(key)
    if found is None or (found.done() and found.exception() is not None):
        found = _digests[key] = asyncio.ensure_future(asyncio.to_thread(_sha256_file, path))
    return await found


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- the synchronous facade ---------------------------------------------------------------


class LoopRunner:
    """An event loop on a thread of its own; `call(coro)` runs a coroutine there and waits.

    One runner serves any number of hosts (their connections live on its loop), and works
    from synchronous code even when the caller's thread has an event loop of its own.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._guard:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="releasegate-ssh", daemon=True
                )
                thread.start()
                _LOOP_THREADS[loop] = thread
                self._loop, self._thread = loop, thread
            return self._loop

    def call(self, coro: Coroutine[Any, Any, T] | Awaitable[T]) -> T:
        loop = self._started()
        if self._thread is threading.current_thread():
            raise RuntimeError("LoopRunner.call from its own loop: await the coroutine instead")
        future = asyncio.run_coroutine_threadsafe(_as_coro(coro), loop)
        return future.result()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start a coroutine on the loop without waiting: a fleet submits one per host and
        collects them as they finish (concurrent.futures.as_completed)."""
        return asyncio.run_coroutine_threadsafe(coro, self._started())

    def close(self) -> None:
        with self._guard:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _as_coro(aw: Awaitable[T]) -> T:
    return await aw


class SshTransport:
    """The `Transport` protocol over one SSH host (the engine's synchronous calls)."""

    name = "ssh"

    def __init__(
        self,
        target: SshTarget | str,
        options: SshOptions | None = None,
        *,
        runner: LoopRunner | None = None,
    ) -> None:
        self.target = SshTarget.parse(target) if isinstance(target, str) else target
        self.host = AsyncSshHost(self.target, options or SshOptions())
        self._own_runner = runner is None
        self.runner = runner or LoopRunner()

    @property
    def accepted_key(self) -> AcceptedKey | None:
        return self.host.accepted_key

    @property
    def connections_opened(self) -> int:
        return self.host.connections_opened

    def connect(self) -> ConnectInfo:
        return self.runner.call(self.host.connect())

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        stdin: str | Path | None = None,
        stdout: Callable[[bytes], None] | None = None,
    ) -> CommandResult:
        return self.runner.call(
            self.host.run(argv, cwd=cwd, env=env, timeout=timeout, stdin=stdin, stdout=stdout)
        )

    def put(self, local: Path, remote: PurePosixPath | str, *, timeout: float | None = None) -> str:
        return self.runner.call(self.host.put(local, remote, timeout=timeout))

    def terminate_running(self, grace: float = 5.0) -> list[int]:
        """Stop this host's running commands (`AsyncSshHost.terminate_running`); callable
        from a signal handler or another thread while `run()` waits."""
        if not self.host._running:
            return []
        return self.runner.call(self.host.terminate_running(grace))

    def close(self) -> None:
        try:
            self.runner.call(self.host.close())
        finally:
            if self._own_runner:
                self.runner.close()

    def __enter__(self) -> SshTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "AcceptedKey",
    "AsyncSshHost",
    "ConnectInfo",
    "HostKeyRefused",
    "LoopRunner",
    "SshError",
    "SshOptions",
    "SshTarget",
    "SshTransport",
    "env_words",
    "quote_word",
    "remote_command",
    "terminate_running",
]
