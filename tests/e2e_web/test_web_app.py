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
from tests.e2e_web.conftest import FLAG, PASSWORD, Workspace, features

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
    # (the throttling test's refused sign-ins are refused too: stack "web")
    assert [a["version"] for a in refused if a["action"] != "sign-in"] == ["v2"]
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


# -- feature flags ------------------------------------------------------------------------
STATE_DB = (".releasegate", "state.db")


def flag_actions(ws: Workspace) -> list:  # type: ignore[type-arg]
    with Ledger.open(str(ws.root.joinpath(*STATE_DB))) as ledger:
        return ledger.actions(action="flag")


def test_a_viewer_sees_flags_but_cannot_flip_them(app, workspace: Workspace) -> None:
    client = sign_in(app, "vic")
    stacks = client.get("/").text
    assert 'href="/stacks/web-staging/flags"' in stacks
    assert 'href="/stacks/web-prod/flags"' not in stacks  # web-prod declares no flags
    page = client.get("/stacks/web-staging/flags")
    assert page.status_code == 200, page.text
    assert f'id="flag-{FLAG}"' in page.text
    assert "(unset: false)" in page.text  # the demo turned it on, then rolled it back
    assert "no drift" in page.text
    assert "open to everyone" in page.text  # the demo's change, in the flag history
    assert f'action="/stacks/web-staging/flags/{FLAG}"' not in page.text  # no form offered
    before = len(flag_actions(workspace))
    forged = client.post(
        f"/stacks/web-staging/flags/{FLAG}",
        data={"csrf": csrf_of(client), "value": "true", "reason": "forged"},
    )
    assert forged.status_code == 403 and "may not operate" in forged.text
    rolled = client.post(
        f"/stacks/web-staging/flags/{FLAG}/rollback", data={"csrf": csrf_of(client)}
    )
    assert rolled.status_code == 403
    api = TestClient(app, headers={"Authorization": f"Bearer {workspace.tokens['vic']}"})
    listed = api.get("/api/stacks/web-staging/flags")
    assert listed.status_code == 200
    assert [f["name"] for f in listed.json()["flags"]] == [FLAG]
    assert (
        api.post(f"/api/stacks/web-staging/flags/{FLAG}", json={"value": "true"}).status_code == 403
    )
    assert len(flag_actions(workspace)) == before
    assert features(workspace) != 200


def test_an_operator_flips_a_flag_and_rolls_it_back(app, workspace: Workspace) -> None:
    client = sign_in(app, "olga")
    path = f"/stacks/web-staging/flags/{FLAG}"
    token = csrf_of(client, "/stacks/web-staging/flags")
    assert f'action="{path}"' in client.get("/stacks/web-staging/flags").text
    assert client.post(path, data={"value": "true"}).status_code == 403  # no CSRF token
    assert client.post(path, data={"value": "true", "csrf": "0" * 64}).status_code == 403
    assert not [a for a in flag_actions(workspace) if a.user == "olga"]
    done = client.post(path, data={"csrf": token, "value": "true", "reason": "QA <b>ready</b>"})
    assert done.status_code == 200, done.text
    assert f"flag web-staging {FLAG}: success" in done.text
    assert "<b>ready" not in done.text
    assert features(workspace) == 200  # the app restarted with the switch on
    last = flag_actions(workspace)[-1]
    assert (last.user, last.status, last.reason) == ("olga", "success", "QA <b>ready</b>")
    assert (last.details["old"], last.details["new"]) == (None, "true")
    page = client.get("/stacks/web-staging/flags").text
    assert re.search(r'class="value">true<', page) and "no drift" in page
    # The CLI reads the same: one data path.
    listed = workspace.rg("flag", "list", "web-staging", "staging", "--json")
    assert listed.returncode == 0 and '"value": "true"' in listed.stdout, listed.stdout
    # Roll back: the value before (unset), the app restarted without it.
    back = client.post(f"{path}/rollback", data={"csrf": token, "reason": "seen enough"})
    assert back.status_code == 200, back.text
    assert "success" in back.text
    assert features(workspace) == 403
    last = flag_actions(workspace)[-1]
    assert (last.user, last.details["new"], last.details.get("rollback_of")) == (
        "olga", None, flag_actions(workspace)[-2].action_id,
    )  # fmt: skip
    # A value the flag's type refuses, an undeclared flag: refused before anything runs.
    bad = client.post(path, data={"csrf": token, "value": "maybe", "reason": "x"})
    assert bad.status_code == 400
    unknown = client.post(
        "/stacks/web-staging/flags/NOPE_ENABLED", data={"csrf": token, "value": "true"}
    )
    assert unknown.status_code == 400 and "not declared" in unknown.text
    assert client.get("/stacks/web-prod/flags").status_code == 400  # no flags: section


