"""The dashboard in-process (Starlette's TestClient) over a real demo workspace: every route
refuses without a session or token, CSRF, roles, throttling, SSO from trusted peers only,
history pages, hostile text escaped, approvals under the four-eyes rule."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from releasegate.config.loader import load_config
from releasegate.config.schema import WebConfig
from releasegate.ledger import Ledger
from releasegate.web.app import PUBLIC_PATHS, create_app
from releasegate.web.views import Site
from tests.e2e_web.conftest import PASSWORD, Workspace

pytestmark = pytest.mark.e2e


def app_for(ws: Workspace, **web: object):  # type: ignore[no-untyped-def]
    config = load_config(ws.config)
    if web:
        config = config.model_copy(update={"web": WebConfig(**web)})
    return create_app(Site(config, ws.config))


@pytest.fixture(scope="module")
def app(workspace: Workspace):  # type: ignore[no-untyped-def]
    return app_for(workspace)


@pytest.fixture()
def anon(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, follow_redirects=False, client=("127.0.0.1", 40000)) as client:
        yield client


def sign_in(app, user: str, password: str = PASSWORD) -> TestClient:  # type: ignore[no-untyped-def]
    client = TestClient(app, follow_redirects=False, client=("127.0.0.1", 40001))
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert token, page.text
    resp = client.post(
        "/login", data={"csrf": token[1], "user": user, "password": password, "next": "/"}
    )
    assert resp.status_code == 303, resp.text
    return client


def csrf_of(client: TestClient, path: str = "/") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found, page.text
    return found[1]


def routes(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    inner = app.app  # SecurityHeaders around the Starlette app
    found = []
    for route in inner.routes:
        assert isinstance(route, Route)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                found.append((method, route.path))
    return found


def concrete(path: str) -> str:
    return (
        path.replace("{stack}", "web-prod")
        .replace("{action_id}", "0" * 32)
        .replace("{change_id}", "CR-1")
        .replace("{name}", "style.css")
    )


def test_no_route_answers_without_a_session_or_token(app, anon: TestClient) -> None:
    checked = 0
    for method, path in routes(app):
        if path in PUBLIC_PATHS:
            continue
        resp = anon.request(method, concrete(path))
        checked += 1
        if path.startswith("/api/"):
            assert resp.status_code == 401, (method, path, resp.status_code)
            bad = anon.request(method, concrete(path), headers={"Authorization": "Bearer rgt_x"})
            assert bad.status_code == 401, (method, path)
        elif method == "GET" and path != "/events":
            assert resp.status_code == 303, (method, path, resp.status_code)
            assert resp.headers["location"].startswith("/login")
        else:
            assert resp.status_code == 401, (method, path, resp.status_code)
        assert "web-prod" not in resp.text
    assert checked >= 20
    # The public ones hold no data.
    assert anon.get("/login").status_code == 200
    assert anon.get("/static/style.css").status_code == 200
    assert anon.get("/static/../releasegate.yaml").status_code == 404


def test_sign_in_shows_the_stacks_with_their_versions(app, workspace: Workspace) -> None:
    client = sign_in(app, "vic")
    page = client.get("/")
    assert page.status_code == 200
    assert "web-staging" in page.text and "web-prod" in page.text
    assert re.search(r'class="running">v2<', page.text)
    assert "staging → web-prod" in page.text or "web-staging → web-prod" in page.text
    cookie = client.cookies.jar
    session = next(c for c in cookie if c.name == "rg_session")
    assert session.has_nonstandard_attr("HttpOnly")
    assert page.headers["content-security-policy"].startswith("default-src 'none'")


def test_csrf_is_required_on_every_post(app) -> None:
    client = sign_in(app, "olga")
    good = csrf_of(client)
    for path in ("/stacks/web-prod/preflight", "/logout", "/changes/CR-1/approve"):
        assert client.post(path, data={}).status_code == 403
        assert client.post(path, data={"csrf": "0" * 64}).status_code == 403
    # The token of another session does not count either.
    other = sign_in(app, "alice")
    assert other.post("/stacks/web-prod/preflight", data={"csrf": good}).status_code == 403


def test_a_viewer_cannot_roll_back(app, workspace: Workspace) -> None:
    client = sign_in(app, "vic")
    token = csrf_of(client)
    resp = client.post("/stacks/web-prod/rollback", data={"csrf": token, "reason": "try"})
    assert resp.status_code == 403
    api = TestClient(app).post(
        "/api/stacks/web-prod/rollback",
        json={"reason": "try"},
        headers={"Authorization": f"Bearer {workspace.tokens['vic']}"},
    )
    assert api.status_code == 403
    assert 'action="/stacks/web-prod/rollback"' not in client.get("/").text  # not offered
    with Ledger.open(str(workspace.root / ".releasegate" / "state.db")) as ledger:
        assert not [a for a in ledger.actions(action="rollback") if a.user == "vic"]


def test_an_operator_preflight_is_recorded_as_theirs(app, workspace: Workspace) -> None:
    client = sign_in(app, "olga")
    resp = client.post("/stacks/web-staging/preflight", data={"csrf": csrf_of(client)})
    assert resp.status_code == 200, resp.text
    with Ledger.open(str(workspace.root / ".releasegate" / "state.db")) as ledger:
        last = ledger.actions(action="preflight", last=1)[0]
    assert last.user == "olga" and last.stack == "web-staging"


def test_throttling_per_user_and_peer(app) -> None:
    client = TestClient(app, follow_redirects=False, client=("127.0.0.9", 1))

    def attempt(password: str) -> int:
        page = client.get("/login")
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert token
        data = {"csrf": token[1], "user": "amy", "password": password}
        return client.post("/login", data=data).status_code

    assert [attempt("wrong password!") for _ in range(5)] == [401] * 5
    assert attempt(PASSWORD) == 429  # even the right password, until the window passes
    # Another peer is not blocked by this one's failures.
    sign_in(app, "amy")


def test_login_without_its_csrf_token_is_refused(anon: TestClient) -> None:
    resp = anon.post("/login", data={"user": "alice", "password": PASSWORD})
    assert resp.status_code == 403


def test_trusted_header_only_from_trusted_proxies(workspace: Workspace) -> None:
    app = app_for(workspace, trusted_header="X-Remote-User", trusted_proxies=["127.0.0.1"])
    from_proxy = TestClient(app, follow_redirects=False, client=("127.0.0.1", 1))
    page = from_proxy.get("/", headers={"X-Remote-User": "amy"})
    assert page.status_code == 200 and "amy (approver)" in page.text
    assert from_proxy.get("/", headers={"X-Remote-User": "nobody"}).status_code == 403
    elsewhere = TestClient(app, follow_redirects=False, client=("10.1.2.3", 1))
    refused = elsewhere.get("/", headers={"X-Remote-User": "alice"})
    assert refused.status_code == 403 and "not a trusted proxy" in refused.text
    # Without the header, the same peer signs in as usual.
    assert elsewhere.get("/").status_code == 303


def test_history_filters_and_keyset_pages(app, workspace: Workspace) -> None:
    token = {"Authorization": f"Bearer {workspace.tokens['vic']}"}
    api = TestClient(app, headers=token)
    first = api.get("/api/history", params={"limit": 3}).json()
    assert len(first["actions"]) == 3 and first["next_before"]
    second = api.get("/api/history", params={"limit": 3, "before": first["next_before"]}).json()
    seqs = [a["seq"] for a in first["actions"] + second["actions"]]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 6
    prod = api.get("/api/history", params={"stack": "web-prod", "action": "deploy"}).json()
    assert {a["stack"] for a in prod["actions"]} == {"web-prod"}
    assert {a["status"] for a in prod["actions"]} == {"success", "refused"}
    refused = api.get("/api/history", params={"status": "refused"}).json()["actions"]
    assert [a["version"] for a in refused] == ["v2"]
    assert api.get("/api/history", params={"stack": "../x"}).status_code == 400
    client = sign_in(app, "vic")
    page = client.get("/history", params={"user": "olga"})
    assert page.status_code == 200


def test_recorded_text_is_escaped(app, workspace: Workspace) -> None:
    hostile = "<script>alert(1)</script><img src=x onerror=alert(2)> \x1b]0;owned\x07"
    with Ledger.open(str(workspace.root / ".releasegate" / "state.db")) as ledger:
        run = ledger.begin_action(
            stack="web-prod", env="prod", action="deploy", version="v9", reason=hostile,
            notes=hostile, user="mallory", host="h", pid=1,
        )  # fmt: skip
        ledger.end_action(run, "fail", notes=hostile)
    client = sign_in(app, "vic")
    for path in (f"/runs/{run}", "/history"):
        page = client.get(path).text
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;" in page
        assert "\x1b" not in page and "\\x1b" in page


def test_four_eyes_and_the_plan_hash(app, workspace: Workspace) -> None:
    workspace.plan("CR-WEB-1", "HIGH")
    carol = sign_in(app, "carol")
    page = carol.get("/changes/CR-WEB-1")
    assert page.status_code == 200 and "author of this HIGH change" in page.text
    plan = re.search(r'id="plan-hash">(sha256:[0-9a-f]+)<', page.text)
    assert plan
    refused = carol.post(
        "/changes/CR-WEB-1/approve", data={"csrf": csrf_of(carol), "hash": plan[1]}
    )
    assert refused.status_code == 409 and "cannot approve" in refused.text
    amy = sign_in(app, "amy")
    stale = amy.post(
        "/changes/CR-WEB-1/approve", data={"csrf": csrf_of(amy), "hash": "sha256:" + "0" * 64}
    )
    assert stale.status_code == 409 and "changed since you read it" in stale.text
    ok = amy.post("/changes/CR-WEB-1/approve", data={"csrf": csrf_of(amy), "hash": plan[1]})
    assert ok.status_code == 200 and "1/2" in ok.text
    again = amy.post("/changes/CR-WEB-1/approve", data={"csrf": csrf_of(amy), "hash": plan[1]})
    assert again.status_code == 409
    shown = workspace.rg("change", "show", "CR-WEB-1", "--json")
    assert '"by": "amy"' in shown.stdout
    with Ledger.open(str(workspace.root / ".releasegate" / "state.db")) as ledger:
        marks = ledger.database.execute(
            "SELECT \"user\" FROM entries WHERE action = 'change-approve' AND version = 'CR-WEB-1'"
        )
    assert marks == [("amy",)]


def test_a_new_password_ends_the_sessions(app, workspace: Workspace) -> None:
    client = sign_in(app, "bob")
    assert client.get("/").status_code == 200
    done = workspace.rg("user", "passwd", "bob", "--password-stdin", stdin=PASSWORD + "!")
    assert done.returncode == 0, done.stderr
    assert client.get("/").status_code == 303
    sign_in(app, "bob", PASSWORD + "!")


def test_api_token_reads_and_acts(app, workspace: Workspace) -> None:
    api = TestClient(app, headers={"Authorization": f"Bearer {workspace.tokens['olga']}"})
    assert api.get("/api/me").json() == {"user": "olga", "role": "operator"}
    stacks = api.get("/api/stacks").json()
    verified = {s["stack"]: s["verified"] for s in stacks["stacks"]}
    verified.pop("web-blue-green", None)  # the demo's third stack, with a proxy on PATH
    assert verified == {"web-staging": "v2", "web-prod": "v2"}
    assert stacks["audit"]["ok"] is True
    assert api.post("/api/stacks/web-prod/rollback", json={}).status_code == 400  # no reason
    assert api.post("/api/changes/CR-WEB-1/approve", json={"hash": "x"}).status_code == 403
    revoked = workspace.rg("user", "token", "olga", "--revoke", "all")
    assert revoked.returncode == 0, revoked.stderr
    assert api.get("/api/me").status_code == 401


def test_an_operator_rolls_back_with_a_reason(app, workspace: Workspace) -> None:
    client = sign_in(app, "olga")
    token = csrf_of(client)
    assert client.post("/stacks/web-prod/rollback", data={"csrf": token}).status_code == 400
    done = client.post(
        "/stacks/web-prod/rollback", data={"csrf": token, "reason": "INC-7 <b>bad</b> v2"}
    )
    assert done.status_code == 200, done.text
    assert "rollback web-prod v1: success" in done.text
    with Ledger.open(str(workspace.root / ".releasegate" / "state.db")) as ledger:
        last = ledger.actions(action="rollback", stack="web-prod", last=1)[0]
    assert (last.user, last.reason, last.version, last.status) == (
        "olga", "INC-7 <b>bad</b> v2", "v1", "success",
    )  # fmt: skip
    run = client.get(f"/runs/{last.action_id}").text
    assert "Execution record" in run and "olga" in run
    assert "<b>bad</b>" not in run and "&lt;b&gt;bad&lt;/b&gt;" in run
    status = workspace.rg("status", "--json")
    assert '"running": "v1"' in status.stdout.split("web-prod", 1)[1].split("\n")[0]


def test_cookies_are_secure_when_configured(workspace: Workspace) -> None:
    app = app_for(workspace, secure_cookies=True)
    client = TestClient(app, follow_redirects=False)
    page = client.get("/login")
    assert "secure" in page.headers["set-cookie"].lower()
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert token
    client.cookies.set("rg_login", token[1])  # a Secure cookie is not kept over http
    resp = client.post("/login", data={"csrf": token[1], "user": "vic", "password": PASSWORD})
    assert resp.status_code == 303
    cookie = resp.headers["set-cookie"].lower()
    assert "rg_session=" in cookie and "secure" in cookie and "httponly" in cookie
    assert "samesite=strict" in cookie
