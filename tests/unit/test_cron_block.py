"""The cron block as data: rendering (quoting, `%`, secrets), finding, splicing and
comparing crontab text; schedules; the installer's program against scripted answers."""

from __future__ import annotations

import base64
import shlex
from datetime import datetime
from pathlib import PurePosixPath

import pytest
from pydantic import ValidationError

from releasegate.config.schedules import CronConfig
from releasegate.cron.block import CronError, Job, compare, find, job_line, render_jobs, splice
from releasegate.cron.install import Target, expected_block, install_ops, saved_block_ops
from releasegate.cron.schedule import CronInvalid, next_runs, validate
from releasegate.hosttext import CHUNK
from releasegate.ops import Cmd
from releasegate.transport.base import CommandResult

ENV = {
    "RELEASEGATE_VERSION": "v2",
    "RELEASEGATE_PREVIOUS_VERSION": "v1",
    "API_TOKEN": "s3cr3t",
    "DATABASE_URL": "postgresql://app:hunter2@db/app",
}
SYNC = Job("sync", "0 */6 * * *", ("python3", "sync.py", "--name", "it's 100% $(rm -rf /)"))


def test_a_line_is_quoted_for_sh_and_cron() -> None:
    line = job_line(SYNC, workdir="/srv/my app/current", env=ENV)
    assert line.startswith("0 */6 * * * cd '/srv/my app/current' && exec env ")
    assert "s3cr3t" not in line and "API_TOKEN" not in line  # secrets stay out
    assert "hunter2" not in line and "DATABASE_URL" not in line
    assert "PREVIOUS_VERSION" not in line  # a deploy's fact, not a job's
    # What sh receives once cron has turned `\%` back into `%`: the argv exactly.
    shell = line[len("0 */6 * * * ") :].replace("\\%", "%")
    words = shlex.split(shell)
    assert words[:5] == ["cd", "/srv/my app/current", "&&", "exec", "env"]
    assert words[5:] == ["RELEASEGATE_VERSION=v2", *SYNC.argv]
    assert "%" not in line.replace("\\%", "")  # no bare % reaches cron


def test_cron_d_lines_name_the_user() -> None:
    assert job_line(SYNC, workdir="/x", env={}, user="app").startswith("0 */6 * * * app cd /x")


@pytest.mark.parametrize(
    "argv",
    [("A=b", "x"), ("-rf",), ("echo", "two\nlines")],
)
def test_lines_refuse_words_that_would_change_their_meaning(argv: tuple[str, ...]) -> None:
    with pytest.raises(CronError):
        job_line(Job("bad", "* * * * *", argv), workdir="/x", env={})


def test_splice_keeps_other_lines_and_replaces_only_its_block() -> None:
    block = render_jobs("web", [SYNC], workdir="/x", env={})
    other = render_jobs("web-prod", [SYNC], workdir="/y", env={})
    theirs = "MAILTO=ops\n5 * * * * backup.sh\n"
    once = splice(theirs + other, "web", block)
    assert once.startswith(theirs + other) and once.endswith(block)
    newer = render_jobs("web", [Job("other", "@daily", ("true",))], workdir="/x", env={})
    twice = splice(once, "web", newer)
    assert twice == theirs + other + newer  # web-prod's block is not web's
    assert splice(twice, "web", None) == theirs + other
    assert splice("", "web", None) == ""


def test_a_damaged_block_is_refused_not_guessed() -> None:
    block = render_jobs("web", [SYNC], workdir="/x", env={})
    doubled = block + block
    with pytest.raises(CronError, match="damaged"):
        splice(doubled, "web", block)
    unclosed = block.replace("# END releasegate web\n", "")
    assert find(unclosed, "web").problems
    assert not compare(block, unclosed, "web").ok


def test_compare_names_each_difference() -> None:
    want = render_jobs("web", [SYNC, Job("monitor", "@hourly", ("mon.sh",))], workdir="/x", env={})
    assert compare(want, "x\n" + want, "web").ok
    changed = compare(want, want.replace("mon.sh", "evil.sh"), "web")
    assert not changed.ok
    assert changed.details == ["job monitor: changed: word 7 is 'evil.sh', expected 'mon.sh'"]
    extra = want.replace("# END", "# job intruder\n* * * * * curl x\n# END")
    assert compare(want, extra, "web").details == [
        "job intruder: not expected (installed outside releasegate?)"
    ]
    assert compare(want, "", "web").details == ["the block is missing: 2 job(s) not installed"]
    assert compare(None, want, "web").details[0].startswith("a block of 2 job(s) is installed")
    assert compare(None, "", "web").ok


