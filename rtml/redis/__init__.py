"""The one Redis client factory: every role (service, flow, producer, monitor, CLI) connects here.

One address setting (`RTML_REDIS_ADDRESS`) names a single server (`host:port`, `redis://host:port`)
or a Redis Cluster (several `host:port` separated by commas, or `redis+cluster://h:p[,h:p…]`): a
cluster client discovers the rest of the nodes from any one of them. AUTH (user + password) and TLS
come from the same settings, so no module spells out connection details of its own.

One retry policy: the client never retries by itself. redis-py 7's default retry-with-backoff turns
one refused connect into ~7 s, which a 50 ms budget cannot afford and which hides an outage from
the caller. A caller that must persist (the flow's sinks, the producer) loops with back-off through
`until_answers`; a request path falls back instead. Timeouts differ by role, nothing else does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import ClusterPipeline as AsyncClusterPipeline
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from rtml.settings import Settings

log = logging.getLogger(__name__)

Role = Literal["service", "flow", "producer", "monitor", "cli"]
# Socket timeouts per role, seconds. The service's comes from settings (`redis_timeout_s`): its
# feature read has a budget of its own and must fail fast; batch roles wait for slow commands.
ROLE_TIMEOUT_S: dict[str, float] = {"flow": 5.0, "producer": 10.0, "monitor": 5.0, "cli": 5.0}
CONNECT_TIMEOUT_S = 2.0
CLUSTER_SCHEME = "redis+cluster://"

T = TypeVar("T")


@dataclass(frozen=True)
class Address:
    """Where Redis is: one node, or the seed nodes of a cluster."""

    nodes: tuple[tuple[str, int], ...]
    cluster: bool
    tls: bool = False

    @property
    def host(self) -> str:
        """The first node's host (IPv6 without brackets)."""
        return self.nodes[0][0]

    @property
    def port(self) -> int:
        """The first node's port."""
        return self.nodes[0][1]


def _node(text: str) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):  # [::1]:6379
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 6379
    if text.count(":") > 1:  # a bare IPv6 address
        return text, 6379
    host, _, port = text.partition(":")
    return host, int(port) if port else 6379


def parse_address(address: str) -> Address:
    """`host:port`, `redis://…`, `rediss://…` (TLS), `h:p,h:p` or `redis+cluster://h:p,…`."""
    text = address.strip()
    cluster = False
    tls = False
    for scheme, is_cluster, is_tls in ((CLUSTER_SCHEME, True, False),
                                       ("rediss+cluster://", True, True),
                                       ("rediss://", False, True), ("redis://", False, False)):
        if text.startswith(scheme):
            text, cluster, tls = text[len(scheme):], is_cluster, is_tls
            break
    text = text.split("/", 1)[0]  # no db path
    if "@" in text or "password=" in text:  # no message may repeat it: it holds a password
        raise ValueError("a Redis address with credentials in it (user:password@host): set "
                         "RTML_REDIS_USERNAME and RTML_REDIS_PASSWORD instead (addresses are "
                         "printed in logs and error messages)")
    # Feast's connection string may carry options after the nodes (`host:port,ssl=true`).
    parts = [p for p in text.split(",") if p.strip() and "=" not in p]
    if not parts:
        raise ValueError(f"no Redis node in address {address!r}")
    nodes = tuple(_node(p) for p in parts)
    return Address(nodes=nodes, cluster=cluster or len(nodes) > 1, tls=tls)


