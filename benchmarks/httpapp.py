"""What the comparison servers (naive, stock) share: the /score request, errors, readiness.

They are plain aiohttp apps, lighter than BentoML, so any overhead they show is their approach's,
not a heavier framework's: the comparison errs in their favour.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from benchmarks.model import server_timing

FIELDS = {"transaction_id": str, "customer_id": int, "terminal_id": int, "amount": float,
          "timestamp": str}
Scorer = Callable[[dict[str, Any], dict[str, float]], Awaitable[dict[str, Any]]]


class BadRequest(ValueError):
    """A request field that is missing or of the wrong type."""


def parse(body: Any) -> dict[str, Any]:
    """The transaction fields, typed; `BadRequest` names the first bad field."""
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object")
    out: dict[str, Any] = {}
    for name, kind in FIELDS.items():
        if name not in body:
            raise BadRequest(f"{name}: missing")
        try:
            out[name] = kind(body[name])
        except (TypeError, ValueError):
            raise BadRequest(f"{name}: expected {kind.__name__}, got {body[name]!r}") from None
    try:
        out["timestamp"] = datetime.fromisoformat(out["timestamp"])
    except ValueError:
        raise BadRequest(f"timestamp: not ISO 8601: {out['timestamp']!r}") from None
    if out["timestamp"].tzinfo is None:
        raise BadRequest("timestamp: needs a timezone")
    return out


def make_app(score: Scorer) -> web.Application:
    """POST /score -> `score(transaction, timings)`; GET /readyz; Server-Timing on each answer."""

    async def handle(request: web.Request) -> web.Response:
        t0 = time.perf_counter()
        try:
            tx = parse(json.loads(await request.read()))
        except (BadRequest, json.JSONDecodeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        timings: dict[str, float] = {}
        answer = await score(tx, timings)
        timings["total"] = (time.perf_counter() - t0) * 1000
        return web.json_response(answer, headers={"Server-Timing": server_timing(timings)})

    async def ready(_: web.Request) -> web.Response:
        return web.json_response({"ready": True})

    app = web.Application()
    app.router.add_post("/score", handle)
    app.router.add_get("/readyz", ready)
    return app


def serve(app: web.Application, *, host: str, port: int) -> None:
    """Run until SIGTERM, without per-request access log lines (as the fraud service does)."""
    web.run_app(app, host=host, port=port, access_log=None, print=None)