@pytest.mark.parametrize(
    ("expr", "ok"),
    [
        ("0 */6 * * *", True),
        ("@hourly", True),
        ("30 4 * * 0", True),
        ("*/15 9-17 * * mon-fri", True),
        ("61 * * * *", False),
        ("* * * *", False),
        ("@sometimes", False),
        ("* * * * * extra", False),
        ("0 0 * * * %", False),
    ],
)
def test_schedules(expr: str, ok: bool) -> None:
    if ok:
        assert validate(expr)
    else:
        with pytest.raises(CronInvalid):
            validate(expr)


def test_next_runs() -> None:
    assert next_runs("0 */6 * * *", datetime(2026, 1, 1, 1, 0), 2) == [
        datetime(2026, 1, 1, 6, 0),
        datetime(2026, 1, 1, 12, 0),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"jobs": [{"name": "a", "schedule": "* * * * *", "argv": "echo hi"}]}, "not a shell"),
        ({"jobs": [{"name": "a", "schedule": "* * * *", "argv": ["x"]}]}, "5 fields"),
        ({"jobs": [{"name": "a", "schedule": "@daily", "argv": []}]}, "must not be empty"),
        ({"jobs": [{"name": "a", "schedule": "@daily", "argv": ["a\nb"]}]}, "newline"),
        (
            {"jobs": [{"name": "a", "schedule": "@daily", "argv": ["x"]}] * 2},
            "listed twice",
        ),
        ({"target": "cron.d"}, "user: required"),
    ],
)
def test_bad_cron_config(value: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CronConfig.model_validate(value)


def _drive(program, answers: dict[str, CommandResult]):
    """Run a program, answering each command by the first matching key in its argv."""
    seen = []
    try:
        op = next(program)
        while True:
            seen.append(op)
            text = " ".join(op.argv)
            answer = next(v for k, v in answers.items() if k in text)
            op = program.send(answer)
    except StopIteration as stop:
        return stop.value, seen


def _ok(stdout: str = "") -> CommandResult:
    return CommandResult((), 0, stdout, "", 0.0)


COPY = "/tmp/releasegate-crontab.AbC123"


class FakeHost:
    """Files and crontabs as a host would answer the installer's commands: the crontab is
    copied into COPY, every file is read in base64 chunks (hosttext), `rm` removes."""

    def __init__(self, crontab: str | None = None, files: dict[str, str] | None = None) -> None:
        self.crontab = crontab  # None: no crontab for the user
        self.files = dict(files or {})
        self.seen: list[Cmd] = []

    def __call__(self, op: Cmd) -> CommandResult:
        self.seen.append(op)
        argv = list(op.argv)
        if argv[:2] == ["sh", "-c"] and "crontab" in argv[2] and "-l" in argv[2]:
            if self.crontab is None:
                return CommandResult((), 1, "", "no crontab for app\n", 0.0)
            self.files[COPY] = self.crontab
            return _ok(COPY + "\n")
        if argv[:2] == ["sh", "-c"] and "base64" in argv[2]:  # hosttext's chunked read
            path, start, count = argv[4], int(argv[5]), int(argv[6])
            if path not in self.files:
                return CommandResult((), 3, "", "", 0.0)
            data = self.files[path].encode()[start - 1 : start - 1 + count]
            return _ok(base64.b64encode(data).decode())
        if argv[:3] == ["rm", "-f", "--"]:
            self.files.pop(argv[3], None)
            return _ok()
        if argv[0] == "crontab" and argv[-1] == "-":
            self.crontab = op.stdin
            return _ok()
        if argv[:2] == ["sh", "-c"]:  # a save: $2 gets stdin
            self.files[argv[-1]] = op.stdin or ""
            return _ok()
        raise AssertionError(f"unexpected command {argv}")

    def run(self, program):
        try:
            op = next(program)
            while True:
                op = program.send(self(op))
        except StopIteration as stop:
            return stop.value


def test_install_program_backs_up_installs_and_reads_back() -> None:
    cfg = CronConfig.model_validate(
        {"user": "app", "jobs": [{"name": "sync", "schedule": "@daily", "argv": ["s"]}]}
    )
    target = Target.of("web", cfg)
    block = expected_block(target, cfg, workdir="/srv/web/current", env={})
    assert block is not None
    theirs = "5 * * * * theirs\n"
    host = FakeHost(theirs)
    program = install_ops(target, block, root=PurePosixPath("/srv/web"), version="v2", redact=str)
    phase = host.run(program)
    assert phase.ok, phase.summary
    assert host.crontab == theirs + block
    copies = [o for o in host.seen if "crontab" in " ".join(o.argv) and "-l" in o.argv[2]]
    assert copies and all(o.argv[4:] == ("-u", "app") for o in copies)  # words, not code
    assert COPY not in host.files  # each copy of the crontab was removed
    backup = next(o for o in host.seen if o.argv[-1].endswith("crontab.before"))
    assert backup.stdin == theirs and "/srv/web/.releasegate-cron/v2" in backup.argv
    assert phase.facts["jobs"] == 1


def test_a_crontab_over_many_chunks_is_read_whole() -> None:
    cfg = CronConfig.model_validate({"jobs": [{"name": "a", "schedule": "@daily", "argv": ["a"]}]})
    target = Target.of("web", cfg)
    block = expected_block(target, cfg, workdir="/x", env={})
    assert block is not None
    theirs = "".join(f"{i % 60} * * * * /bin/true {i:05d} é\n" for i in range(3 * CHUNK // 20))
    assert len(theirs.encode()) > 2 * CHUNK
    host = FakeHost(theirs)
    phase = host.run(install_ops(target, block, root=PurePosixPath("/x"), version="v1", redact=str))
    assert phase.ok, phase.summary
    assert host.crontab == theirs + block
    assert host.files["/x/.releasegate-cron/v1/crontab.before"] == theirs


def test_a_strange_answer_for_the_copy_is_refused_before_use() -> None:
    cfg = CronConfig.model_validate({"jobs": [{"name": "a", "schedule": "@daily", "argv": ["a"]}]})
    target = Target.of("web", cfg)
    for answer in ("/etc/passwd", "-rf /", "/tmp/releasegate-crontab.abc123\n/etc/x", ""):
        phase, seen = _drive(
            install_ops(target, None, root=PurePosixPath("/x"), version="v1", redact=str),
            {"crontab": _ok(answer + "\n")},
        )
        assert not phase.ok and "unexpected answer" in phase.summary
        assert len(seen) == 1  # nothing read, nothing removed


def test_no_crontab_yet_is_empty_and_an_unreadable_one_fails() -> None:
    cfg = CronConfig.model_validate({"jobs": [{"name": "a", "schedule": "@daily", "argv": ["a"]}]})
    target = Target.of("web", cfg)
    block = expected_block(target, cfg, workdir="/x", env={})
    host = FakeHost(None)
    phase = host.run(install_ops(target, block, root=PurePosixPath("/x"), version="v1", redact=str))
    assert phase.ok and host.crontab == block  # no crontab yet: the block alone
    broken = CommandResult((), 1, "", "crontab: permission denied\n", 0.0)
    phase, seen = _drive(
        install_ops(target, block, root=PurePosixPath("/x"), version="v1", redact=str),
        {"crontab": broken},
    )
    assert not phase.ok and "permission denied" in phase.summary and len(seen) == 1


def test_a_kept_block_is_used_only_when_clean() -> None:
    block = render_jobs("web", [SYNC], workdir="/x", env={})
    kept = "/x/.releasegate-cron/v1/block"
    assert FakeHost(files={kept: block}).run(saved_block_ops(PurePosixPath("/x"), "v1", "web")) == (
        block
    )
    value = FakeHost(files={kept: ""}).run(saved_block_ops(PurePosixPath("/x"), "v1", "web"))
    assert value == ""  # that release had no jobs
    tampered = block + "* * * * * evil\n"
    value = FakeHost(files={kept: tampered}).run(saved_block_ops(PurePosixPath("/x"), "v1", "web"))
    assert value is None
    value = FakeHost().run(saved_block_ops(PurePosixPath("/x"), "v1", "web"))
    assert value is None  # not kept
