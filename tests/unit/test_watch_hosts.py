"""The watch window's logs on each host, as data: the range reader's argv and the decoding
of its answers (good, broken, hostile), the programs driven by scripted answers and by the
real local transport (rotation, truncation, a missing file, binary bytes, a line cut at
the bound), the one access-log parser on nginx, HAProxy, Caddy and http.server lines, and
the per-host verdicts that name the host whose log failed."""

from __future__ import annotations

import base64
import gzip
import os
from collections.abc import Generator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from releasegate import hosttext
from releasegate.hosttext import HostRange, parse_range, range_argv, read_range_program
from releasegate.ops import Cmd, run_sync
from releasegate.proxy.accesslog import count, status_of
from releasegate.transport.base import CommandResult
from releasegate.transport.local import LocalTransport
from releasegate.watch.config import WatchConfig
from releasegate.watch.logs import MAX_LINE, Tail, Want, mark_program, read_program
from releasegate.watch.window import Checks

P = PurePosixPath("/srv/app/shared/logs/app.log")


def _answer(stdout: str = "", code: int = 0, stderr: str = "", error: str = "") -> CommandResult:
    return CommandResult(("sh",), code, stdout, stderr, 0.01, error=error)


def _chunk(size: int, ino: int, start: int, data: bytes) -> CommandResult:
    """A plain answer (what a host sends for bytes that do not shrink, or without gzip)."""
    return _answer(f"{size} {ino} {start} b\n" + base64.b64encode(data).decode())


def _packed(size: int, ino: int, start: int, data: bytes) -> CommandResult:
    return _answer(f"{size} {ino} {start} z\n" + base64.b64encode(gzip.compress(data)).decode())


def drive(program: Generator[Any, Any, Any], answers: list[CommandResult]) -> tuple[Any, list]:
    """Run a program on scripted answers; (its value, the argv lists it asked for)."""
    asked: list[tuple[str, ...]] = []
    try:
        op = next(program)
        while True:
            assert isinstance(op, Cmd)
            asked.append(op.argv)
            op = program.send(answers.pop(0))
    except StopIteration as stop:
        return stop.value, asked


# -- the range reader: argv and decoding ---------------------------------------------------------


def test_range_argv_is_data_and_every_value_an_argument() -> None:
    argv = range_argv(P, 120, 40_000, inode=77)
    assert argv[:2] == ["sh", "-c"]
    assert argv[3:] == [
        "sh", str(P), "120", "121", "40000", "77", str(hosttext.Z_LIMIT), str(hosttext.CHUNK),
    ]  # fmt: skip
    assert "stat -L -c '%s %i'" in argv[2] and "gzip -c | base64 -w0" in argv[2]
    assert "$1" in argv[2] and str(P) not in argv[2]  # the path never enters the script
    assert range_argv(P, 0, 0)[8:] == ["", str(hosttext.Z_LIMIT), "0"]  # no inode: not compared
    hostile = PurePosixPath("/srv/x; rm -rf / #$(id)")
    assert range_argv(hostile, 0, 1)[4] == str(hostile)
    with pytest.raises(ValueError):
        range_argv(P, -1, 10)
    assert hosttext.Z_LIMIT + 50 < hosttext.OUTPUT_LIMIT  # an answer is never cut


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("stdout", "parsed"),
    [
        ("12 345 0 b\n" + _b64(b"a\nb"), (12, 345, 0, False, b"a\nb")),
        ("12 345 0 z\n" + _b64(gzip.compress(b"a\nb")), (12, 345, 0, True, b"a\nb")),
        ("0 9 0 b\n", (0, 9, 0, False, b"")),
        ("5 9 5 z\n" + _b64(gzip.compress(b"")) + "\n", (5, 9, 5, True, b"")),
        ("12 345 0 b\n!!!!", None),  # not base64
        ("12 345 0\nYQ==", None),  # a field missing
        ("12 345 0 x\nYQ==", None),
        ("-1 2 0 b\nYQ==", None),
        ("1 2 3 b\nYQ==\nextra", None),
        ("9" * 30 + " 1 0 b\n", None),  # a size no file has
        ("1 2 0 z\n" + _b64(b"not gzip"), None),
        ("1 2 0 z\n" + _b64(gzip.compress(b"abc")[:-6]), None),  # cut short
        ("1 2 0 z\n" + _b64(gzip.compress(b"\0" * 1_000_000)), None),  # a bomb: 1 MB for 100
        ("", None),
        ("\x1b[31mhello\n", None),
    ],
)
def test_parse_range(stdout: str, parsed: tuple | None) -> None:
    assert parse_range(stdout, 100) == parsed


