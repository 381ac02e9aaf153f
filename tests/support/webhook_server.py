"""A real local HTTP server that records the JSON bodies POSTed to it (webhook tests)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookServer:
    """Records each POSTed JSON body; `gate` holds every answer until it is set."""

    def __init__(self, *, status: int = 200) -> None:
        self.bodies: list[dict] = []
        self.gate = threading.Event()
        self.gate.set()
        self.arrived = threading.Semaphore(0)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.bodies.append(body)
                server.arrived.release()
                server.gate.wait(10)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/alerts"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, n: int) -> None:
        for _ in range(n):
            assert self.arrived.acquire(timeout=10), f"{len(self.bodies)} of {n} bodies arrived"
