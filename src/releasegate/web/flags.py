"""Feature flags on the dashboard: a stack's declared flags with their value on each host and
their drift (the Engine's `flag_list`, as `releasegate flag list` reads them), the newest
changes (`flag_history`), and an operator's set or rollback of one flag: the same workflow
as `releasegate flag set|rollback` (lock, gate, write, apply, smoke, restore on failure),
recorded in the ledger with the signed-in user as the actor.

Data functions return plain dicts and run in a worker thread with their own Ledger, as
releasegate.web.views does; the route handlers below render them as a page or JSON."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from releasegate.errors import BadInput
from releasegate.web import views

if TYPE_CHECKING:
    from starlette.requests import Request

    from releasegate.engine import RunOutcome
    from releasegate.web.app import Dashboard, Who

HISTORY_SHOWN = 20  # the newest flag changes on a stack's flags page
MAX_VALUE = 1000  # characters of a value typed into the page or the API
MAX_REASON = 500
# A flag change's outcome as the page says it (the workflow's RunOutcome.status).
SAID = {
    "success": "success",
    "refused": "refused",
    "rolled_back": "failed and restored",
    "failed": "failed",
    "aborted": "interrupted",
}


def _flag_name(name: str) -> str:
    # Only a name's shape here; the workflow says whether it is declared.
    if not name or len(name) > 128 or not all(c.isalnum() or c in "_-." for c in name):
        raise BadInput(f"{name[:80]!r} is not a flag name")
    return name


def _reason(reason: str) -> str:
    reason = reason.strip()
    if len(reason) > MAX_REASON or "\n" in reason or "\r" in reason:
        raise BadInput(f"the reason is one line of at most {MAX_REASON} characters")
    return reason


def has_flags(site: views.Site, stack: str) -> bool:
    return site.config.stack(stack).flags is not None


def flags(site: views.Site, stack: str, user: str) -> dict[str, Any]:
    """`releasegate flag list STACK ENV` and `flag history` as data. Secret flags come
    masked (`***`) from flag_list itself; their history never held the value."""
    env = views._stack_env(site, stack)
    with site.ledger() as ledger:
        engine = site.engine(ledger, user)
        rows = engine.flag_list(stack, env)
        changes = engine.flag_history(stack, env, last=HISTORY_SHOWN)
    cfg = site.config.stack(stack).flags
    declared = cfg.declared if cfg is not None else {}
    return {
        "stack": stack,
        "env": env,
        "reason_required": env == "prod",  # the workflow's gate refuses otherwise
        "flags": [
            {
                **dataclasses.asdict(r),
                "variants": sorted(getattr(declared.get(r.name), "variants", None) or {}),
            }
            for r in rows
        ],
        "drift": any(r.drift for r in rows),
        "history": [
            {
                "when": r.started_at.isoformat(),
                "user": r.user,
                "flag": r.details.get("flag") or r.version,
                "old": r.details.get("old"),
                "new": r.details.get("new"),
                "status": r.status,
                "reason": r.reason,
                "rollback_of": r.details.get("rollback_of"),
                "action_id": r.action_id,
            }
            for r in reversed(changes)
        ],
    }


def _finish(site: views.Site, out: RunOutcome, user: str) -> dict[str, Any]:
    """The execution record written as the CLI's App.finish does; the outcome as data."""
    from releasegate import record as records

    actor = site.actor(user)
    try:
        out.record_path = records.write(
            out, Path(site.config.records_dir), user=actor.user, host=actor.host
        )
    except OSError as exc:  # a full disk must not hide the outcome
        out.hint = (out.hint + "; " if out.hint else "") + (
            f"the execution record could not be written: {exc.strerror or exc}"
        )
    return {**views.outcome_dict(out), "said": SAID.get(out.status, out.status)}


def flag_set(
    site: views.Site, stack: str, name: str, value: str, reason: str, user: str
) -> dict[str, Any]:
    """`releasegate flag set STACK ENV NAME VALUE --reason TEXT` as the signed-in user."""
    from releasegate.workflows.flags import FlagRequest

    name, reason = _flag_name(name), _reason(reason)
    if len(value) > MAX_VALUE or "\n" in value or "\r" in value:
        raise BadInput(f"the value is one line of at most {MAX_VALUE} characters")
    env = views._stack_env(site, stack)
    with site.ledger() as ledger:
        out = site.engine(ledger, user).flag_set(FlagRequest(stack, env, name, value, reason))
    return _finish(site, out, user)