def test_a_range_comes_in_chunks_up_to_the_cap() -> None:
    # junk that does not shrink comes plain, CHUNK bytes a round trip
    data = bytes(range(256)) * 100  # 25,600 bytes of binary junk
    c = hosttext.CHUNK
    answers = [
        _chunk(len(data) + 500, 7, 500, data[:c]),
        _chunk(len(data) + 500, 7, 500 + c, data[c : 2 * c]),
        _chunk(len(data) + 500, 7, 500 + 2 * c, data[2 * c : 25_000]),
    ]
    got, asked = drive(read_range_program(P, 500, 25_000), answers)
    assert got == HostRange(data[:25_000], 500, len(data) + 500, 7)
    assert got.end == 25_500 and not got.rotated
    # each round trip asks for the rest, on the file of the first answer's inode
    assert [a[5:9] for a in asked] == [
        ("500", "501", "25000", ""),
        (str(500 + c), str(501 + c), str(25_000 - c), "7"),
        (str(500 + 2 * c), str(501 + 2 * c), str(25_000 - 2 * c), "7"),
    ]
    # text that shrinks comes compressed, more a round trip as its ratio allows
    text = b'127.0.0.1 - - [03/Dec/2026] "GET / HTTP/1.1" 200 12\n' * 5_000
    first = hosttext.Z_FIRST
    answer = _packed(len(text), 3, 0, text[:first])
    second = len(text) - first
    got, asked = drive(
        read_range_program(P, 0, len(text)), [answer, _packed(len(text), 3, first, text[first:])]
    )
    assert got.data == text and [a[7] for a in asked] == [str(first), str(second)]


def test_a_range_stops_at_the_end_of_the_file_and_at_the_deadline() -> None:
    got, asked = drive(read_range_program(P, 0, 10**6), [_chunk(5, 1, 0, b"hello")])
    assert got.data == b"hello" and len(asked) == 1
    c = hosttext.CHUNK
    now = iter([99.0])  # asked after the first round trip: past the deadline
    answers = [_chunk(10**6, 1, 0, b"x" * c), _chunk(10**6, 1, c, b"y" * c)]
    got, asked = drive(
        read_range_program(P, 0, 10**6, deadline=50.0, clock=lambda: next(now)), answers
    )
    assert got.data == b"x" * c and len(asked) == 1  # the rest waits for the next round


def test_rotation_missing_errors_and_hostile_answers() -> None:
    # the file shrank below the offset: read from 0, and said
    got, _ = drive(read_range_program(P, 900, 100), [_chunk(40, 1, 0, b"new\n")])
    assert got.rotated and got.start == 0 and got.end == 4
    # no such file: nothing, from 0 (once it exists it is read from its start)
    got, _ = drive(read_range_program(P, 900, 100), [_answer(code=3)])
    assert got.missing and got.rotated and got.end == 0
    got, _ = drive(read_range_program(P, 0, 100), [_answer(code=3)])
    assert got.missing and not got.rotated
    got, _ = drive(read_range_program(P, 0, 100), [_answer(code=1, stderr="not a readable file")])
    assert "not a readable file" in got.error and not got.lost and got.end == 0
    got, _ = drive(read_range_program(P, 7, 100), [_answer(code=-1, error="connection lost")])
    assert got.lost and "connection lost" in got.error and got.end == 7
    got, _ = drive(read_range_program(P, 0, 100), [_answer("Permission denied\n")])
    assert "not a range" in got.error
    # more bytes than asked for, or from elsewhere: refused, nothing taken
    got, _ = drive(read_range_program(P, 0, 3), [_chunk(10, 1, 0, b"toolong")])
    assert "other bytes than asked for" in got.error
    got, _ = drive(read_range_program(P, 10, 3), [_chunk(99, 1, 50, b"abc")])
    assert "other bytes than asked for" in got.error


