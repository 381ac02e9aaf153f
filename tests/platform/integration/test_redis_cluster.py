"""The fraud service and the fresh-features flow on a 3-master Redis Cluster on loopback.

Production runs Redis Cluster: keys of one pipeline live on different nodes, a node answers MOVED
for a key it does not serve, and a command or script over keys of different slots is refused.
Here the kit meets a real one (`tests.support.cluster`, the embedded Valkey binary): the sandbox's
`feature_store.yaml` still names the single-node test Valkey, and only `RTML_REDIS_ADDRESS`
(`redis+cluster://…`) points every process at the cluster — so the Feast config the kit derives,
the factory's clients, the online reader's pipelined HMGETs, the direct writer, the stream source,
dead letters, the prediction log and its drain, and the store-identity keys all run on it.
Answers are checked against Feast's own cluster client (a config written here, not the kit's) and
the saved booster (`tests.support.independent`), and the flow's windows against the oracle.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest
import redis
import yaml
from feast import FeatureStore, RepoConfig
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from google.protobuf.timestamp_pb2 import Timestamp
from redis.cluster import RedisCluster

from feature_repo.fraud.request_features import ON_DEMAND
from pipelines.fraud.events import DEAD_LETTER_STREAM, stream_key
from rtml.features.online import OnlineReader, load_store, service_feature_names
from rtml.features.online_store import MATERIALIZED_KEY, STORE_ID_KEY, store_id
from rtml.monitor.freshness import online_ages
from rtml.redis import connect, connect_async
from rtml.serving.predlog import PredictionLog, drain
from rtml.settings import Settings
from rtml.streams.source import dead_letter
from rtml.streams.stop import CleanStop, clean_stop, clear_clean_stop, record_clean_stop
from tests.support import flow_harness as h
from tests.support.cluster import Cluster, redis_cluster
from tests.support.independent import saved_model, score_and_check
from tests.support.procs import BIN, bentoml_serve, run
from tests.support.sandbox import repo_copy


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three masters on free loopback ports, slots split in three; stopped after the module."""
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c


@pytest.fixture(scope="module")
def cluster_env(stack: Settings, env: dict[str, str], cluster: Cluster,
                tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The stack's repo and model store, its online store on the cluster, loaded by `rtml`.

    A copy of the repo (the registry copied, so the cluster's loads are recorded apart; the
    generated data linked; no prediction folder of the stack's) whose `feature_store.yaml` still
    names the single-node Valkey: only `RTML_REDIS_ADDRESS` says "cluster".
    """
    root = tmp_path_factory.mktemp("repo_cluster")
    repo_copy(stack, root)
    out = {**env, "RTML_REPO_ROOT": str(root), "RTML_REDIS_ADDRESS": cluster.url}
    said = run([str(BIN / "rtml"), "materialize"], env=out, cwd=root)
    assert "no rtml load recorded" in said, said  # a new store: a full load into the cluster
    return out


def _settings(env: dict[str, str]) -> Settings:
    return Settings(scenario="fraud",
                    repo_root=Path(env["RTML_REPO_ROOT"]), redis_address=env["RTML_REDIS_ADDRESS"])


def _feast_on(cluster: Cluster, repo_root: Path) -> FeatureStore:
    """Feast's own cluster client, configured here as Feast documents it (not by the kit)."""
    raw = yaml.safe_load((repo_root / "feature_store.yaml").read_text())
    raw["online_store"] = {"type": "redis", "redis_type": "redis_cluster",
                           "connection_string": cluster.address}
    config = RepoConfig(**raw)
    config.repo_path = repo_root
    return FeatureStore(repo_path=str(repo_root), config=config)


def _entity_key(join_key: str, value: int) -> bytes:
    ek = EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(int64_val=value)])
    return serialize_entity_key(ek, entity_key_serialization_version=3) + b"rtml"


def test_the_factory_gives_cluster_clients_for_cluster_addresses(cluster: Cluster):
    for address in (cluster.address, cluster.url):
        client = connect(address=address)
        assert isinstance(client, RedisCluster)
        assert {n.port for n in client.get_primaries()} == set(cluster.ports)
        client.close()
    single = connect(address=f"127.0.0.1:{cluster.ports[0]}")
    assert type(single) is redis.Redis
    single.close()


