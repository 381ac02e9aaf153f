"""ASGI middleware shared by the services: shedding, body limits, API keys, a /readyz with why."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from rtml.settings import Settings

# service name -> why it is not ready (absent when ready). Written by the service's __init__,
# read by `Readiness`; both live in the same worker process.
NOT_READY: dict[str, str] = {}


async def _send_json(send: Any, status: int, body: dict[str, Any],
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()), *(headers or [])],
    })
    await send({"type": "http.response.body", "body": payload})


class BodyLimit:
    """413 for a body over `max_bytes`, judged by Content-Length and by what actually arrives.

    The 413 goes out only after the rest of the body has been read and dropped (at most
    `drain_bytes` in all, for at most `drain_s`). A client that sends its whole body before
    reading the answer (Python's urllib: no `Expect: 100-continue`, and `Connection: close`)
    otherwise meets a server that answers early and closes with the body's bytes still unread:
    the kernel then sends a reset, and the client's TCP stack throws the 413 away. A client that
    sent `Expect: 100-continue` is answered at once: it sends no body unless told to.
    """

    def __init__(self, app: Any, max_bytes: int = 1_000_000, *, drain_bytes: int = 16_000_000,
                 drain_s: float = 5.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = drain_bytes
        self.drain_s = drain_s

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            if (b"100-continue" not in headers.get(b"expect", b"").lower()
                    and int(declared) <= self.drain_bytes):
                await self._drain(receive, seen=0)
            await self._reject(send)
            return
        # Read the body before the app sees it (bodies here are small JSON): an over-limit
        # chunked body is refused here, not as an exception the framework would turn into a 500.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                if message.get("more_body", False):
                    await self._drain(receive, seen=seen)
                await self._reject(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _drain(self, receive: Any, *, seen: int) -> None:
        """Read and drop the rest of the body, within the byte and time bounds."""
        try:
            async with asyncio.timeout(self.drain_s):
                while seen <= self.drain_bytes:
                    message = await receive()
                    if message["type"] != "http.request":
                        return
                    seen += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        return
        except TimeoutError:  # a client trickling its body: answer now, whatever it sees
            return

    async def _reject(self, send: Any) -> None:
        await _send_json(send, 413, {
            "error": f"body: request body exceeds {self.max_bytes} bytes",
            "detail": [{"loc": ["body"], "msg": f"larger than {self.max_bytes} bytes"}],
        })


class Readiness:
    """Answer GET /readyz with the reason while the service says it is not ready."""

    def __init__(self, app: Any, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path") == "/readyz":
            reason = NOT_READY.get(self.service)
            if reason:
                await _send_json(send, 503, {"ready": False, "reason": reason})
                return
        await self.app(scope, receive, send)


class Admission:
    """Shed load at the door: 503 + `Retry-After` once `max_inflight` requests are being served.

    Past saturation every queued request only adds to the wait of those behind it: a request
    refused in microseconds lets its client retry elsewhere, while the ones admitted keep their
    latency budget. BentoML's own `traffic.max_concurrency` answers 429 with no `Retry-After`
    and no reason; this answers what a load balancer expects. Counts only `paths` (the scoring
    endpoints): health, readiness and metrics are always answered.
    """

    def __init__(self, app: Any, max_inflight: int, paths: tuple[str, ...] = (),
                 retry_after_s: int = 1, setting: str = "max_inflight") -> None:
        self.app = app
        self.max_inflight = max_inflight
        self.setting = setting  # the variable that sets the limit, named in the 503
        self.paths = frozenset(paths)
        self.retry_after = str(retry_after_s).encode()
        self.inflight = 0
        self.shed = 0  # requests refused since start (this worker)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.max_inflight <= 0 or scope.get("path") not in self.paths:
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.max_inflight:
            self.shed += 1
            await _send_json(send, 503, {
                "error": f"overloaded: {self.inflight} requests in flight, the limit is "
                         f"{self.max_inflight} ({self.setting}); retry shortly",
                "reason": "max_inflight",
            }, headers=[(b"retry-after", self.retry_after)])
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1


def format_server_timing(timings_ms: dict[str, float], notes: dict[str, str]) -> str:
    """The services' `Server-Timing` value: `name;dur=ms[;desc=note]`, then notes with no time.

    `format_server_timing({"model": 0.31}, {"model": "onnx", "cache": "hit"})`
    -> `model;dur=0.310;desc=onnx, cache;desc=hit`.
    """
    return ", ".join(
        [f"{k};dur={v:.3f}" + (f";desc={notes[k]}" if k in notes else "")
         for k, v in timings_ms.items()]
        + [f"{k};desc={v}" for k, v in notes.items() if k not in timings_ms])


def parse_server_timing(header: str | None) -> dict[str, dict[str, str]]:
    """`Server-Timing: features;dur=0.5, cache;desc=hit` -> {name: {param: value}}."""
    out: dict[str, dict[str, str]] = {}
    for entry in (header or "").split(","):
        name, *params = (p.strip() for p in entry.split(";"))
        if name:
            out[name] = dict(param.partition("=")[::2] for param in params)
    return out


def install(service_cls: Any, *, service: str, paths: tuple[str, ...], max_inflight: int,
            max_body_bytes: int, settings: Settings | None = None) -> None:
    """Every service's middleware, outermost first: a shed request costs no body read.

    API keys (`RTML_API_KEYS`, `rtml.serving.auth`) come from `settings`, or when a service
    passes none from `Settings(scenario=service)` read now (the service module's import is its
    entry point): a service cannot be served without the keys by forgetting to pass them.
    """
    from rtml.serving.auth import ApiKeys, open_paths, parse_api_keys

    settings = settings if settings is not None else Settings(scenario=service)
    service_cls.add_asgi_middleware(Admission, max_inflight=max_inflight, paths=paths,
                                    setting=f"RTML_{service.upper()}__MAX_INFLIGHT")
    service_cls.add_asgi_middleware(BodyLimit, max_bytes=max_body_bytes)
    keys = parse_api_keys(settings.api_keys)
    if keys:  # inside BodyLimit: the body has been read when a 401 goes out
        service_cls.add_asgi_middleware(
            ApiKeys, keys=keys, service=service,
            open_paths=open_paths(metrics_need_key=settings.metrics_need_api_key))
    service_cls.add_asgi_middleware(Readiness, service=service)