def test_what_was_read_stands_when_a_later_round_trip_fails() -> None:
    c = hosttext.CHUNK
    answers = [_chunk(10**6, 1, 0, b"a" * c), _answer(code=-1, error="timeout")]
    got, _ = drive(read_range_program(P, 0, 10**6), answers)
    assert got.ok and got.data == b"a" * c  # the next read goes on from c
    answers = [_chunk(10**6, 1, 0, b"a" * c), _chunk(10, 2, 0, b"b" * 10)]
    got, _ = drive(read_range_program(P, 0, 10**6), answers)
    assert got.data == b"a" * c and got.inode == 1  # rotated between two round trips


# -- the real programs through the local transport ----------------------------------------------


def _read(path: Path, offset: int, max_bytes: int, inode: int | None = None) -> HostRange:
    program = read_range_program(PurePosixPath(str(path)), offset, max_bytes, inode=inode)
    return run_sync(program, LocalTransport())


def test_a_real_file_byte_for_byte_rotated_truncated_and_missing(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    junk = bytes(range(256)) * 200 + b"\n"  # binary, longer than a chunk
    log.write_bytes(b"old\n" + junk)
    got = _read(log, 4, 10**6)
    assert got.ok and got.data == junk and got.size == log.stat().st_size
    assert got.inode == os.stat(log).st_ino
    assert _read(log, 4, 100).data == junk[:100]
    assert _read(log, got.end, 100).data == b""  # nothing new
    # truncated (copytruncate): smaller than the offset, read from 0
    log.write_bytes(b"after\n")
    again = _read(log, got.end, 100, inode=got.inode)
    assert again.rotated and again.data == b"after\n"
    # replaced (mv + a new file) that grew past the old offset: its inode tells
    new = tmp_path / "new.log"
    new.write_bytes(b"n" * 10 + b"\n")
    first = _read(log, 0, 0)
    new.replace(log)
    swapped = _read(log, 3, 100, inode=first.inode)
    assert swapped.rotated and swapped.data == b"n" * 10 + b"\n"
    log.unlink()
    gone = _read(log, 11, 100)
    assert gone.missing and gone.end == 0
    assert "not a readable file" in _read(tmp_path, 0, 10).error
    # random bytes do not shrink: they come plain, CHUNK a round trip, exact all the same
    noise = tmp_path / "noise"
    noise.write_bytes(os.urandom(30_000))
    assert _read(noise, 1, 10**6).data == noise.read_bytes()[1:]


def test_marks_and_reads_per_host_programs(tmp_path: Path) -> None:
    app, access = tmp_path / "app.log", tmp_path / "access.log"
    app.write_bytes(b"before\n")
    marks = run_sync(mark_program([str(app), str(access)]), LocalTransport())
    assert marks[str(app)] == {"offset": 7, "inode": os.stat(app).st_ino}
    assert marks[str(access)] == {"offset": 0, "inode": None}  # not there yet: from its start
    app.write_bytes(b"before\nafter\n")
    access.write_bytes(b"x\n")
    wants = [Want(str(app), 7, marks[str(app)]["inode"]), Want(str(access), 0), Want("/x", None)]
    got = run_sync(read_program(wants, 1024), LocalTransport())
    assert got[str(app)].data == b"after\n" and got[str(access)].data == b"x\n"
    assert got["/x"].missing


def test_tail_whole_lines_cut_at_the_bound_and_rotation() -> None:
    tail = Tail("/l", 10, 5)
    assert tail.feed(HostRange(b"one\ntw", 10, 100, 5)) == [b"one"]
    assert (tail.offset, tail.behind) == (16, 84)
    assert tail.feed(HostRange(b"o\n" + b"z" * (MAX_LINE + 10) + b"\n", 16, 200, 5)) == [
        b"two",
        b"z" * MAX_LINE,
    ]
    assert tail.feed(HostRange(b"half", 0, 4, 6, rotated=True)) == []
    assert tail.rotated == 1 and tail.inode == 6
    assert tail.feed(HostRange(b"-done\n", 4, 10, 6)) == [b"half-done"]
    assert tail.feed(HostRange(start=10, error="cannot read /l: gone")) == []
    assert tail.error and tail.offset == 10  # the next round tries again from there
    unknown = Tail.from_mark("/l", {"offset": None, "error": "unreachable"})
    assert unknown.offset is None and unknown.want() == Want("/l", None, None)
    assert unknown.feed(HostRange(b"", 0, 42, 3)) == [] and unknown.offset == 42
    assert Tail.from_mark("/l", {"offset": True}).offset is None  # a hand-edited row
    assert Tail.from_mark("/l", "junk").offset is None


# -- one access-log parser -------------------------------------------------------------------------

NGINX = b'127.0.0.1 - - [03/Dec/2026:17:00:00 +0000] "GET / HTTP/1.1" 200 612 "-" "curl/8"'
NGINX_502 = b'10.0.0.1 - frank [03/Dec/2026:17:00:01 +0000] "POST /api HTTP/1.1" 502 157'
HAPROXY = (
    b"127.0.0.1:39152 [03/Dec/2026:17:00:02.123] web app/green 0/0/0/1/1 503 123 - - ---- "
    b'1/1/0/0/0 0/0 "GET / HTTP/1.1"'
)
CADDY = (
    b'{"level":"info","ts":1764781200.1,"logger":"http.log.access","msg":"handled request",'
    b'"request":{"method":"GET","uri":"/"},"status":500,"size":0,"duration":0.001}'
)
HTTP_SERVER = b'127.0.0.1 - - [03/Dec/2026 17:00:03] "GET /health HTTP/1.1" 200 -'


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (NGINX, 200),
        (NGINX_502, 502),
        (HAPROXY, 503),
        (CADDY, 500),
        (HTTP_SERVER, 200),
        (b"ERROR something else", None),
        (b'{"status": "500"}', None),
        (b"{not json", None),
        (b"\xff\xfe\x00 junk", None),
        (b"", None),
    ],
)
def test_one_parser_for_each_proxy_format(line: bytes, status: int | None) -> None:
    assert status_of(line) == status