def test_a_read_cancelled_by_its_budget_leaves_the_cluster_set_up_running(cluster: Cluster):
    """The service's first reads time out while the client discovers the cluster: not forever.

    The set-up (CLUSTER SLOTS, node connections, COMMAND) outlives the cancelled read, so the
    client is ready for the next request instead of starting over inside every budget.
    """
    async def first_read_then_idle() -> tuple[bool, bool, bytes | None]:
        client = connect_async(address=cluster.url)
        try:
            await asyncio.wait_for(client.get("absent"), 0.0005)
            timed_out = False
        except TimeoutError:
            timed_out = True
        await asyncio.sleep(1.0)
        ready = not client._initialize  # redis-py's own "must discover the cluster" flag
        value = await asyncio.wait_for(client.get("absent"), 1.0)
        await client.aclose()
        return timed_out, ready, value

    timed_out, ready, value = asyncio.run(first_read_then_idle())
    assert timed_out and ready and value is None


def test_state_keys_scripts_scans_and_the_log_work_across_nodes(cluster: Cluster, tmp_path):
    """The kit's small Redis paths on a cluster: each must address one slot or fan out."""
    client = connect(address=cluster.url)
    # Dead letters: a Lua script over the stream and its memory key (one hash tag, one slot),
    # for streams on every node; a replayed entry is remembered and not written twice.
    streams: dict[int, str] = {}
    for i in range(200):
        streams.setdefault(cluster.port_of(f"dead:{i}"), f"dead:{i}")
    assert len(streams) == 3
    for stream in streams.values():
        assert dead_letter(client, {"amount": "x"}, "bad", stream=stream, source_id="1-0")
        assert not dead_letter(client, {"amount": "x"}, "bad", stream=stream, source_id="1-0")
        assert client.xlen(stream) == 1
    # The clean-stop record and the store's identity: single keys, read back by a new client.
    record_clean_stop(client, by="test", at_s=123.0)
    other = connect(address=cluster.address)
    assert clean_stop(other) == CleanStop(at_s=123.0, by="test")
    clear_clean_stop(other)
    assert clean_stop(client) is None
    assert store_id(client) == store_id(other)
    # A scan (the freshness check's) reaches every node: one age per hash, wherever it lives.
    ts = Timestamp(seconds=1_000).SerializeToString()
    for i in range(60):
        client.hset(f"e{i}:proj".encode(), mapping={b"_ts:v": ts})
    assert len({cluster.port_of(f"e{i}:proj") for i in range(60)}) == 3
    ages = online_ages(client, project="proj", views=["v"], now_s=1_010.0)
    assert ages["age_s:v"].tolist() == [10.0] * 60
    # A multi-key DEL over keys of different slots (the demo's reset) deletes them all.
    assert client.delete(*[f"e{i}:proj" for i in range(60)]) == 60

    async def log_three() -> int:
        aclient = connect_async(address=cluster.url)
        log = PredictionLog(client=aclient, stream="preds", maxlen=1000, flush_ms=10)
        for i in range(3):  # the service's path: append, a background task flushes
            log.append({"transaction_id": f"t{i}", "logged_at": datetime.now(UTC).isoformat()})
        for _ in range(500):
            if log.written == 3 or log._task is None or log._task.done():
                break
            await asyncio.sleep(0.01)
        await aclient.aclose()
        return log.written

    assert asyncio.run(log_three()) == 3
    assert drain(client, stream="preds", out_dir=tmp_path) == 3
    assert sorted(pd.read_parquet(tmp_path)["transaction_id"]) == ["t0", "t1", "t2"]


