"""What the comparison servers (naive, stock) share: the /score request, errors, readiness.

They are plain aiohttp apps, lighter than BentoML, so any overhead they show is their approach's,
not a heavier framework's: the comparison errs in their favour. Garbage collection is handled as
the fraud service handles it (bentos/fraud/service.py): `gc.freeze()` once start-up is done and
again after the first and the 200th request, so a full collection never walks the long-lived
objects of Feast, XGBoost and the app.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from benchmarks.model import server_timing

FIELDS = {"transaction_id": str, "customer_id": int, "terminal_id": int, "amount": float,
          "timestamp": str}
# (transaction, stage timings in ms, Server-Timing descriptions) -> answer
Scorer = Callable[[dict[str, Any], dict[str, float], dict[str, str]], Awaitable[dict[str, Any]]]
FREEZE_AT = (1, 200)  # requests after which survivors are frozen, as in the fraud service


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


def make_app(score: Scorer, *, startup: Callable[[], Awaitable[None]] | None = None,
             cleanup: Callable[[], Awaitable[None]] | None = None) -> web.Application:
    """POST /score -> `score(transaction, timings, notes)`; GET /readyz; Server-Timing.

    `startup` (open pools) runs before the app freezes its start-up objects; `cleanup` at exit.
    """
    served = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal served
        t0 = time.perf_counter()
        served += 1
        if served in FREEZE_AT:
            gc.freeze()  # cheap (no collection): today's survivors leave every future pass
        try:
            tx = parse(json.loads(await request.read()))
        except (BadRequest, json.JSONDecodeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        timings: dict[str, float] = {}
        notes: dict[str, str] = {}
        answer = await score(tx, timings, notes)
        timings["total"] = (time.perf_counter() - t0) * 1000
        return web.json_response(answer, headers={"Server-Timing": server_timing(timings, notes)})

    async def ready(_: web.Request) -> web.Response:
        return web.json_response({"ready": True})

    async def start(_: web.Application) -> None:
        if startup is not None:
            await startup()
        gc.collect()
        gc.freeze()

    async def stop(_: web.Application) -> None:
        if cleanup is not None:
            await cleanup()

    app = web.Application()
    app.router.add_post("/score", handle)
    app.router.add_get("/readyz", ready)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def serve(app: web.Application, *, host: str, port: int) -> None:
    """Run until SIGTERM, without per-request access log lines (as the fraud service does)."""
    web.run_app(app, host=host, port=port, access_log=None, print=None)
