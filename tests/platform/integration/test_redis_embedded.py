"""The embedded-Valkey rule: start one where nothing answers locally, never mask a remote outage."""

from __future__ import annotations

from rtml.redis import connect
from rtml.redis.embedded import embedded_pid, ensure_redis, ping, stop_embedded
from rtml.settings import Settings
from tests.support.procs import free_port


def test_nothing_on_a_local_address_starts_embedded_valkey_there(tmp_path):
    settings = Settings(repo_root=tmp_path, redis_address=f"localhost:{free_port()}")
    said: list[str] = []
    try:
        status = ensure_redis(settings, say=said.append)
        assert status.embedded and status.started_now
        assert len(said) == 1 and settings.redis_address in said[0]
        client = connect(settings)
        client.set("k", "v")
        # Data lives under the project folder and the server outlives this call.
        assert (tmp_path / ".rtml" / f"valkey-{settings.redis_port}").is_dir()
        again = ensure_redis(settings, say=said.append)
        assert not again.started_now and len(said) == 1
        assert client.get("k") == b"v"
    finally:
        assert stop_embedded(settings)
    assert embedded_pid(settings) is None
    assert not ping(settings.redis_host, settings.redis_port)


def test_embedded_data_survives_a_restart(tmp_path):
    settings = Settings(repo_root=tmp_path, redis_address=f"localhost:{free_port()}")
    try:
        ensure_redis(settings, say=lambda _: None)
        connect(settings).set("feature", "42")
        stop_embedded(settings)
        ensure_redis(settings, say=lambda _: None)
        assert connect(settings).get(
            "feature") == b"42"
    finally:
        stop_embedded(settings)


def test_an_answering_server_is_used_as_is(tmp_path, valkey: Settings):
    # The session's Valkey answers at that address, but this project folder did not start it.
    settings = Settings(repo_root=tmp_path, redis_address=valkey.redis_address)
    assert ping(settings.redis_host, settings.redis_port)
    said: list[str] = []
    status = ensure_redis(settings, say=said.append)
    assert not status.embedded and not status.started_now and said == []
