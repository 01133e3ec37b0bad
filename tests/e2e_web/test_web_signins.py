"""The dashboard's sign-ins in the ledger and its sessions in the state database, in-process
(Starlette's TestClient) over a small real workspace whose users are made by the CLI:
sign-in, a wrong password, an unknown name, throttling and sign-out are recorded with the
user and the peer (never a password), and found by `history --kind auth` and the history
page's filter; a session outlives the app that made it (a restart), sign-out ends it
everywhere, and an expired or idle one is refused and deleted."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from releasegate.config.loader import load_config
from releasegate.config.schema import WebConfig
from releasegate.web.app import create_app
from releasegate.web.sessions import token_hash
from releasegate.web.views import Site
from tests.e2e_web.conftest import PASSWORD, Workspace

pytestmark = pytest.mark.e2e

CONFIG = """\
stacks:
  app-staging:
    env: staging
    runtime: releases
    dir: srv/app-staging
    artifacts: artifacts
"""
WRONG = "WrOnGpAsSwOrD-9f3e"
NAME_THAT_IS_A_PASSWORD = "MyS3cretTypedAsName"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("signins") / "ws"
    (root / "artifacts").mkdir(parents=True)
    (root / "srv" / "app-staging").mkdir(parents=True)
    (root / "releasegate.yaml").write_text(CONFIG, encoding="utf-8")
    ws = Workspace(root)
    for name, role in (("alice", "admin"), ("vic", "viewer")):
        done = ws.rg("user", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD)
        assert done.returncode == 0, done.stderr
    yield ws


def state(ws: Workspace) -> Path:
    return ws.root / ".releasegate" / "state.db"


def app_for(ws: Workspace, **web: object):  # type: ignore[no-untyped-def]
    config = load_config(ws.config)
    if web:
        config = config.model_copy(update={"web": WebConfig(**web)})
    return create_app(Site(config, ws.config))


def client(app, peer: str = "127.0.0.1") -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(app, follow_redirects=False, client=(peer, 40123))


def try_sign_in(c: TestClient, user: str, password: str) -> int:
    page = c.get("/login")
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert token, page.text
    resp = c.post("/login", data={"csrf": token[1], "user": user, "password": password})
    return resp.status_code


def csrf_of(c: TestClient) -> str:
    page = c.get("/")
    assert page.status_code == 200, page.status_code
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found, page.text
    return found[1]


def history(ws: Workspace, *args: str) -> list[dict]:
    out = ws.rg("history", "--json", *args)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_sign_ins_and_sign_outs_are_recorded_with_user_and_peer(small: Workspace) -> None:
    app = app_for(small)
    alice = client(app)
    assert try_sign_in(alice, "alice", PASSWORD) == 303
    remote = client(app, "10.9.8.7")
    assert try_sign_in(remote, "alice", WRONG) == 401
    assert try_sign_in(remote, NAME_THAT_IS_A_PASSWORD, WRONG) == 401
    for _ in range(4):  # five failures for (vic, 10.9.8.7): throttled from then on
        assert try_sign_in(remote, "vic", WRONG) == 401
    assert try_sign_in(remote, "vic", WRONG) == 401
    assert try_sign_in(remote, "vic", PASSWORD) == 429
    assert try_sign_in(remote, "vic", PASSWORD) == 429  # recorded once per block
    assert alice.post("/logout", data={"csrf": csrf_of(alice)}).status_code == 303
    assert alice.get("/").status_code == 303  # signed out

    rows = history(small, "--kind", "auth")
    seen = [(r["action"], r["status"], r["user"], r["details"]["peer"]) for r in rows]
    assert seen == [
        ("sign-in", "success", "alice", "127.0.0.1"),
        ("sign-in", "fail", "alice", "10.9.8.7"),
        ("sign-in", "fail", "-", "10.9.8.7"),  # an unknown name is not kept
        *[("sign-in", "fail", "vic", "10.9.8.7")] * 5,
        ("sign-in", "refused", "vic", "10.9.8.7"),
        ("sign-out", "success", "alice", "127.0.0.1"),
    ], seen
    assert all(r["stack"] == "web" for r in rows)
    assert "too many failed sign-ins for vic" in rows[-2]["notes"]
    failed = history(small, "--action", "sign-in", "--status", "fail")
    assert len(failed) == 7
    assert history(small, "--kind", "deploys") == []
    log = small.rg("history", "--format", "log", "--kind", "auth").stdout.splitlines()
    assert len(log) == 10 and "| web | - | sign-out |" in log[-1]

    # The dashboard's history filters them too (a viewer sees them), and refuses a bad kind.
    vic = client(app, "127.0.0.2")
    assert try_sign_in(vic, "vic", PASSWORD) == 303
    page = vic.get("/history", params={"kind": "auth"})
    assert page.status_code == 200
    assert page.text.count("sign-in") >= 10 and "sign-out" in page.text
    assert "<option selected>auth</option>" in page.text
    assert vic.get("/history", params={"kind": "nope"}).status_code == 400

    # No password, nor the name that may have been one, is anywhere in the state database.
    data = b"".join(p.read_bytes() for p in state(small).parent.glob("state.db*"))
    for secret in (PASSWORD, WRONG, NAME_THAT_IS_A_PASSWORD):
        assert secret.encode() not in data
    assert b"10.9.8.7" in data  # (the search finds what is there)


def test_a_session_survives_a_restart_and_sign_out_ends_it_everywhere(small: Workspace) -> None:
    first = client(app_for(small), "127.0.0.3")
    assert try_sign_in(first, "alice", PASSWORD) == 303
    cookie = first.cookies["rg_session"]
    # Stored as its hash only.
    with sqlite3.connect(state(small)) as db:
        hashes = [r[0] for r in db.execute("SELECT token_hash FROM web_sessions")]
    assert token_hash(cookie) in hashes and cookie not in hashes

    # A new app on the same state (the server restarted): the same cookie is signed in,
    # and its CSRF token still holds.
    second = client(app_for(small), "127.0.0.3")
    second.cookies.set("rg_session", cookie)
    assert second.get("/").status_code == 200
    assert csrf_of(second) == csrf_of(first)
    assert second.post("/logout", data={"csrf": csrf_of(second)}).status_code == 303
    # Signed out on one, refused on the other: the row is gone.
    assert first.get("/").status_code == 303
    with sqlite3.connect(state(small)) as db:
        assert token_hash(cookie) not in [
            r[0] for r in db.execute("SELECT token_hash FROM web_sessions")
        ]


@pytest.mark.parametrize("column", ["expires", "seen"])
def test_an_expired_or_idle_session_is_refused_and_deleted(small: Workspace, column: str) -> None:
    app = app_for(small)
    c = client(app, "127.0.0.4")
    assert try_sign_in(c, "vic", PASSWORD) == 303
    cookie = c.cookies["rg_session"]
    assert c.get("/").status_code == 200
    # As if its lifetime had ended, or it had been left unused for a day.
    with sqlite3.connect(state(small)) as db:
        db.execute(
            f"UPDATE web_sessions SET {column} = {column} - 86400 WHERE token_hash = ?",
            (token_hash(cookie),),
        )
    assert c.get("/").status_code == 303
    with sqlite3.connect(state(small)) as db:
        left = db.execute(
            "SELECT COUNT(*) FROM web_sessions WHERE token_hash = ?", (token_hash(cookie),)
        ).fetchone()[0]
    assert left == 0


def test_the_idle_timeout_is_configured(small: Workspace) -> None:
    app = app_for(small, session_idle_minutes=0.001)  # 60 ms
    c = client(app, "127.0.0.5")
    assert try_sign_in(c, "vic", PASSWORD) == 303
    time.sleep(0.3)  # five times the idle timeout
    assert c.get("/").status_code == 303


def test_a_new_password_ends_the_users_sessions_at_once(small: Workspace) -> None:
    c = client(app_for(small), "127.0.0.6")
    assert try_sign_in(c, "vic", PASSWORD) == 303
    assert c.get("/").status_code == 200
    done = small.rg("user", "passwd", "vic", "--password-stdin", stdin=PASSWORD)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(state(small)) as db:
        left = db.execute("SELECT COUNT(*) FROM web_sessions WHERE owner = 'vic'").fetchone()[0]
    assert left == 0
    assert c.get("/").status_code == 303


def test_sso_sign_ins_are_recorded_once_per_user_and_peer(small: Workspace) -> None:
    app = app_for(small, trusted_header="X-Remote-User", trusted_proxies=["127.0.0.0/8"])
    header = {"X-Remote-User": "alice"}
    first = client(app, "127.0.0.7")
    assert first.get("/", headers=header).status_code == 200
    assert first.get("/history", headers=header).status_code == 200  # the same session
    # A client that keeps no cookie starts a session on each request: not a sign-in each.
    for _ in range(3):
        assert client(app, "127.0.0.7").get("/", headers=header).status_code == 200
    assert client(app, "127.0.0.8").get("/", headers=header).status_code == 200
    for _ in range(3):
        unknown = client(app, "127.0.0.7").get("/", headers={"X-Remote-User": "mallory"})
        assert unknown.status_code == 403
    signed_in = first.post(
        "/logout", data={"csrf": csrf_of_with(first, header)}, headers=header
    )
    assert signed_in.status_code == 303

    rows = [r for r in history(small, "--kind", "auth") if r["details"].get("via") == "sso"]
    seen = [(r["action"], r["status"], r["user"], r["details"]["peer"]) for r in rows]
    assert seen == [
        ("sign-in", "success", "alice", "127.0.0.7"),
        ("sign-in", "success", "alice", "127.0.0.8"),
        ("sign-in", "refused", "-", "127.0.0.7"),
        ("sign-out", "success", "alice", "127.0.0.7"),
    ], seen
    assert "signed in through X-Remote-User" in rows[0]["notes"]
    assert "names no dashboard user ('mallory')" in rows[2]["notes"]


def csrf_of_with(c: TestClient, headers: dict[str, str]) -> str:
    page = c.get("/", headers=headers)
    assert page.status_code == 200, page.status_code
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found, page.text
    return found[1]
