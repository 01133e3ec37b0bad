"""The dashboard: a Starlette app of server-rendered pages and a JSON API over releasegate.web
.views (which reads and acts through the same Engine, Ledger and change store as the CLI).

Every route but /login and /static goes through `_guard`: a page needs a session (or the
trusted SSO header from a trusted proxy), /api/ needs `Authorization: Bearer <token>`,
and every POST of a page carries its session's CSRF token. Recorded text is hostile: pages
are rendered by Jinja2 with autoescape on, Markdown without raw HTML, and the one script
inserts text with textContent.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from releasegate.errors import BadInput, ExitCode, ReleasegateError
from releasegate.ledger.kinds import KINDS
from releasegate.textsafe import printable
from releasegate.users import User, Users
from releasegate.web import signins, views
from releasegate.web.auth import (
    THROTTLE_WINDOW_S,
    Throttle,
    csrf_ok,
    new_secret,
    parse_proxies,
    peer_trusted,
)
from releasegate.web.sessions import Session, SessionPolicy, Sessions

if TYPE_CHECKING:
    from releasegate.ledger import Ledger

HERE = Path(__file__).parent
COOKIE = "rg_session"
LOGIN_COOKIE = "rg_login"
MAX_BODY = 64 * 1024
LIVE_POLL_S = 0.5
LIVE_MAX_S = 300.0  # one event stream lasts at most this long; the browser reconnects
LIVE_KEEPALIVE_S = 15.0
MAX_STREAMS = 32
STATIC = {"style.css": "text/css", "live.js": "text/javascript"}
HTTP_FOR_EXIT = {
    ExitCode.BAD_INPUT: 400,
    ExitCode.REFUSED: 409,
    ExitCode.LOCKED: 409,
    ExitCode.TAMPERED: 409,
}
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
     b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]  # fmt: skip

Handler = Callable[[Request, "Who"], Awaitable[Response]]


class Who:
    """The signed-in user of one request, and how they signed in."""

    def __init__(self, user: User, csrf: str = "", via: str = "session") -> None:
        self.user = user
        self.csrf = csrf
        self.via = via  # session | sso | token


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                names = {k.lower() for k, _ in message["headers"]}
                message["headers"] += [(k, v) for k, v in SECURITY_HEADERS if k not in names]
            await send(message)

        await self.app(scope, receive, with_headers)


class Dashboard:
    def __init__(self, site: views.Site, *, secure_cookies: bool | None = None) -> None:
        from jinja2 import Environment, PackageLoader, select_autoescape

        self.site = site
        web = site.config.web
        self.secure = web.secure_cookies if secure_cookies is None else secure_cookies
        self.policy = SessionPolicy(
            lifetime_s=web.session_hours * 3600, idle_s=web.session_idle_minutes * 60
        )
        self.throttle = Throttle()
        # Sign-ins in the ledger, bounded against a flood (web/signins.py).
        self.failures_recorded = signins.RecordBudget()
        self.throttled_recorded = signins.OncePer(THROTTLE_WINDOW_S)
        # An SSO client that keeps no cookie starts a session on every request: its sign-in
        # (and an unknown name's refusal) is recorded once per (user, peer) and window.
        self.sso_recorded = signins.OncePer(signins.BUDGET_WINDOW_S)
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.trusted_header = web.trusted_header
        self.proxies = parse_proxies(web.trusted_proxies)
        self.streams = asyncio.Semaphore(MAX_STREAMS)
        self.env = Environment(
            loader=PackageLoader("releasegate.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )
        self.env.filters["p"] = lambda v: printable(str(v)) if v is not None else ""
        self.env.filters["markdown"] = _markdown
        self.env.filters["when"] = lambda v: (v or "")[:19].replace("T", " ")

    # -- responses -----------------------------------------------------------------------
    def page(self, name: str, who: Who | None, status: int = 200, **data: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(who=who, **data)
        return HTMLResponse(html, status_code=status)

    def _cookie(self, resp: Response, key: str, value: str, max_age: int | None) -> None:
        resp.set_cookie(
            key, value, max_age=max_age, httponly=True, samesite="strict",
            secure=self.secure, path="/",
        )  # fmt: skip

    # -- who is asking ---------------------------------------------------------------------
    def sessions(self, ledger: Ledger) -> Sessions:
        """The sessions table (in the state database: they outlive a restart)."""
        return Sessions(ledger.database, self.policy)

    async def _session_user(self, token: str | None) -> tuple[Session | None, User | None]:
        """The session of `token` and its user (None when the user is gone or their password
        or role changed since: that session is ended)."""

        def look() -> tuple[Session | None, User | None]:
            if not token:
                return None, None
            with self.site.ledger() as ledger:
                sessions = self.sessions(ledger)
                session = sessions.get(token)
                if session is None:
                    return None, None
                user = Users(ledger).get(session.user)
                if user is None or user.generation != session.generation:
                    sessions.drop(token)
                    return session, None
                return session, user

        return await run_in_threadpool(look)

    async def who(self, request: Request) -> tuple[Who | None, Response | None]:
        """(who, None) or (None, the refusal)."""
        api = request.url.path.startswith("/api/")
        peer = request.client.host if request.client else None
        if api:
            auth = request.headers.get("authorization", "")
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return None, _api_error(401, "an API token is needed: Authorization: Bearer ...")

            def by_token() -> User | None:
                with self.site.ledger() as ledger:
                    return Users(ledger).token_user(token.strip())

            user = await run_in_threadpool(by_token)
            if user is None:
                return None, _api_error(401, "unknown or revoked API token")
            return Who(user, via="token"), None
        if self.trusted_header and self.trusted_header in request.headers:
            if not peer_trusted(peer, self.proxies):
                # Anyone can send the header; only the proxy that authenticated may.
                return None, PlainTextResponse(
                    f"{self.trusted_header} refused: {peer} is not a trusted proxy", 403
                )
            return await self._sso(request, request.headers[self.trusted_header].strip())
        session, user = await self._session_user(request.cookies.get(COOKIE))
        if session is None or session.sso or user is None:
            return None, self._to_login(request)
        return Who(user, session.csrf), None

    async def _sso(self, request: Request, name: str) -> tuple[Who | None, Response | None]:
        token = request.cookies.get(COOKIE)

        peer = request.client.host if request.client else "?"

        def look() -> tuple[User | None, Session | None, str | None]:
            with self.site.ledger() as ledger:
                user = Users(ledger).get(name)
                if user is None:
                    self._record_sso_unknown(ledger, name, peer)
                    return None, None, None
                sessions = self.sessions(ledger)
                session = sessions.get(token)
                if session is not None and session.sso and session.user == user.name:
                    return user, session, None
                # A session only for its CSRF token: the header still names the user on
                # each request.
                new, session = sessions.create(user.name, user.generation, sso=True)
                if self.sso_recorded.first((user.name, peer)):
                    signins.record(
                        ledger, host=self.host, pid=self.pid, action=signins.SIGN_IN,
                        status="success", user=user.name, peer=peer,
                        notes=f"{user.name} signed in through {self.trusted_header} from "
                        f"{signins.peer_text(peer)}",
                        details={"via": "sso"},
                    )  # fmt: skip
                return user, session, new

        if not name or len(name) > 64:
            return None, PlainTextResponse(f"no dashboard user {printable(name)!r}", 403)
        user, session, new = await run_in_threadpool(look)
        if user is None or session is None:
            return None, PlainTextResponse(f"no dashboard user {printable(name)!r}", 403)
        if new:
            request.state.new_sid = new
        return Who(user, session.csrf, via="sso"), None

    def _to_login(self, request: Request) -> Response:
        if request.method == "GET" and request.url.path != "/events":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
        return PlainTextResponse("sign in first", status_code=401)

    def guard(self, handler: Handler, permission: str | None = None) -> Callable[..., Any]:
        """Authentication, CSRF (POSTs of pages), the role, and errors as pages or JSON."""

        async def endpoint(request: Request) -> Response:
            api = request.url.path.startswith("/api/")
            who, refusal = await self.who(request)
            if who is None:
                assert refusal is not None
                return refusal
            if request.method == "POST" and not api:
                form = await _form(request)
                request.state.form = form
                given = form.get("csrf") or request.headers.get("x-csrf-token")
                if not csrf_ok(who.csrf, given):
                    return self._refuse(request, who, 403, "missing or wrong CSRF token")
            if permission and not who.user.may(permission):
                text = f"{who.user.name} ({who.user.role}) may not {permission}"
                return self._refuse(request, who, 403, text)
            try:
                resp = await handler(request, who)
            except ReleasegateError as exc:
                status = HTTP_FOR_EXIT.get(exc.exit_code, 500)
                if api:
                    return JSONResponse(views.error_dict(exc), status_code=status)
                resp = self.page("error.html", who, status, message=exc.message, hint=exc.hint)
            new_sid = getattr(request.state, "new_sid", None)
            if new_sid:
                self._cookie(resp, COOKIE, new_sid, None)
            return resp

        return endpoint

    def _refuse(self, request: Request, who: Who, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return _api_error(status, message)
        return self.page("error.html", who, status, message=message, hint="")

    # -- sign in / out ---------------------------------------------------------------------
    async def login_page(self, request: Request) -> Response:
        token = new_secret()
        resp = self.page("login.html", None, login_csrf=token, next=_next(request), error="")
        self._cookie(resp, LOGIN_COOKIE, token, 600)
        return resp

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        if not cookie or form.get("csrf") != cookie:
            return PlainTextResponse("missing or wrong CSRF token: reload the sign-in page", 403)
        name = (form.get("user") or "").strip()[:64]
        password = form.get("password") or ""
        peer = request.client.host if request.client else "?"
        wait = self.throttle.blocked(name, peer)
        if wait:
            await run_in_threadpool(self._record_throttled, name, peer, wait)
            return self._login_again(
                request, 429, f"too many failed sign-ins: try again in {int(wait) + 1} s"
            )
        old = request.cookies.get(COOKIE)

        def check() -> str | None:
            """The new session's token, or None; the sign-in recorded either way."""
            with self.site.ledger() as ledger:
                users = Users(ledger)
                known = users.get(name) is not None
                user = users.authenticate(name, password)
                if user is None:
                    self._record_failure(ledger, name if known else None, peer)
                    return None
                signins.record(
                    ledger, host=self.host, pid=self.pid, action=signins.SIGN_IN,
                    status="success", user=user.name, peer=peer,
                    notes=f"{user.name} signed in from {signins.peer_text(peer)}",
                    details={"via": "password"},
                )  # fmt: skip
                sessions = self.sessions(ledger)
                sessions.drop(old)  # a fresh id: no session fixation
                token, _ = sessions.create(user.name, user.generation)
                return token

        token = await run_in_threadpool(check)
        if token is None:
            self.throttle.failed(name, peer)
            return self._login_again(request, 401, "wrong user or password")
        self.throttle.succeeded(name, peer)
        resp = RedirectResponse(_safe_next(form.get("next")), status_code=303)
        self._cookie(resp, COOKIE, token, None)
        resp.delete_cookie(LOGIN_COOKIE, path="/")
        return resp

    def _record_failure(self, ledger: Ledger, known: str | None, peer: str) -> None:
        """A failed sign-in in the ledger (within the budget). `known`: the user's name when
        it is one; any other name typed is not kept (it may be a password)."""
        take, skipped = self.failures_recorded.take()
        if not take:
            return
        who = known or signins.UNKNOWN_USER
        notes = (
            f"wrong password for {known}" if known
            else "unknown user name (not recorded: it may be a mistyped password)"
        ) + f" from {signins.peer_text(peer)}"  # fmt: skip
        details: dict[str, Any] = {"via": "password", "known_user": known is not None}
        if skipped:
            details["not_recorded_before"] = skipped
            notes += f"; {skipped} earlier failed sign-in(s) not recorded one by one"
        signins.record(
            ledger, host=self.host, pid=self.pid, action=signins.SIGN_IN, status="fail",
            user=who, peer=peer, notes=notes, details=details,
        )  # fmt: skip

    def _record_sso_unknown(self, ledger: Ledger, name: str, peer: str) -> None:
        """A trusted proxy named nobody the dashboard knows: refused, recorded once per
        (name, peer) and window, within the failures' budget. The name is the proxy's
        authenticated identity (not typed into a form), so it is kept, printable."""
        if not self.sso_recorded.first((name, peer)):
            return
        take, skipped = self.failures_recorded.take()
        if not take:
            return
        notes = (
            f"{self.trusted_header} names no dashboard user ({printable(name)!r}) from "
            f"{signins.peer_text(peer)}"
        )
        details: dict[str, Any] = {"via": "sso", "known_user": False}
        if skipped:
            details["not_recorded_before"] = skipped
        signins.record(
            ledger, host=self.host, pid=self.pid, action=signins.SIGN_IN, status="refused",
            user=signins.UNKNOWN_USER, peer=peer, notes=notes, details=details,
        )  # fmt: skip

    def _record_throttled(self, name: str, peer: str, wait: float) -> None:
        """A throttled sign-in, once per (user, peer) and block, within the budget."""
        if not self.throttled_recorded.first((name, peer)):
            return
        take, skipped = self.failures_recorded.take()
        if not take:
            return
        with self.site.ledger() as ledger:
            known = name if Users(ledger).get(name) is not None else None
            details: dict[str, Any] = {
                "via": "password", "known_user": known is not None, "refused_for_s": int(wait) + 1,
            }  # fmt: skip
            if skipped:
                details["not_recorded_before"] = skipped
            notes = (
                f"too many failed sign-ins{f' for {known}' if known else ''} from "
                f"{signins.peer_text(peer)}: refused for {int(wait) + 1} s"
            )
            signins.record(
                ledger, host=self.host, pid=self.pid, action=signins.SIGN_IN, status="refused",
                user=known or signins.UNKNOWN_USER, peer=peer, notes=notes, details=details,
            )  # fmt: skip

    def _login_again(self, request: Request, status: int, error: str) -> Response:
        token = new_secret()
        resp = self.page("login.html", None, status, login_csrf=token, next="/", error=error)
        self._cookie(resp, LOGIN_COOKIE, token, 600)
        return resp

    async def logout(self, request: Request, who: Who) -> Response:
        peer = request.client.host if request.client else "?"
        token = request.cookies.get(COOKIE)

        def sign_out() -> None:
            with self.site.ledger() as ledger:
                signins.record(
                    ledger, host=self.host, pid=self.pid, action=signins.SIGN_OUT,
                    status="success", user=who.user.name, peer=peer,
                    notes=f"{who.user.name} signed out from {signins.peer_text(peer)}",
                    details={"via": who.via},
                )  # fmt: skip
                self.sessions(ledger).drop(token)

        await run_in_threadpool(sign_out)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    # -- pages -------------------------------------------------------------------------------
    async def stacks_page(self, request: Request, who: Who) -> Response:
        data = await run_in_threadpool(views.stacks, self.site, who.user.name)
        head = data["audit"]["head_seq"]
        return self.page("stacks.html", who, **data, after=head)

    async def history_page(self, request: Request, who: Who) -> Response:
        filters, before = _history_query(request)
        data = await run_in_threadpool(views.history, self.site, filters, before)
        query = {k: ("1" if v is True else v) for k, v in filters.items()}
        older = None
        if data["next_before"] is not None:
            older = "/history?" + urlencode({**query, "before": data["next_before"]})
        return self.page("history.html", who, **data, query=query, older=older,
                         statuses=views.STATUSES, kinds=list(KINDS))  # fmt: skip

    async def run_page(self, request: Request, who: Who) -> Response:
        data = await run_in_threadpool(views.run, self.site, request.path_params["action_id"])
        if data is None:
            return self.page("error.html", who, 404, message="no such run", hint="")
        head = await run_in_threadpool(views.head_seq, self.site)
        return self.page("run.html", who, **data, after=head)

    async def changes_page(self, request: Request, who: Who) -> Response:
        data = await run_in_threadpool(views.changes, self.site, who.user.name)
        return self.page("changes.html", who, changes=data)

    async def change_page(self, request: Request, who: Who) -> Response:
        cid = request.path_params["change_id"]
        data = await run_in_threadpool(views.change, self.site, cid, who.user.name)
        return self.page("change.html", who, c=data)

    # -- page actions --------------------------------------------------------------------------
    async def approve_action(self, request: Request, who: Who) -> Response:
        form = request.state.form
        cid = request.path_params["change_id"]
        result = await run_in_threadpool(
            views.approve, self.site, cid, form.get("hash", ""), form.get("comment", ""),
            who.user.name,
        )  # fmt: skip
        return self.page("done.html", who, title=f"{who.user.name} approved {result['id']}",
                         lines=[f"approvals: {result['summary']}"],
                         back=f"/changes/{result['id']}")  # fmt: skip

    async def rollback_action(self, request: Request, who: Who) -> Response:
        form = request.state.form
        out = await run_in_threadpool(
            views.rollback, self.site, request.path_params["stack"], form.get("reason", ""),
            who.user.name, form.get("to") or None,
        )  # fmt: skip
        return self._outcome(who, out)

    async def check_action(self, request: Request, who: Who) -> Response:
        which = "smoke" if request.url.path.endswith("/smoke") else "preflight"
        out = await run_in_threadpool(
            views.check, self.site, request.path_params["stack"], which, who.user.name
        )
        return self._outcome(who, out)

    def _outcome(self, who: Who, out: dict[str, Any]) -> Response:
        lines = [out["message"]] + ([f"hint: {out['hint']}"] if out["hint"] else [])
        title = f"{out['action']} {out['stack']} {out['version']}: {out['status']}"
        back = f"/runs/{out['action_id']}" if out["action_id"] else "/"
        return self.page("done.html", who, title=title, lines=lines, back=back)

    # -- live ----------------------------------------------------------------------------------
    async def events(self, request: Request, who: Who) -> Response:
        """Server-sent events: each ledger row written after `after` (or Last-Event-ID)."""
        after = _int(request.headers.get("last-event-id"))
        if after is None:
            after = _int(request.query_params.get("after"))
        stack = request.query_params.get("stack") or None
        if stack is not None:
            from releasegate import names

            names.check("stack", stack)
        if self.streams.locked():
            return PlainTextResponse("too many live views open", status_code=503)
        start_at: int = (
            after if after is not None else await run_in_threadpool(views.head_seq, self.site)
        )

        async def stream() -> AsyncIterator[str]:
            after = start_at
            async with self.streams:
                yield "retry: 2000\n\n"
                start = last_sent = time.monotonic()
                while time.monotonic() - start < LIVE_MAX_S:
                    if await request.is_disconnected():
                        return
                    rows = await run_in_threadpool(views.live_rows, self.site, after, stack)
                    for row in rows:
                        after = row["seq"]
                        yield f"id: {after}\ndata: {json.dumps(row)}\n\n"
                        last_sent = time.monotonic()
                    if time.monotonic() - last_sent > LIVE_KEEPALIVE_S:
                        yield ": keepalive\n\n"
                        last_sent = time.monotonic()
                    await asyncio.sleep(LIVE_POLL_S)

        return StreamingResponse(stream(), media_type="text/event-stream")

    # -- JSON API ------------------------------------------------------------------------------
    async def api_me(self, request: Request, who: Who) -> Response:
        return JSONResponse({"user": who.user.name, "role": who.user.role})

    async def api_stacks(self, request: Request, who: Who) -> Response:
        return JSONResponse(await run_in_threadpool(views.stacks, self.site, who.user.name))

    async def api_history(self, request: Request, who: Who) -> Response:
        filters, before = _history_query(request)
        limit = _int(request.query_params.get("limit")) or views.PAGE_SIZE
        return JSONResponse(
            await run_in_threadpool(views.history, self.site, filters, before, limit)
        )

    async def api_run(self, request: Request, who: Who) -> Response:
        data = await run_in_threadpool(views.run, self.site, request.path_params["action_id"])
        if data is None:
            return _api_error(404, "no such run")
        return JSONResponse(data)

    async def api_changes(self, request: Request, who: Who) -> Response:
        return JSONResponse(await run_in_threadpool(views.changes, self.site, who.user.name))

    async def api_change(self, request: Request, who: Who) -> Response:
        cid = request.path_params["change_id"]
        return JSONResponse(await run_in_threadpool(views.change, self.site, cid, who.user.name))

    async def api_approve(self, request: Request, who: Who) -> Response:
        body = await _json(request)
        result = await run_in_threadpool(
            views.approve, self.site, request.path_params["change_id"], str(body.get("hash", "")),
            str(body.get("comment", "")), who.user.name,
        )  # fmt: skip
        return JSONResponse(result)

    async def api_rollback(self, request: Request, who: Who) -> Response:
        body = await _json(request)
        to = body.get("to")
        out = await run_in_threadpool(
            views.rollback, self.site, request.path_params["stack"], str(body.get("reason", "")),
            who.user.name, str(to) if to else None,
        )  # fmt: skip
        return JSONResponse(out, status_code=200 if out["exit_code"] == 0 else 422)

    async def api_check(self, request: Request, who: Who) -> Response:
        which = "smoke" if request.url.path.endswith("/smoke") else "preflight"
        out = await run_in_threadpool(
            views.check, self.site, request.path_params["stack"], which, who.user.name
        )
        return JSONResponse(out, status_code=200 if out["exit_code"] == 0 else 422)


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in STATIC:
        return PlainTextResponse("not found", status_code=404)
    return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name])