def test_count_skips_what_is_not_a_request() -> None:
    lines = [NGINX, NGINX_502, HAPROXY, CADDY, HTTP_SERVER, b"noise", b"", b"x" * 70_000]
    assert count(lines) == (5, 3)


# -- per-host verdicts -----------------------------------------------------------------------------


def _cfg(**kw: Any) -> WatchConfig:
    return WatchConfig.model_validate({"duration": 2, "interval": 1, "smoke": False, **kw})


class FakeHosts:
    """What each host's logs hold, as the read programs would see them."""

    def __init__(self, files: dict[str, dict[str, bytes]]) -> None:
        self.files = files
        self.down: set[str] = set()
        self.asked: list[dict[str, list[Want]]] = []

    def read(self, wants: dict[str, list[Want]]) -> dict[str, dict[str, HostRange]]:
        self.asked.append(wants)
        found: dict[str, dict[str, HostRange]] = {}
        for host, ws in wants.items():
            found[host] = {}
            for w in ws:
                if host in self.down:
                    found[host][w.path] = HostRange(error=f"cannot read {w.path}: host gone")
                    continue
                data = self.files[host].get(w.path)
                if data is None:
                    found[host][w.path] = HostRange()
                    continue
                start = w.offset or 0
                found[host][w.path] = HostRange(data[start:], start, len(data), 1)
        return found