def test_api_flips_a_flag_with_a_token(app, workspace: Workspace) -> None:
    minted = workspace.rg("user", "token", "olga", "--label", "flags")
    assert minted.returncode == 0, minted.stderr
    api = TestClient(app, headers={"Authorization": f"Bearer {minted.stdout.strip()}"})
    url = f"/api/stacks/web-staging/flags/{FLAG}"
    assert api.post(url, json={"reason": "no value"}).status_code == 400
    out = api.post(url, json={"value": True, "reason": "from CI"})
    assert out.status_code == 200, out.text
    body = out.json()
    assert (body["status"], body["said"], body["action"]) == ("success", "success", "flag")
    assert features(workspace) == 200
    listed = api.get("/api/stacks/web-staging/flags").json()
    assert listed["flags"][0]["value"] == "true" and listed["history"][0]["user"] == "olga"
    assert listed["history"][0]["reason"] == "from CI"
    back = api.post(url + "/rollback", json={"reason": "done"})
    assert back.status_code == 200 and back.json()["status"] == "success"
    assert features(workspace) == 403
    # No token, no answer; the page's CSRF is not the API's business (tokens are).
    assert TestClient(app).post(url, json={"value": "true"}).status_code == 401


def test_prod_flags_need_a_reason_and_secrets_stay_masked(workspace: Workspace) -> None:
    from releasegate.flags.config import FlagsConfig

    config = load_config(workspace.config)
    flags = FlagsConfig.model_validate(
        {
            "dotenv": "shared/.env",
            "apply": "restart",
            "declared": {
                FLAG: {"type": "bool"},
                "APP_SECRET_TOKEN": {"type": "string", "secret": True},
            },
        }
    )
    stacks = dict(config.stacks)
    stacks["web-prod"] = stacks["web-prod"].model_copy(update={"flags": flags})
    app = create_app(Site(config.model_copy(update={"stacks": stacks}), workspace.config))
    client = sign_in(app, "olga")
    page = client.get("/stacks/web-prod/flags")
    assert page.status_code == 200, page.text
    assert "not-for-real" not in page.text and "***" in page.text
    assert 'type="password" name="value"' in page.text
    assert 'action="/stacks/web-prod/flags/APP_SECRET_TOKEN/rollback"' not in page.text
    api = TestClient(app, headers={"Authorization": f"Bearer {workspace.tokens['alice']}"})
    assert "not-for-real" not in api.get("/api/stacks/web-prod/flags").text
    refused = client.post(
        f"/stacks/web-prod/flags/{FLAG}", data={"csrf": csrf_of(client), "value": "true"}
    )
    assert refused.status_code == 409, refused.text
    assert f"flag web-prod {FLAG}: refused" in refused.text and "needs --reason" in refused.text
    last = flag_actions(workspace)[-1]
    assert (last.stack, last.user, last.status) == ("web-prod", "olga", "refused")
    by_api = api.post(f"/api/stacks/web-prod/flags/{FLAG}", json={"value": "true"})
    assert by_api.status_code == 422 and by_api.json()["status"] == "refused"
    # A secret set from the page: written, never shown nor recorded.
    secret = "rotated-0123456789-secret"
    done = client.post(
        "/stacks/web-prod/flags/APP_SECRET_TOKEN",
        data={"csrf": csrf_of(client), "value": secret, "reason": "rotate"},
    )
    assert done.status_code == 200, done.text
    assert secret not in done.text and "***" in done.text
    env = (workspace.root / "srv" / "web-prod" / "shared" / ".env").read_text()
    assert f"APP_SECRET_TOKEN={secret}" in env
    with Ledger.open(str(workspace.root.joinpath(*STATE_DB))) as ledger:
        rows = ledger.database.execute("SELECT * FROM entries")
    assert rows and secret not in repr(rows)
    records = list((workspace.root / ".releasegate" / "records").glob("*-web-prod-flag-*.md"))
    assert records and not [r for r in records if secret in r.read_text()]
    assert secret not in client.get("/stacks/web-prod/flags").text