def flag_rollback(
    site: views.Site, stack: str, name: str, reason: str, user: str
) -> dict[str, Any]:
    """`releasegate flag rollback STACK ENV NAME --reason TEXT` as the signed-in user."""
    name, reason = _flag_name(name), _reason(reason)
    env = views._stack_env(site, stack)
    with site.ledger() as ledger:
        out = site.engine(ledger, user).flag_rollback(stack, env, name, reason=reason)
    return _finish(site, out, user)


# -- routes ----------------------------------------------------------------------------------
class FlagRoutes:
    def __init__(self, d: Dashboard) -> None:
        self.d = d

    async def page(self, request: Request, who: Who) -> Response:
        stack = request.path_params["stack"]
        data = await run_in_threadpool(flags, self.d.site, stack, who.user.name)
        return self.d.page("flags.html", who, **data)

    async def set_action(self, request: Request, who: Who) -> Response:
        form = request.state.form
        stack, name = request.path_params["stack"], request.path_params["name"]
        out = await run_in_threadpool(
            flag_set, self.d.site, stack, name, form.get("value", ""), form.get("reason", ""),
            who.user.name,
        )  # fmt: skip
        return self._outcome(who, out)

    async def rollback_action(self, request: Request, who: Who) -> Response:
        form = request.state.form
        stack, name = request.path_params["stack"], request.path_params["name"]
        out = await run_in_threadpool(
            flag_rollback, self.d.site, stack, name, form.get("reason", ""), who.user.name
        )
        return self._outcome(who, out)

    def _outcome(self, who: Who, out: dict[str, Any]) -> Response:
        lines = [out["message"]] + ([f"hint: {out['hint']}"] if out["hint"] else [])
        if out["action_id"]:
            lines.append(f"run: /runs/{out['action_id']}")
        title = f"flag {out['stack']} {out['version']}: {out['said']}"
        status = 200 if out["exit_code"] == 0 else 409 if out["status"] == "refused" else 422
        return self.d.page("done.html", who, status, title=title, lines=lines,
                           back=f"/stacks/{out['stack']}/flags")  # fmt: skip

    async def api_list(self, request: Request, who: Who) -> Response:
        stack = request.path_params["stack"]
        return JSONResponse(await run_in_threadpool(flags, self.d.site, stack, who.user.name))

    async def api_set(self, request: Request, who: Who) -> Response:
        from releasegate.web.app import _json

        body = await _json(request)
        stack, name = request.path_params["stack"], request.path_params["name"]
        value = body.get("value")
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str | int | float):
            raise BadInput('the body needs "value": the new value (a string)')
        out = await run_in_threadpool(
            flag_set, self.d.site, stack, name, str(value), str(body.get("reason", "")),
            who.user.name,
        )  # fmt: skip
        return JSONResponse(out, status_code=200 if out["exit_code"] == 0 else 422)

    async def api_rollback(self, request: Request, who: Who) -> Response:
        from releasegate.web.app import _json

        body = await _json(request)
        stack, name = request.path_params["stack"], request.path_params["name"]
        out = await run_in_threadpool(
            flag_rollback, self.d.site, stack, name, str(body.get("reason", "")), who.user.name
        )
        return JSONResponse(out, status_code=200 if out["exit_code"] == 0 else 422)


def routes(d: Dashboard) -> list[Route]:
    f, g = FlagRoutes(d), d.guard
    return [
        Route("/stacks/{stack}/flags", g(f.page), methods=["GET"]),
        Route("/stacks/{stack}/flags/{name}", g(f.set_action, "operate"), methods=["POST"]),
        Route(
            "/stacks/{stack}/flags/{name}/rollback",
            g(f.rollback_action, "operate"),
            methods=["POST"],
        ),
        Route("/api/stacks/{stack}/flags", g(f.api_list), methods=["GET"]),
        Route("/api/stacks/{stack}/flags/{name}", g(f.api_set, "operate"), methods=["POST"]),
        Route(
            "/api/stacks/{stack}/flags/{name}/rollback",
            g(f.api_rollback, "operate"),
            methods=["POST"],
        ),
    ]