def test_the_service_scores_from_the_cluster_and_logs_there(cluster_env, cluster: Cluster, env):
    """Real payments score as the booster does on Feast's cluster read; the log lands there."""
    settings = _settings(cluster_env)
    client = connect(settings)
    # The load went to the cluster, over every node, and the store's identity lives there.
    assert all(cluster.node(p).dbsize() > 0 for p in cluster.ports)
    assert client.get(STORE_ID_KEY) and client.get(MATERIALIZED_KEY)

    model = saved_model(env["BENTOML_HOME"])
    store = _feast_on(cluster, settings.repo_root)
    tx = pd.read_parquet(settings.raw_dir / "transactions.parquet")
    last = tx[tx["day"] == tx["day"].max()]
    picked = pd.concat([last[last.is_fraud == 1].sample(6, random_state=3),
                        last[last.is_fraud == 0].sample(6, random_state=3)])
    txs = [{"transaction_id": f"cluster-{r.transaction_id}", "customer_id": int(r.customer_id),
            "terminal_id": int(r.terminal_id), "amount": float(r.amount),
            "timestamp": "2026-11-28T12:00:00Z"} for r in picked.itertuples()]
    txs.append({**txs[0], "transaction_id": "cluster-big", "amount": 5000.0})
    # One request reads keys served by more than one node.
    homes = {cluster.port_of(_entity_key("customer_id", t["customer_id"])) for t in txs}
    homes |= {cluster.port_of(_entity_key("terminal_id", t["terminal_id"])) for t in txs}
    assert len(homes) >= 2, homes

    seen = set()
    # A generous start-up wait: the suite shares a few CPUs with model warm-up and Feast.
    with bentoml_serve(cluster_env, timeout_s=300) as url, \
            httpx.Client(base_url=url, timeout=10) as http:
        # The first request may spend its 30 ms feature budget discovering the cluster (and
        # fall back, flagged); the discovery finishes regardless and the service reads from then.
        deadline = time.monotonic() + 10
        while http.post("/score", json={**txs[0], "transaction_id": "warm"}).json()["fallback"]:
            assert time.monotonic() < deadline, "the service never read the cluster in budget"
            time.sleep(0.2)
        for t in txs:
            body, want = score_and_check(http, store, model, t)
            assert body["defaults_used"] == [] and want.null_features == []
            seen.add(want.decision)
        deadline = time.monotonic() + 10
        while client.xlen(settings.prediction_stream) < len(txs):
            assert time.monotonic() < deadline, "the prediction log did not reach the cluster"
            time.sleep(0.1)
    assert len(seen) >= 2, seen

    run([str(BIN / "rtml"), "log", "drain"], env=cluster_env, cwd=settings.repo_root)
    logged = pd.read_parquet(settings.predictions_dir)
    rows = logged[logged["transaction_id"].isin([t["transaction_id"] for t in txs])]
    assert len(rows) == len(txs) and (~rows["fallback"]).all()  # "warm" is logged too
    assert client.xlen(settings.prediction_stream) == 0


def test_the_flow_reads_and_writes_the_cluster(cluster_env, cluster: Cluster, tmp_path):
    """Events on streams over several nodes -> windows online equal to the recomputation."""
    settings = _settings(cluster_env)
    client = connect(settings)
    parts = settings.stream_partitions
    assert len({cluster.port_of(stream_key(p)) for p in range(parts)}) >= 2
    flow = h.flow_process(cluster_env, tmp_path / "recovery", log=tmp_path / "flow.log")
    try:
        now = datetime.now(UTC)
        events = h.backlog(11, now=now, customers=list(range(760_000, 760_016)),
                           partitions=parts, hours=1.5)
        done = h.sentinels("cluster", now, parts)
        arrivals = h.xadd(client, pd.concat([events, done]), parts)
        bad = {"transaction_id": "cluster-bad", "customer_id": "x", "terminal_id": "1",
               "amount": "3", "event_time": now.isoformat()}
        bad_id = client.xadd(stream_key(1), bad).decode()
        customers = sorted(arrivals["customer_id"].unique())
        terminals = sorted(arrivals["terminal_id"].unique())
        got, _ = h.wait_online_equals(settings, arrivals, customers, terminals)
        alive = flow.poll() is None
    finally:
        os.killpg(flow.pid, signal.SIGKILL)
        flow.wait()
    assert alive, (tmp_path / "flow.log").read_text(errors="replace")[-3000:]
    assert (got["cust_tx_count_1h"] > 0).sum() >= len(customers) // 2
    homes = {cluster.port_of(_entity_key("customer_id", c)) for c in customers}
    assert len(homes) >= 2, homes

    # The kit's reader on the cluster client reads what Feast reads.
    store = load_store(settings)
    names = service_feature_names(store, "fraud_model_v2")
    reader = OnlineReader(store=store, service_name="fraud_model_v2",
                          defaults=dict.fromkeys(names, 0.0), on_demand=ON_DEMAND)
    rows = reader.read_sync(client, [{"customer_id": c, "terminal_id": 1, "amount": 1.0}
                                     for c in customers])
    for c, row in zip(customers, rows, strict=True):
        for name in h.CUSTOMER_FEATURES:
            assert row.values[name] == pytest.approx(got.loc[c, name]), (c, name)

    # The refused event is dead-lettered once, on the node of the dead-letter stream.
    letters = client.xrange(DEAD_LETTER_STREAM)
    mine = [f for _, f in letters if f.get(b"source_id") == bad_id.encode()]
    assert len(mine) == 1 and mine[0][b"transaction_id"] == b"cluster-bad"
