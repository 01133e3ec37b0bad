"""The sample web app of `releasegate demo`: answers /health with its version.

Standard library only. A release whose VERSION file is followed by a line
`broken` answers /health with 500: the demo's release that fails its smoke checks.
"""

import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
LINES = (HERE / "VERSION").read_text(encoding="utf-8").split()
VERSION = LINES[0]
BROKEN = "broken" in LINES[1:]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            ok = not BROKEN
            body = {"status": "ok" if ok else "error", "version": VERSION}
            self._send(200 if ok else 500, json.dumps(body))
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
