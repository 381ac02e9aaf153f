"""`ApiKeys` and `RTML_API_KEYS` driven with hand-written ASGI plumbing (test_asgi's driver).

The real `bentoml serve` with keys is `tests/platform/integration/test_production_profile.py`.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import prometheus_client
import pytest
from pydantic import SecretStr

from rtml.serving import auth
from rtml.serving.asgi import Admission, BodyLimit, Readiness, install
from rtml.serving.auth import ApiKeyConfigError, ApiKeys, key_id, open_paths, parse_api_keys
from rtml.settings import Settings
from tests.platform.unit.test_asgi import EchoApp, _call

OLD = "old-key-0123456789abcdef"
NEW = "new-key-fedcba9876543210"


def _guarded(*, metrics_need_key: bool = False) -> tuple[ApiKeys, EchoApp]:
    app = EchoApp()
    return ApiKeys(app, keys=[OLD, NEW], service="unit",
                   open_paths=open_paths(metrics_need_key=metrics_need_key)), app


def _sent(count: str, outcome: str) -> float:
    value = prometheus_client.REGISTRY.get_sample_value(
        "rtml_api_key_requests_total", {"service": "unit", "key": count, "outcome": outcome})
    return value or 0.0


def test_keys_are_split_on_commas_blanks_ignored_in_order():
    assert parse_api_keys(SecretStr(f" {OLD} ,, {NEW},")) == (OLD, NEW)
    assert parse_api_keys(None) == () and parse_api_keys(SecretStr(" , ")) == ()


@pytest.mark.parametrize("weak", ["short-1", "has a space in it, really", "x" * 15])
def test_a_weak_key_is_refused_by_position_without_showing_it(weak):
    with pytest.raises(ApiKeyConfigError) as info:
        parse_api_keys(SecretStr(f"{OLD},{weak}"))
    message = str(info.value)
    assert "RTML_API_KEYS" in message and "key 2 of" in message
    assert weak.split(",")[0] not in message and OLD not in message


def test_no_key_is_401_naming_the_headers_and_the_app_never_runs():
    guard, app = _guarded()
    status, headers, body = _call(guard, chunks=[b'{"a": 1}'])
    assert status == 401 and app.calls == 0
    assert headers[b"www-authenticate"] == b'Bearer realm="rtml"'
    error = json.loads(body)["error"]
    assert error.startswith("authorization:") and "X-API-Key" in error and "Bearer" in error


@pytest.mark.parametrize("header", [
    (b"authorization", b"Bearer wrong-key-0123456789abcdef"),
    (b"x-api-key", b"wrong-key-0123456789abcdef"),
    (b"authorization", b"Basic " + OLD.encode()),  # right key, wrong scheme
    (b"authorization", b"Bearer " + OLD.encode()[:-1]),  # all but its last character
])
def test_a_wrong_key_is_401_and_the_answer_does_not_echo_it(header):
    guard, app = _guarded()
    status, _, body = _call(guard, chunks=[b"{}"], extra_headers=[header])
    assert status == 401 and app.calls == 0
    assert header[1] not in body and b"wrong-key" not in body and OLD.encode()[:-1] not in body


def test_a_key_in_the_query_string_is_not_accepted():
    """Query strings land in access and proxy logs: the key must travel in a header."""
    guard, app = _guarded()
    status, _, _ = _call(guard, chunks=[b"{}"], path=f"/score?api_key={OLD}")
    assert status == 401 and app.calls == 0


@pytest.mark.parametrize("key", [OLD, NEW])
@pytest.mark.parametrize("spelling", ["Bearer", "bearer", "x-api-key"])
def test_every_configured_key_passes_with_the_body_intact(key, spelling):
    """Rotation: the old and the new key both work while both are configured."""
    guard, app = _guarded()
    header = ((b"x-api-key", key.encode()) if spelling == "x-api-key"
              else (b"authorization", f"{spelling} {key}".encode()))
    before = _sent(key_id(key), "accepted")
    status, _, body = _call(guard, chunks=[b'{"amount":', b" 3}"], extra_headers=[header])
    assert (status, body, app.calls) == (200, b'{"amount": 3}', 1)
    assert _sent(key_id(key), "accepted") == before + 1


def test_refusals_are_counted_by_outcome_and_never_by_the_key():
    guard, _ = _guarded()
    missing, refused = _sent("none", "missing"), _sent("unknown", "refused")
    _call(guard, chunks=[b"{}"])
    _call(guard, chunks=[b"{}"], extra_headers=[(b"x-api-key", b"guess-0123456789abcdef")])
    assert (_sent("none", "missing"), _sent("unknown", "refused")) == (missing + 1, refused + 1)
    assert key_id(OLD) == hashlib.sha256(OLD.encode()).hexdigest()[:8]


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz", "/metrics"])
def test_health_and_metrics_stay_open_by_default(path):
    guard, app = _guarded()
    status, _, _ = _call(guard, chunks=[b""], path=path, method="GET")
    assert status == 200 and app.calls == 1


def test_metrics_take_a_key_when_their_setting_says_so():
    guard, app = _guarded(metrics_need_key=True)
    assert _call(guard, chunks=[b""], path="/metrics", method="GET")[0] == 401
    assert _call(guard, chunks=[b""], path="/livez", method="GET")[0] == 200
    ok = _call(guard, chunks=[b""], path="/metrics", method="GET",
               extra_headers=[(b"x-api-key", NEW.encode())])
    assert ok[0] == 200 and app.calls == 2


@pytest.mark.parametrize("given", [OLD, NEW, "nope-0123456789abcdef"])
def test_every_key_is_compared_every_time_on_equal_length_digests(given, monkeypatch):
    """No early exit: the time taken does not tell which key matched or whether one did."""
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    guard = ApiKeys(EchoApp(), keys=[OLD, NEW, "third-key-0123456789"], service="unit")
    found = guard.match(given.encode())
    assert found == (key_id(given) if given in (OLD, NEW) else None)
    assert calls == [(32, 32)] * 3


class _Service:
    """Records `add_asgi_middleware` calls as BentoML's service class would apply them."""

    def __init__(self) -> None:
        self.middlewares: list[tuple[type, dict]] = []

    def add_asgi_middleware(self, cls: type, **options) -> None:
        self.middlewares.append((cls, options))