def _markdown(text: str | None) -> Markup:
    """Recorded Markdown as HTML: raw HTML in it stays text, links only of safe schemes."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    return Markup(md.render(printable(text or "")))  # noqa: S704 - html off: escaped by markdown-it


def _api_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _int(value: str | None) -> int | None:
    if value is None or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


def _next(request: Request) -> str:
    return _safe_next(request.query_params.get("next"))


def _safe_next(value: str | None) -> str:
    # Only a path of this site: never //host or a scheme (an open redirect).
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value[:500]


async def _body(request: Request) -> bytes:
    """The request body, refused past MAX_BODY (read in chunks: no Content-Length trust)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise BadInput(f"the request body is larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _form(request: Request) -> dict[str, str]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return {}
    text = (await _body(request)).decode("utf-8", "replace")
    return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=50))


async def _json(request: Request) -> dict[str, Any]:
    raw = await _body(request)
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        raise BadInput("the request body is not JSON") from None
    if not isinstance(value, dict):
        raise BadInput("the request body must be a JSON object")
    return value


def _history_query(request: Request) -> tuple[dict[str, Any], int | None]:
    query = dict(request.query_params)
    return views.clean_filters(query), _int(query.get("before"))


def create_app(
    site: views.Site,
    *,
    secure_cookies: bool | None = None,
    bind: tuple[str, int] | None = None,
    tls: bool = False,
) -> ASGIApp:
    """The dashboard. `bind` (what `serve` listens on) turns on the Host header check:
    only that address, localhost and web.allowed_hosts are answered (DNS rebinding)."""
    from releasegate.web import flags
    from releasegate.web.hostcheck import HostCheck, allowed_hosts

    d = Dashboard(site, secure_cookies=secure_cookies)
    g = d.guard
    routes = [
        Route("/login", d.login_page, methods=["GET"]),
        Route("/login", d.login, methods=["POST"]),
        Route("/static/{name}", static, methods=["GET"]),
        Route("/logout", g(d.logout), methods=["POST"]),
        Route("/", g(d.stacks_page), methods=["GET"]),
        Route("/history", g(d.history_page), methods=["GET"]),
        Route("/runs/{action_id}", g(d.run_page), methods=["GET"]),
        Route("/changes", g(d.changes_page), methods=["GET"]),
        Route("/changes/{change_id}", g(d.change_page), methods=["GET"]),
        Route("/changes/{change_id}/approve", g(d.approve_action, "approve"), methods=["POST"]),
        Route("/stacks/{stack}/rollback", g(d.rollback_action, "operate"), methods=["POST"]),
        Route("/stacks/{stack}/preflight", g(d.check_action, "operate"), methods=["POST"]),
        Route("/stacks/{stack}/smoke", g(d.check_action, "operate"), methods=["POST"]),
        Route("/events", g(d.events), methods=["GET"]),
        Route("/api/me", g(d.api_me), methods=["GET"]),
        Route("/api/stacks", g(d.api_stacks), methods=["GET"]),
        Route("/api/history", g(d.api_history), methods=["GET"]),
        Route("/api/runs/{action_id}", g(d.api_run), methods=["GET"]),
        Route("/api/changes", g(d.api_changes), methods=["GET"]),
        Route("/api/changes/{change_id}", g(d.api_change), methods=["GET"]),
        Route("/api/changes/{change_id}/approve", g(d.api_approve, "approve"), methods=["POST"]),
        Route("/api/stacks/{stack}/rollback", g(d.api_rollback, "operate"), methods=["POST"]),
        Route("/api/stacks/{stack}/preflight", g(d.api_check, "operate"), methods=["POST"]),
        Route("/api/stacks/{stack}/smoke", g(d.api_check, "operate"), methods=["POST"]),
        *flags.routes(d),
    ]
    app = Starlette(routes=routes)
    app.state.dashboard = d
    if bind is None:
        return SecurityHeaders(app)
    allowed = allowed_hosts(bind, site.config.web.allowed_hosts, tls)
    return SecurityHeaders(HostCheck(app, allowed))


PUBLIC_PATHS = ("/login", "/static/{name}")
