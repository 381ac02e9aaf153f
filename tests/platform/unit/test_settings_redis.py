"""Redis address parsing and `ensure_redis` failing clearly where it must not start anything."""

from __future__ import annotations

import socket
import time

import pytest

from rtml.redis import embedded as redis_server
from rtml.redis.embedded import RedisUnavailableError, ensure_redis
from rtml.settings import Settings


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [
        ("localhost:6379", "localhost", 6379),
        ("redis.example:6380,db=2", "redis.example", 6380),
        ("redis.example:6380,db=2,ssl=true", "redis.example", 6380),
        ("10.0.0.5", "10.0.0.5", 6379),
        ("cache.internal", "cache.internal", 6379),
        ("127.0.0.1:7000", "127.0.0.1", 7000),
    ],
)
def test_host_and_port_parsing(address, host, port):
    s = Settings(redis_address=address)
    assert s.redis_host == host
    assert s.redis_port == port


def test_default_address_is_local_6379(monkeypatch):
    monkeypatch.delenv("RTML_REDIS_ADDRESS", raising=False)
    s = Settings()
    assert (s.redis_host, s.redis_port) == ("localhost", 6379)


def _free_local_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_embedded_start(monkeypatch):
    """Fail the test if anything tries to start a server."""

    def forbidden(*args, **kwargs):
        raise AssertionError("ensure_redis must not start an embedded server here")

    monkeypatch.setattr(redis_server, "start_embedded", forbidden)
    monkeypatch.setattr(redis_server.subprocess, "Popen", forbidden)


def _raise_message(settings: Settings) -> str:
    said: list[str] = []
    with pytest.raises(RedisUnavailableError) as info:
        ensure_redis(settings, say=said.append)
    assert said == []
    return str(info.value)


def test_unresolvable_remote_host_raises_single_line_naming_address(tmp_path, no_embedded_start):
    address = "redis.invalid:6379"
    settings = Settings(redis_address=address, repo_root=tmp_path, redis_timeout_s=0.5)
    message = _raise_message(settings)
    assert address in message
    assert "\n" not in message
    assert "localhost" in message  # says an embedded server is only for local addresses
    assert not (tmp_path / ".rtml").exists()


def test_local_address_with_embedding_disabled_raises_with_how_to_start(
    tmp_path, no_embedded_start
):
    port = _free_local_port()
    address = f"127.0.0.1:{port}"
    settings = Settings(redis_address=address, repo_root=tmp_path, redis_embedded="never",
                        redis_timeout_s=0.5)
    message = _raise_message(settings)
    assert address in message
    assert "\n" not in message
    assert f"redis-server --port {port}" in message
    assert "RTML_REDIS_ADDRESS" in message
    assert not (tmp_path / ".rtml").exists()


def test_ping_is_false_quickly_on_a_closed_local_port():
    t0 = time.monotonic()
    assert redis_server.ping("127.0.0.1", _free_local_port(), timeout_s=0.5) is False
    assert time.monotonic() - t0 < 2.0
