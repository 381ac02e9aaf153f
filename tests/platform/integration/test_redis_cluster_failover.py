"""A Redis Cluster master killed under load: its replica takes over and scoring carries on.

Three masters and three replicas on loopback (`tests.support.cluster`, node timeout 1 s), the
stack's features materialized into them by `rtml materialize`, the fraud service reading them
under open-loop load (the benchmarks' driver). One master is SIGKILLed mid-run. Asserted: no
request fails (every answer a decision), the answers that could not read are flagged fallbacks
saying why, the replica is promoted, and the service's cluster client finds it (the requests of
the last seconds are all scored). The recovery time is measured and printed, not asserted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pandas as pd
import pytest

from benchmarks.chaos import recovery
from benchmarks.resilience import drive
from rtml.redis import connect
from rtml.settings import Settings
from tests.support.cluster import Cluster, redis_cluster
from tests.support.procs import BIN, bentoml_serve, run
from tests.support.sandbox import repo_copy

pytestmark = pytest.mark.integration

NODE_TIMEOUT_MS = 1000  # a replica starts its election this long after its master is gone
RATE = 40
BEFORE_S, AFTER_S = 3.0, 12.0
TAIL_S = 3.0  # the requests due in the run's last seconds must all be scored


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with redis_cluster(tmp_path_factory.mktemp("cluster_fo"), replicas=1,
                       node_timeout_ms=NODE_TIMEOUT_MS) as c:
        yield c


@pytest.fixture(scope="module")
def served(stack: Settings, env: dict[str, str], cluster: Cluster,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("repo_cluster_fo")
    repo_copy(stack, root)
    cenv = {**env, "RTML_REPO_ROOT": str(root), "RTML_REDIS_ADDRESS": cluster.url,
            "RTML_FRAUD__FEATURE_TIMEOUT_MS": "1000"}
    run([str(BIN / "rtml"), "materialize"], env=cenv, cwd=root)
    with bentoml_serve(cenv, timeout_s=300) as url:
        yield url


@pytest.fixture(scope="module")
def payments(stack: Settings) -> list[dict]:
    tx = pd.read_parquet(stack.raw_dir / "transactions.parquet")
    last = tx[tx["day"] == tx["day"].max()].drop_duplicates("customer_id").sample(
        50, random_state=6)
    return [{"transaction_id": f"fo-{r.transaction_id}", "customer_id": int(r.customer_id),
             "terminal_id": int(r.terminal_id), "amount": float(r.amount),
             "timestamp": "2026-11-28T12:00:00Z"} for r in last.itertuples()]


def _role(cluster: Cluster, port: int) -> str:
    client = cluster.node(port)
    try:
        return client.info("replication")["role"]
    finally:
        client.close()


def test_a_master_killed_under_load_fails_no_request_and_its_replica_serves_the_reads(
        served: str, cluster: Cluster, payments):
    # The first reads may spend their budget discovering the cluster: warm up until scored.
    deadline = time.monotonic() + 30
    while True:
        warm = drive(served, payments, rate=RATE, duration_s=1.0)
        if all(a.decision and not a.fallback for a in warm.answers[-10:]):
            break
        assert time.monotonic() < deadline, "the service never read the cluster"
    victim = cluster.ports[0]
    replica = next(r for r, m in cluster.replicas.items() if m == victim)
    assert _role(cluster, replica) == "slave"

    result = drive(served, payments, rate=RATE, duration_s=BEFORE_S + AFTER_S,
                   actions=[(BEFORE_S, "kill", cluster.procs[victim].kill)])
    killed = result.marks["kill"][0]
    failed = [a for a in result.answers if not a.decision]
    assert not failed, failed[:5]
    fallbacks = [a for a in result.answers if a.fallback]
    assert fallbacks, "killing a master must cost some reads"
    assert all(a.due >= killed - 0.5 for a in fallbacks), fallbacks[:3]
    assert all(a.reason.startswith(("feature_store_unavailable: ", "feature_timeout: "))
               for a in fallbacks), {a.reason for a in fallbacks}

    assert _role(cluster, replica) == "master"  # the replica took the dead master's slots
    end = max(a.due for a in result.answers)
    tail = [a for a in result.answers if a.due >= end - TAIL_S]
    assert tail and all(not a.fallback for a in tail), [a.reason for a in tail if a.fallback]

    took = recovery(result.answers, killed_at=killed, back_at=killed)
    print(f"\ncluster failover under {RATE} rps (node timeout {NODE_TIMEOUT_MS} ms): "
          f"{len(fallbacks)} fallbacks of {len(result.answers)}; from the kill to every "
          f"request scored again: {took['steady_normal_s']:.2f} s")
    client = connect(address=cluster.url)
    try:
        assert client.ping()
    finally:
        client.close()