def test_install_puts_the_key_check_inside_the_body_limit_from_the_settings():
    """BodyLimit has read the body when a 401 goes out (no reset for a send-first client)."""
    svc = _Service()
    settings = Settings(api_keys=SecretStr(f"{OLD},{NEW}"), metrics_need_api_key=True)
    install(svc, service="unit", paths=("/score",), max_inflight=4, max_body_bytes=100,
            settings=settings)
    assert [c for c, _ in svc.middlewares] == [Admission, BodyLimit, ApiKeys, Readiness]
    options = svc.middlewares[2][1]
    assert options["keys"] == (OLD, NEW) and "/metrics" not in options["open_paths"]
    plain = _Service()
    install(plain, service="unit", paths=("/score",), max_inflight=4, max_body_bytes=100,
            settings=Settings(api_keys=None))
    assert ApiKeys not in [c for c, _ in plain.middlewares]


def test_a_service_that_passes_no_settings_still_gets_the_keys(monkeypatch):
    monkeypatch.setenv("RTML_API_KEYS", NEW)
    svc = _Service()
    install(svc, service="unit", paths=("/score",), max_inflight=4, max_body_bytes=100)
    assert [o["keys"] for c, o in svc.middlewares if c is ApiKeys] == [(NEW,)]
    monkeypatch.setenv("RTML_API_KEYS", "weak")
    with pytest.raises(ApiKeyConfigError):
        install(_Service(), service="unit", paths=("/score",), max_inflight=4,
                max_body_bytes=100)
