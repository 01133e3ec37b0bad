"""The transports' output handling as data: bounded text kept as it arrives, decoding of
split chunks, the terminal tail of a failed command, the result's new states."""

from __future__ import annotations

import random

import pytest

from releasegate.redact import Redactor
from releasegate.transport import DEFAULT_COMMAND_TIMEOUT_S, tail_for_terminal
from releasegate.transport.base import (
    BoundedText,
    CommandResult,
    StreamDecoder,
    bound,
)
from releasegate.transport.ssh import _Stderr


def _chunks(text: str, rng: random.Random) -> list[str]:
    out, i = [], 0
    while i < len(text):
        n = rng.choice([1, 3, 7, 64, 500, 4096])
        out.append(text[i : i + n])
        i += n
    return out


@pytest.mark.parametrize("size", [0, 1, 99, 100, 101, 150, 199, 200, 201, 250, 1000, 12345])
@pytest.mark.parametrize("limit", [100, 101])
def test_bounded_text_equals_bound_of_everything(size: int, limit: int) -> None:
    rng = random.Random(size * 1000 + limit)
    text = "".join(rng.choice("abcdef\n") for _ in range(size))
    kept = BoundedText(limit)
    for chunk in _chunks(text, rng):
        kept.append(chunk)
    assert kept.text() == bound(text, limit)
    assert kept.total == size


def test_bounded_text_never_holds_more_than_a_few_limits() -> None:
    kept = BoundedText(1000)
    for _ in range(10_000):
        kept.append("x" * 777)
    held = sum(map(len, kept._head)) + len(kept._tail)
    assert held <= 3 * 1000 + 777
    assert "[7769000 characters cut]" in kept.text()


def test_stream_decoder_keeps_split_characters_and_translates_newlines() -> None:
    got: list[str] = []
    decoder = StreamDecoder(got.append)
    data = "é€ line\r\nnext\rlast 😀".encode()
    for i in range(len(data)):  # one byte at a time: every character split
        decoder.feed(data[i : i + 1])
    decoder.close()
    assert "".join(got) == "é€ line\nnext\nlast 😀"


def test_stream_decoder_replaces_bad_bytes() -> None:
    got: list[str] = []
    decoder = StreamDecoder(got.append)
    decoder.feed(b"ok \xff\xfe end")
    decoder.close()
    assert "".join(got) == "ok \ufffd\ufffd end"


def _result(stdout: str = "", stderr: str = "", **kw: object) -> CommandResult:
    return CommandResult(("x",), 1, stdout, stderr, 0.5, **kw)  # type: ignore[arg-type]


def test_tail_for_terminal_masks_then_keeps_the_last_lines() -> None:
    lines = [f"line {i}" for i in range(100)]
    result = _result("\n".join(lines) + "\n", "failed: password=hunter22 token hunter22\n")
    tail = tail_for_terminal(result, Redactor(["hunter22"]), lines=5)
    assert tail.splitlines() == [
        "line 96",
        "line 97",
        "line 98",
        "line 99",
        "failed: password=*** token ***",
    ]
    assert "hunter22" not in tail


def test_tail_for_terminal_bounds_characters_and_drops_escapes() -> None:
    result = _result("\x1b[2J\x1b]0;title\x07" + "y" * 5000)
    tail = tail_for_terminal(result, lambda s: s, max_chars=100)
    assert len(tail) == 100
    assert tail.startswith("...")
    assert "\x1b" not in tail and "\x07" not in tail


def test_tail_for_terminal_masks_a_secret_the_cut_would_split() -> None:
    # A secret across the character bound: masked first, so no half of it is shown.
    secret = "s3cr3t-value-0123456789"
    result = _result("z" * 50 + secret + "\n")
    tail = tail_for_terminal(result, Redactor([secret]), max_chars=20)
    assert "s3cr" not in tail and "6789" not in tail
    assert tail.endswith("***")


def test_tail_for_terminal_empty_output() -> None:
    assert tail_for_terminal(_result(" \n", ""), lambda s: s) == ""


def test_interrupted_result_is_not_ok_and_says_so() -> None:
    r = CommandResult(("x",), -1, "", "", 2.0, interrupted=True)
    assert not r.ok
    assert r.describe().startswith("interrupted after 2.0s")
    assert CommandResult(("x",), 0, "", "", 0.1, note="held").ok


def test_default_timeout_is_the_configs() -> None:
    from releasegate.config.schema import FleetConfig

    assert FleetConfig().command_timeout == DEFAULT_COMMAND_TIMEOUT_S


def test_ssh_stderr_is_bounded_and_loses_only_the_marker() -> None:
    err = _Stderr("RGPIDab12")
    err.append("RGPIDab12")
    err.append("4242\nfirst\n")
    for _ in range(1000):
        err.append("e" * 100)
    assert err.pid == 4242
    text = err.text()
    assert text.startswith("first\n") and len(text) < 16_100
    assert "[84006 characters cut]" in text


def test_ssh_stderr_without_a_marker_line_is_kept_and_bounded() -> None:
    err = _Stderr("RGPIDab12")
    for _ in range(100):
        err.append("no newline " * 30)
    assert err.pid is None
    assert err.text().startswith("no newline no newline")
    assert len(err.text()) < 16_100
