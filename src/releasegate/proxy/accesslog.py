"""The share of 5xx answers in a proxy's access log since an offset (the switch), read
within a byte budget. Knows nginx's and HAProxy's default text lines and Caddy's JSON. The
one parser of access logs: the watch window counts the lines it reads on each host with
`count`."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable

MAX_READ = 64 * 1024 * 1024  # bytes read per call at most
MAX_LINE = 64 * 1024  # a longer line is not a log line: skipped
# nginx combined/common: `"GET / HTTP/1.1" 200 612`
_NGINX = re.compile(rb'"[^"\n]*" (\d{3}) (?:\d+|-)')
# HAProxy httplog: `be/srv 0/0/0/1/1 200 123`
_HAPROXY = re.compile(rb"\s-?\d+/-?\d+/-?\d+/-?\d+/\+?-?\d+ (\d{3}) ")


def status_of(line: bytes) -> int | None:
    """The HTTP status a log line records; None for a line that is not a request."""
    if line.startswith(b"{"):
        try:
            data = json.loads(line)
        except ValueError:
            return None
        status = data.get("status") if isinstance(data, dict) else None
        return status if isinstance(status, int) and 100 <= status <= 599 else None
    found = _NGINX.search(line) or _HAPROXY.search(line)
    return int(found[1]) if found else None


def count(lines: Iterable[bytes]) -> tuple[int, int]:
    """(requests, 5xx answers) among whole access-log lines; other lines are skipped."""
    total = errors = 0
    for line in lines:
        if not line or len(line) > MAX_LINE:
            continue
        status = status_of(line)
        if status is None:
            continue
        total += 1
        errors += status >= 500
    return total, errors


def log_offset(log_path: str | os.PathLike[str]) -> int:
    """Where the log ends now: the offset to give `fivexx_share` after a switch."""
    try:
        return os.stat(log_path).st_size
    except FileNotFoundError:
        return 0


def scan(
    log_path: str | os.PathLike[str], since_offset: int = 0, *, max_bytes: int = MAX_READ
) -> tuple[int, int, int]:
    """(requests, 5xx, offset after the last whole line read). A log that shrank (rotated)
    is read from its start."""
    try:
        fh = open(log_path, "rb")
    except FileNotFoundError:
        return 0, 0, since_offset
    with fh:
        size = os.fstat(fh.fileno()).st_size
        start = since_offset if 0 <= since_offset <= size else 0
        fh.seek(start)
        data = fh.read(max(0, min(max_bytes, size - start)))
    end = data.rfind(b"\n") + 1  # a half-written last line waits for the next call
    total, errors = count(data[:end].split(b"\n"))
    return total, errors, start + end


def fivexx_share(
    log_path: str | os.PathLike[str], since_offset: int = 0, *, max_bytes: int = MAX_READ
) -> tuple[int, int]:
    """(requests, 5xx answers) logged after `since_offset` (see `log_offset`)."""
    total, errors, _end = scan(log_path, since_offset, max_bytes=max_bytes)
    return total, errors