def test_the_failing_log_names_its_host() -> None:
    cfg = _cfg(log={"path": "/srv/app.log"}, access_log={"path": "/srv/access.log",
               "min_requests": 2, "max_5xx_share": 0.5})  # fmt: skip
    hosts = FakeHosts({
        "h1": {"/srv/app.log": b"ERROR old\n", "/srv/access.log": b""},
        "h2": {"/srv/app.log": b"ERROR old\n", "/srv/access.log": b""},
    })  # fmt: skip
    marks = {h: {"/srv/app.log": {"offset": 10, "inode": 1},
                 "/srv/access.log": {"offset": 0, "inode": 1}} for h in ("h1", "h2")}  # fmt: skip
    checks = Checks(cfg, ["h1", "h2"], marks, read_logs=hosts.read, redact=str.upper)
    [log, share] = checks.round()
    assert log.ok and share.ok and "(across 2 hosts)" in log.summary  # the old ERROR is not counted
    hosts.files["h2"]["/srv/app.log"] += b"boot\nERROR: db gone token=abc\n"
    hosts.files["h1"]["/srv/access.log"] += (NGINX + b"\n") * 3
    [log, share] = checks.round()
    assert not log.ok and share.ok
    assert log.summary.startswith("h2: 1 line(s) matching '(?i)error'") and "h1" not in log.summary
    assert "ERROR: DB GONE TOKEN=ABC" in log.summary  # through the redactor
    assert log.evidence["failed_hosts"] == ["h2"]
    assert checks.samples == ["h2: ERROR: DB GONE TOKEN=ABC"]
    # each host's reads go on from where that host's last one ended
    assert hosts.asked[-1]["h2"][0] == Want("/srv/app.log", 10, 1)
    evidence = checks.evidence()
    assert evidence["hosts"]["h2"]["logs"]["/srv/app.log"]["offset"] == 40
    assert evidence["hosts"]["h1"]["requests"] == 3 and evidence["log_matches"] == 1


def test_a_5xx_rise_on_one_host_and_an_unreadable_host_fail_by_name() -> None:
    cfg = _cfg(access_log={"path": "/a.log", "min_requests": 2, "max_5xx_share": 0.2})
    hosts = FakeHosts({"h1": {"/a.log": b""}, "h2": {"/a.log": b""}, "h3": {"/a.log": b""}})
    checks = Checks(cfg, ["h1", "h2", "h3"], {}, read_logs=hosts.read)
    [share] = checks.round()  # no marks: each log's end is looked up first
    assert share.ok
    hosts.files["h1"]["/a.log"] += (NGINX + b"\n") * 4
    hosts.files["h3"]["/a.log"] += HAPROXY + b"\n" + CADDY + b"\n" + NGINX + b"\n"
    [share] = checks.round()
    assert not share.ok and share.summary.startswith("h3: 5xx share 66.7% of 3 request(s)")
    hosts.down.add("h2")
    [share] = checks.round()
    assert "h2: cannot read /a.log: host gone" in share.summary
    assert share.evidence["failed_hosts"] == ["h2", "h3"]


def test_one_local_host_reads_the_real_files_and_says_what_it_said(tmp_path: Path) -> None:
    app = tmp_path / "app.log"
    app.write_bytes(b"ERROR before the switch\n")
    cfg = _cfg(log={"path": str(app)})

    def local(wants: dict[str, list[Want]]) -> dict[str, dict[str, HostRange]]:
        return {h: run_sync(read_program(ws, 1024), LocalTransport()) for h, ws in wants.items()}

    marks = {"local": run_sync(mark_program([str(app)]), LocalTransport())}
    checks = Checks(cfg, ["local"], marks, read_logs=local)
    assert all(c.ok for c in checks.round())
    with open(app, "ab") as f:
        f.write(b"an Error\xff here\n")
    [log] = checks.round()
    assert not log.ok and log.summary.startswith("1 line(s) matching")  # no host named
    assert checks.samples == ["an Error\ufffd here"]
