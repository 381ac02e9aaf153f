"""API keys on the scoring endpoints: `RTML_API_KEYS`, several at once so a key can be rotated.

Rotation without an outage: add the new key next to the old one (`RTML_API_KEYS=old,new`), roll
the clients over, watch `rtml_api_key_requests_total{key=<old id>}` stop growing, then drop the
old key. A key's id on `/metrics` and in the service's start-up line is the first 8 hex digits of
its SHA-256: enough to tell keys apart, nothing to authenticate with.

A client sends `Authorization: Bearer <key>` or `X-API-Key: <key>`. A key in the query string is
not accepted: query strings end up in access logs and proxies' logs. The presented key is hashed
and compared with every configured key's hash by `hmac.compare_digest`, with no early exit, so
the time taken tells neither how much of a key was right nor which key matched. Nothing here logs
or echoes a presented key: the 401 names the header to send, never what was sent.

Health probes (`/livez`, `/readyz`, `/healthz`) always stay open: a kubelet or load balancer
probes without credentials. `/metrics` stays open unless `RTML_METRICS_NEED_API_KEY=true`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from typing import Any

from pydantic import SecretStr

from rtml.serving.asgi import _send_json

HEALTH_PATHS = frozenset({"/livez", "/readyz", "/healthz"})
METRICS_PATH = "/metrics"
MIN_KEY_CHARS = 16
SETTING = "RTML_API_KEYS"


class ApiKeyConfigError(ValueError):
    """`RTML_API_KEYS` holds a key that would be too easy to guess (the message shows no key)."""


def parse_api_keys(value: SecretStr | str | None) -> tuple[str, ...]:
    """The keys in `RTML_API_KEYS` (comma-separated; blanks ignored), checked for strength.

    Raises `ApiKeyConfigError` naming the key by position only: a settings error must not put
    a secret into a log.
    """
    if value is None:
        return ()
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    for i, key in enumerate(keys, start=1):
        if len(key) < MIN_KEY_CHARS or any(c.isspace() for c in key):
            raise ApiKeyConfigError(
                f"{SETTING}: key {i} of {len(keys)} is shorter than {MIN_KEY_CHARS} characters or "
                "holds whitespace; make one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    return keys


def key_id(key: str | bytes) -> str:
    """A key's public name: the first 8 hex digits of its SHA-256."""
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(raw).hexdigest()[:8]


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key a request carries: `Authorization: Bearer <key>`, else `X-API-Key`."""
    bearer = header = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"authorization" and bearer is None:
            scheme, _, rest = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and rest.strip():
                bearer = rest.strip()
        elif lowered == b"x-api-key" and header is None and value.strip():
            header = value.strip()
    return bearer if bearer is not None else header


def _count(service: str, key: str, outcome: str) -> None:
    """`rtml_api_key_requests_total`; a metrics failure never fails a request."""
    try:
        from rtml.metrics import record_api_key

        record_api_key(service=service, key=key, outcome=outcome)
    except Exception:  # noqa: BLE001 - metrics are best effort on the request path
        pass


async def _refuse(send: Any, detail: str) -> None:
    await _send_json(send, 401, {
        "error": f"authorization: {detail}",
        "detail": [{"loc": ["header", "authorization"], "msg": detail}],
    }, headers=[(b"www-authenticate", b'Bearer realm="rtml"')])


class ApiKeys:
    """ASGI middleware: 401 unless the request carries one of `keys` (see the module docstring).

    `open_paths` are answered without a key. Install it inside `BodyLimit`, which has read the
    whole body by then: a 401 sent with the body still unread would reach a client that sends
    its body before reading (Python's urllib) as a connection reset instead.
    """

    def __init__(self, app: Any, *, keys: Iterable[str], service: str,
                 open_paths: Iterable[str] = HEALTH_PATHS | {METRICS_PATH}) -> None:
        self.app = app
        self.service = service
        self.open_paths = frozenset(open_paths)
        # (sha256(key), id) per key: only digests are compared, all of the same length.
        self.digests = tuple((hashlib.sha256(k.encode()).digest(), key_id(k)) for k in keys)
        # A child of "bentoml": BentoML configures that logger in each worker. Ids only.
        logging.getLogger(f"bentoml.{service}").info(
            "%s: API key required except on %s; %d key(s) accepted, ids %s", service,
            ", ".join(sorted(self.open_paths)), len(self.digests),
            ", ".join(kid for _, kid in self.digests))

    def match(self, given: bytes) -> str | None:
        """The id of the configured key equal to `given`, or None; constant time per key."""
        digest = hashlib.sha256(given).digest()
        found = None
        for want, kid in self.digests:  # no early exit: every key is compared every time
            if hmac.compare_digest(digest, want):
                found = kid
        return found

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (scope["type"] != "http" or not self.digests
                or scope.get("path") in self.open_paths):
            await self.app(scope, receive, send)
            return
        given = presented_key(scope.get("headers") or ())
        if given is None:
            _count(self.service, "none", "missing")
            await _refuse(send, "no API key: send `Authorization: Bearer <key>` or "
                                "`X-API-Key: <key>`")
            return
        kid = self.match(given)
        if kid is None:
            _count(self.service, "unknown", "refused")
            await _refuse(send, "API key not accepted")
            return
        _count(self.service, kid, "accepted")
        await self.app(scope, receive, send)


def open_paths(*, metrics_need_key: bool) -> frozenset[str]:
    """The paths answered without a key: health always, `/metrics` unless it needs one."""
    return HEALTH_PATHS if metrics_need_key else HEALTH_PATHS | {METRICS_PATH}
