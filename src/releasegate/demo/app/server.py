"""The sample web app of `releasegate demo`: answers /health with its version.

Standard library only. A release whose VERSION file is followed by a line
`broken` answers /health with 500: the demo's release that fails its smoke checks. One
followed by `errors` answers as usual but logs an ERROR line for every request: the
release that passes its smoke checks and fails its watch window (`grep -i error`).

Feature switches (seed 003's `SUPPLIER_EVAL_ENABLED=true`): the `*_ENABLED` variables of the
`.env` beside it, read at start. Each one set to `true` is listed in /health's `features`
and /features answers 200 instead of 403; `BROKEN_FEATURE_ENABLED=true` breaks /health (a
switch whose change fails the smoke checks).
"""

import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
LINES = (HERE / "VERSION").read_text(encoding="utf-8").split()
VERSION = LINES[0]


def _switches() -> set[str]:
    """The names of the `*_ENABLED` variables set to true in ./.env (quotes, `export ` and
    an inline comment allowed)."""
    try:
        text = (HERE / ".env").read_text(encoding="utf-8")
    except OSError:
        return set()
    on = {}
    for line in text.splitlines():
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and key.strip().endswith("_ENABLED"):
            value = value.split(" #")[0].strip().strip("'\"")
            on[key.strip()] = value.lower() == "true"
    return {k for k, v in on.items() if v}


FEATURES = _switches()
BROKEN = "broken" in LINES[1:] or "BROKEN_FEATURE_ENABLED" in FEATURES
ERRORS = "errors" in LINES[1:]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if ERRORS:
            print(f"ERROR supplier lookup failed for {self.path}: timeout", flush=True)
        if self.path == "/health":
            ok = not BROKEN
            body: dict[str, object] = {"status": "ok" if ok else "error", "version": VERSION}
            if FEATURES:
                body["features"] = sorted(FEATURES)
            self._send(200 if ok else 500, json.dumps(body))
        elif self.path == "/features":
            on = bool(FEATURES - {"BROKEN_FEATURE_ENABLED"})
            text = json.dumps({"enabled": sorted(FEATURES)})
            self._send(200 if on else 403, text if on else json.dumps({"error": "not enabled"}))
        elif self.path == "/":
            self._send(200, f"<h1>sample app {VERSION}</h1>", "text/html")
        else:
            self._send(404, json.dumps({"error": "not found"}))

    def _send(self, code: int, text: str, ctype: str = "application/json") -> None:
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args: object) -> None:
        print(f"{self.address_string()} {fmt % args}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"sample app {VERSION} listening on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