class _AsyncCluster(AsyncRedisCluster):
    """redis-py's asyncio cluster client, whose set-up survives a caller's budget.

    The asyncio cluster client discovers the cluster inside its first command (CLUSTER SLOTS, a
    connection per node, COMMAND: ~15 ms on loopback) and again after a node error. The service
    gives its feature read 30 ms (`asyncio.wait_for`): a cancelled read cancels that set-up half
    way, and redis-py then throws its progress away, so under load every request would fall back
    and none would finish it. Here the set-up runs as a task of its own that a cancelled caller
    leaves running (`asyncio.shield`): the next request finds the client ready.
    """

    __slots__ = ("_setup",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._setup: asyncio.Future[Any] | None = None
        super().__init__(*args, **kwargs)

    async def initialize(self) -> _AsyncCluster:
        """Discover the cluster once, in a task that outlives a cancelled caller."""
        if self._initialize:
            task = self._setup
            if task is None or task.done():
                task = self._setup = asyncio.ensure_future(super().initialize())
                # A failure nobody awaits any more is not "never retrieved": the next call
                # starts a new set-up and raises that one's error.
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
            await asyncio.shield(task)
        return self

    def pipeline(self, transaction: Any | None = None,
                 shard_hint: Any | None = None) -> _AsyncClusterPipeline:
        """A pipeline that marks the slot map stale when a node fails (see its class)."""
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # redis-py's own refusal
        return _AsyncClusterPipeline(self, transaction)


class _AsyncClusterPipeline(AsyncClusterPipeline):
    """A pipeline whose node error makes the client discover the cluster again.

    redis-py re-discovers after a failed single command, but a failed pipeline (the online
    reader's HMGETs) only retries, and with no retries (`retry_policy`) it raises and keeps the
    old slot map: after a master dies and its replica takes over, every read would still go to
    the dead node. Here the next command discovers the cluster anew (`_AsyncCluster.initialize`,
    one set-up shared by every request).
    """

    __slots__ = ()

    async def execute(self, raise_on_error: bool = True,
                      allow_redirections: bool = True) -> list[Any]:
        """Run the queued commands; on a node or cluster error, mark the slot map stale."""
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except AsyncRedisCluster.ERRORS_ALLOW_RETRY:
            self.cluster_client._initialize = True
            raise


def retry_policy() -> Retry:
    """The one policy: no retry inside the client (see the module docstring)."""
    return Retry(NoBackoff(), 0)


def _options(settings: Settings | None, role: Role, timeout_s: float | None,
             tls: bool) -> dict[str, Any]:
    if timeout_s is None:
        timeout_s = (settings.redis_timeout_s if settings is not None and role == "service"
                     else ROLE_TIMEOUT_S.get(role, 5.0))
    opts: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": min(timeout_s, CONNECT_TIMEOUT_S),
        "retry": retry_policy(),
    }
    if settings is not None:
        if settings.redis_username:
            opts["username"] = settings.redis_username
        if settings.redis_password is not None:
            opts["password"] = settings.redis_password.get_secret_value()
        tls = tls or settings.redis_tls
        if tls and settings.redis_tls_ca_file:
            opts["ssl_ca_certs"] = str(settings.redis_tls_ca_file)
    if tls:
        opts["ssl"] = True
    return opts


def connect(settings: Settings | None = None, *, role: Role = "cli", address: str | None = None,
            decode_responses: bool = False, timeout_s: float | None = None,
            **extra: Any) -> Any:
    """A blocking client (`redis.Redis`, or `RedisCluster` for a cluster address).

    `address` overrides `settings.redis_address` (a test's or a benchmark's own server).
    """
    where = parse_address(address if address is not None else _address(settings))
    opts = _options(settings, role, timeout_s, where.tls)
    opts.update(decode_responses=decode_responses, **extra)
    if where.cluster:
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in where.nodes], **opts)
    return redis.Redis(host=where.host, port=where.port, **opts)


def connect_async(settings: Settings | None = None, *, role: Role = "service",
                  address: str | None = None, decode_responses: bool = False,
                  timeout_s: float | None = None, **extra: Any) -> Any:
    """The asyncio twin of `connect` (the services' client)."""
    where = parse_address(address if address is not None else _address(settings))
    opts = _options(settings, role, timeout_s, where.tls)
    opts.update(decode_responses=decode_responses, **extra)
    if where.cluster:
        return _AsyncCluster(
            startup_nodes=[AsyncClusterNode(h, p) for h, p in where.nodes], **opts)
    return aioredis.Redis(host=where.host, port=where.port, **opts)


def _address(settings: Settings | None) -> str:
    if settings is None:
        raise ValueError("connect() needs settings or an address")
    return settings.redis_address


RETRY_FIRST_S = 0.05
RETRY_MAX_S = 2.0


def until_answers(call: Callable[[], T], what: str, *,
                  sleep: Callable[[float], None] = time.sleep) -> T:
    """`call()`, retried with a capped back-off for as long as Redis cannot be reached.

    One warning line when Redis goes, one when it is back.
    """
    wait, down_since = RETRY_FIRST_S, None
    while True:
        try:
            result = call()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if down_since is None:
                down_since = time.monotonic()
                log.warning("%s: Redis unavailable (%s); retrying until it is back", what, exc)
            sleep(wait)
            wait = min(wait * 2, RETRY_MAX_S)
            continue
        if down_since is not None:
            log.warning("%s: Redis is back after %.1f s", what, time.monotonic() - down_since)
        return result
