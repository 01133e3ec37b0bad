"""Notifications through Apprise from a real `releasegate deploy`: a real SMTP server
(aiosmtpd) and a webhook receiver on loopback get the messages; a closed port is recorded
as a failed delivery and the deploy still succeeds within the timeout."""

from __future__ import annotations

import json
import socket
import threading
import time
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

pytestmark = pytest.mark.e2e


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's hook
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def _text(msg: Message) -> str:
    parts = [p for p in msg.walk() if p.get_content_type() == "text/plain"]
    return "".join(p.get_payload(decode=True).decode() for p in parts)


@pytest.fixture()
def smtp():
    box = Mailbox()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture()
def webhook():
    posts: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            posts.append({"path": self.path, "json": json.loads(self.rfile.read(length))})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield posts, server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture()
def closed_port():
    """A loopback port bound but not listening: connections are refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    yield s.getsockname()[1]
    s.close()


def _add_notify(lab, text: str) -> None:
    lab.config.write_text(lab.config.read_text() + text, encoding="utf-8")


def test_deploy_notifies_mail_and_webhook_and_records_a_dead_target(
    lab, smtp, webhook, closed_port
):
    box, smtp_port = smtp
    posts, hook_port = webhook
    _add_notify(
        lab,
        "notify:\n"
        "  timeout: 5\n"
        "  urls:\n"
        f"    - 'mailto://127.0.0.1:{smtp_port}?from=rg@example.com&to=team@example.com'\n"
        f"    - 'json://127.0.0.1:{hook_port}/hooks/SeCrEtHoOkToKeN'\n"
        f"    - 'json://127.0.0.1:{closed_port}/hooks/deadtarget'\n",
    )
    started = time.monotonic()
    out = lab.rg("deploy", "web-staging", "staging", "v1")
    took = time.monotonic() - started
    assert out.returncode == 0, out.stdout + out.stderr
    assert took < 60  # bounded: the dead target costs at most its timeout (5 s)
    assert "notification #3 json failed" in out.stderr

    # the webhook got "started" and "live" (deliveries run side by side: any order), with
    # stack, env, version, who and the record's path
    assert [p["path"] for p in posts] == ["/hooks/SeCrEtHoOkToKeN"] * 2
    by_title = {p["json"]["title"].rsplit(": ", 1)[1]: p["json"]["message"] for p in posts}
    assert set(by_title) == {"STARTED", "LIVE"}, by_title
    live = by_title["LIVE"]
    for part in (
        "Stack: web-staging",
        "Environment: staging",
        "Version: v1",
        "By: tester",
        "Outcome: success",
        "Record: ",
    ):
        assert part in live, live
    record = live.split("Record: ", 1)[1].splitlines()[0]
    assert record.endswith(".md") and open(record, encoding="utf-8").read()

    # the mail server got the same two
    mails = {m["Subject"].rsplit(": ", 1)[1]: _text(m) for m in box.messages}
    assert set(mails) == {"STARTED", "LIVE"}, mails
    assert "Version: v1" in mails["LIVE"] and "Outcome: success" in mails["LIVE"]

    # each notification is a `notify` action of the deploy; the dead target is recorded
    # by position and scheme, never by its URL
    steps = lab.history_json("--stack", "web-staging", "--steps")
    db = (lab.root / ".releasegate" / "state.db").read_bytes()
    assert b"SeCrEtHoOkToKeN" not in db and b"deadtarget" not in db
    text = json.dumps(steps)
    assert "notify" in text and "#3 json" in text and "#2 json" in text


def test_rollback_and_refusal_are_notified(lab, webhook):
    posts, hook_port = webhook
    _add_notify(
        lab,
        "notify:\n"
        f"  urls: ['json://127.0.0.1:{hook_port}/h']\n"
        "  events: [rolled_back, refused, forced]\n",
    )
    assert lab.rg("deploy", "web-prod", "prod", "v1").returncode == 3
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    assert lab.rg("deploy", "web-staging", "staging", "v3").returncode == 4  # v3 is broken
    out = lab.rg("deploy", "web-prod", "prod", "v2", "--force", "--reason", "INC-7")
    assert out.returncode == 0, out.stdout + out.stderr
    titles = [p["json"]["title"] for p in posts]
    assert len(titles) == 3, titles
    assert "web-prod (prod): REFUSED" in titles[0]
    assert "v3 on web-staging (staging): ROLLED BACK" in titles[1]
    assert "FORCED" in titles[2] and "reason: INC-7" in posts[2]["json"]["message"]


def test_a_change_that_needs_approval_is_notified(lab, webhook):
    posts, hook_port = webhook
    _add_notify(lab, f"notify:\n  urls: ['json://127.0.0.1:{hook_port}/h']\n")
    out = lab.rg("change", "new", "G2-LOW", "--title", "rotate logs", "--risk", "LOW")
    assert out.returncode == 0, out.stderr
    assert posts == []  # LOW needs no approval
    out = lab.rg("change", "new", "G2-042", "--title", "swap the database", "--risk", "HIGH")
    assert out.returncode == 0, out.stderr
    [post] = posts
    assert "change G2-042 on changes (-): APPROVAL NEEDED" in post["json"]["title"]
    body = post["json"]["message"]
    assert "HIGH risk: approvals needed" in body and "swap the database" in body
    assert "Record: " in body and "G2-042" in body
