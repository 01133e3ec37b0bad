"""`releasegate serve`: the dashboard over this config's ledger, on loopback by default."""

from __future__ import annotations

import click

from releasegate.cli.app import App
from releasegate.errors import BadInput

pass_app = click.make_pass_decorator(App)
WEB_PACKAGES = ("starlette", "jinja2", "uvicorn", "argon2")


def missing_web_packages() -> list[str]:
    import importlib.util

    return [name for name in WEB_PACKAGES if importlib.util.find_spec(name) is None]


@click.command()
@click.option("--bind", default="127.0.0.1:8642", show_default=True, metavar="HOST:PORT")
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Listen on a non-loopback address (put a TLS proxy in front: cookies are Secure).",
)
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), help="Serve HTTPS.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), help="Its key.")
@pass_app
def serve(
    app: App, bind: str, allow_remote: bool, tls_cert: str | None, tls_key: str | None
) -> int:
    """Serve the dashboard: stacks, history, runs live, change approvals, rollbacks by role.

    \b
    Users: releasegate user add NAME --role viewer|operator|approver|admin
    API:   releasegate user token NAME; then Authorization: Bearer TOKEN on /api/...
    """
    missing = missing_web_packages()
    if missing:
        raise BadInput(
            f"the dashboard needs packages that are not installed: {', '.join(missing)}",
            hint="pip install 'releasegate[web]'",
        )
    from releasegate.web.auth import is_loopback, parse_bind

    host, port = parse_bind(bind)
    if (tls_cert is None) != (tls_key is None):
        raise BadInput("--tls-cert and --tls-key go together")
    tls = tls_cert is not None
    config = app.config
    secure = bool(config.web.secure_cookies or tls)
    if not is_loopback(host):
        if not allow_remote:
            raise BadInput(
                f"--bind {bind} is not a loopback address: the dashboard can roll back production",
                hint="serve on 127.0.0.1 behind a TLS reverse proxy, or add --allow-remote "
                "with --tls-cert/--tls-key (or web.secure_cookies: true behind TLS)",
            )
        if not secure:
            raise BadInput(
                f"--bind {bind} --allow-remote without TLS: sign-in cookies must be Secure, "
                "and Secure cookies need HTTPS",
                hint="add --tls-cert FILE --tls-key FILE, or set web.secure_cookies: true "
                "when a TLS proxy is in front",
            )
    import uvicorn

    from releasegate.users import Users
    from releasegate.web.app import create_app
    from releasegate.web.views import Site

    users = Users(app.ledger)
    if not users.all():
        app.err_console.print(
            "no dashboard users yet: releasegate user add NAME --role admin", style="yellow"
        )
    asgi = create_app(
        Site(config, app.config_file), secure_cookies=secure, bind=(host, port), tls=tls
    )
    scheme = "https" if tls else "http"
    shown = f"[{host}]" if ":" in host else host
    app.err_console.print(f"dashboard on {scheme}://{shown}:{port}/ (Ctrl-C stops it)")
    uvicorn.run(
        asgi,
        host=host,
        port=port,
        log_level="warning",
        # The peer is the socket's: X-Forwarded-For is never believed (it decides SSO).
        proxy_headers=False,
        server_header=False,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        timeout_graceful_shutdown=3,
    )
    return 0