def test_a_change_that_breaks_the_app_is_shown_failed_and_restored(workspace: Workspace) -> None:
    """The sample app's /health fails with BROKEN_FEATURE_ENABLED=true: the workflow's smoke
    fails, the old value goes back, and the page says so."""
    config = load_config(workspace.config)
    staging = config.stacks["web-staging"]
    assert staging.flags is not None
    declared = {**staging.flags.declared}
    declared["BROKEN_FEATURE_ENABLED"] = declared[FLAG].model_copy()
    flags = staging.flags.model_copy(update={"declared": declared})
    stacks = {**config.stacks, "web-staging": staging.model_copy(update={"flags": flags})}
    app = create_app(Site(config.model_copy(update={"stacks": stacks}), workspace.config))
    client = sign_in(app, "olga")
    out = client.post(
        "/stacks/web-staging/flags/BROKEN_FEATURE_ENABLED",
        data={"csrf": csrf_of(client), "value": "true", "reason": "try it"},
    )
    assert out.status_code == 422, out.text
    assert "flag web-staging BROKEN_FEATURE_ENABLED: failed and restored" in out.text
    last = flag_actions(workspace)[-1]
    assert (last.user, last.status, last.version) == ("olga", "fail", "BROKEN_FEATURE_ENABLED")
    env = (workspace.root / "srv" / "web-staging" / "shared" / ".env").read_text()
    assert "BROKEN_FEATURE_ENABLED" not in env
    page = client.get("/stacks/web-staging/flags").text
    assert "no drift" in page


# -- the Host header (DNS rebinding) -------------------------------------------------------
def test_only_the_bound_address_and_allowed_hosts_are_answered(workspace: Workspace) -> None:
    config = load_config(workspace.config)
    config = config.model_copy(
        update={"web": WebConfig(allowed_hosts=["dash.example.com", "*.corp.example:8443"])}
    )
    app = create_app(Site(config, workspace.config), bind=("127.0.0.1", 8642))

    def status(base: str, path: str = "/login") -> int:
        return TestClient(app, base_url=base, follow_redirects=False).get(path).status_code

    for good in ("http://127.0.0.1:8642", "http://localhost:8642", "http://[::1]:8642",
                 "http://dash.example.com", "https://dash.example.com:444",
                 "https://a.corp.example:8443"):  # fmt: skip
        assert status(good) == 200, good
    for bad in ("http://evil.example:8642", "http://localhost:9999", "http://127.0.0.1",
                "http://127.0.0.2:8642", "https://corp.example:8443",
                "https://a.corp.example:443", "http://dash.example.com.evil:8642"):  # fmt: skip
        assert status(bad) == 400, bad
    # Before anything else: no redirect to the sign-in page, no data.
    refused = TestClient(app, base_url="http://evil.example:8642").get("/api/stacks")
    assert refused.status_code == 400 and "web.allowed_hosts" in refused.text
    assert refused.headers["x-frame-options"] == "DENY"
    two = TestClient(app, base_url="http://127.0.0.1:8642").get(
        "/login", headers=[("host", "127.0.0.1:8642"), ("host", "evil.example")]
    )
    assert two.status_code == 400
