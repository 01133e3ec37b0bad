"""`releasegate serve` and `releasegate user` as a user runs them: loopback only unless told
otherwise (and then TLS), passwords never from argv, and the live event stream of a real
server while the CLI deploys."""

from __future__ import annotations

import json
import sqlite3
import subprocess

import httpx
import pytest

from tests.cli import RELEASEGATE
from tests.e2e_web.conftest import Server, Workspace

pytestmark = pytest.mark.e2e


def test_serve_refuses_a_non_loopback_bind(workspace: Workspace) -> None:
    out = workspace.rg("serve", "--bind", "0.0.0.0:18999", timeout=30)
    assert out.returncode == 2 and "not a loopback address" in out.stderr
    remote = workspace.rg("serve", "--bind", "0.0.0.0:18999", "--allow-remote", timeout=30)
    assert remote.returncode == 2 and "Secure cookies need HTTPS" in remote.stderr
    bad = workspace.rg("serve", "--bind", "nonsense", timeout=30)
    assert bad.returncode == 2


def test_passwords_never_come_from_argv(workspace: Workspace) -> None:
    out = workspace.rg("user", "add", "eve", "--role", "viewer", "--password", "x" * 12)
    assert out.returncode == 2 and "No such option" in out.stderr
    short = workspace.rg("user", "add", "eve", "--role", "viewer", "--password-stdin", stdin="x")
    assert short.returncode == 2 and "too short" in short.stderr
    bad_name = workspace.rg(
        "user", "add", "e ve", "--role", "viewer", "--password-stdin", stdin="x" * 12
    )
    assert bad_name.returncode == 2
    listed = json.loads(
        "[" + ",".join(workspace.rg("user", "list", "--json").stdout.split("\n")[:-1]) + "]"
    )
    assert {u["name"]: u["role"] for u in listed}["vic"] == "viewer"
    # The state database holds an argon2 hash, not the password.
    with sqlite3.connect(workspace.root / ".releasegate" / "state.db") as db:
        stored = db.execute("SELECT password_hash FROM web_users WHERE name = 'vic'").fetchone()
    assert stored[0].startswith("$argon2id$") and "correct horse" not in stored[0]


def test_events_stream_the_rows_of_a_cli_deploy(server: Server, workspace: Workspace) -> None:
    api = {"Authorization": f"Bearer {workspace.tokens['vic']}"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/events").status_code == 401  # a page route: a session is needed
        page = client.get("/login")
        token = page.text.split('name="csrf" value="')[1].split('"')[0]
        signed = client.post(
            "/login",
            data={"csrf": token, "user": "vic", "password": "correct horse battery staple"},
        )
        assert signed.status_code == 303
        # (after the sign-in, which is recorded too)
        head = client.get("/api/stacks", headers=api).json()["audit"]["head_seq"]
        deploy = subprocess.run(
            [RELEASEGATE, "deploy", "web-staging", "staging", "v1"], cwd=workspace.root,
            env=workspace.env("dora"), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert deploy.returncode == 0, deploy.stderr
        rows = []
        with client.stream("GET", f"/events?after={head}") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    rows.append(json.loads(line[6:]))
                    if rows[-1]["kind"] == "close" and rows[-1]["parent_id"] is None:
                        break
    assert rows[0]["seq"] == head + 1
    assert [r["seq"] for r in rows] == list(range(head + 1, head + 1 + len(rows)))
    top = [r for r in rows if r["parent_id"] is None]
    assert (top[0]["action"], top[0]["version"], top[0]["user"]) == ("deploy", "v1", "dora")
    assert top[-1]["status"] == "success"
    assert {"preflight", "switch", "smoke"} <= {r["action"] for r in rows}


def test_serve_answers_only_its_own_host_names(server: Server) -> None:
    """DNS rebinding: a page whose name resolves to 127.0.0.1 reaches the port with its own
    name in Host; `serve` answers only its bound address, localhost and web.allowed_hosts."""
    port = server.url.rsplit(":", 1)[1]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/login").status_code == 200
        assert client.get("/login", headers={"Host": f"localhost:{port}"}).status_code == 200
        for host in (f"rebind.example:{port}", "localhost:1", "", "127.0.0.1"):
            resp = client.get("/login", headers={"Host": host})
            assert resp.status_code == 400, host
            assert "web.allowed_hosts" in resp.text
