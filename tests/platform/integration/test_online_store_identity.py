"""State kept outside Redis follows the online store it describes.

A new Redis is loaded in full by `rtml materialize` and gets a recovery store of its own.
"""

from __future__ import annotations

from rtml.cli import stream_command
from rtml.features.online import load_store
from rtml.redis import connect
from rtml.redis.embedded import start_embedded, stop_embedded
from rtml.settings import Settings
from tests.support.procs import BIN, free_port, run


def _nightly(settings: Settings, customers: list[int]) -> list[dict]:
    got = load_store(settings).get_online_features(
        features=["customer_stats:cust_tx_count_30d", "customer_stats:cust_mean_amount_30d",
                  "terminal_stats:term_fraud_rate_30d"],
        entity_rows=[{"customer_id": c, "terminal_id": c} for c in customers]).to_dict()
    return [dict(zip(got, row, strict=True)) for row in zip(*got.values(), strict=True)]


def test_materialize_into_a_new_redis_loads_everything_then_goes_incremental(stack: Settings,
                                                                            env, tmp_path):
    """`feast materialize-incremental` would load nothing: the registry says all is loaded.

    `rtml materialize` asks the store itself how far it has been loaded.
    """
    fresh = Settings(repo_root=stack.repo_root, redis_address=f"localhost:{free_port()}")
    start_embedded(fresh)
    try:
        customers = list(range(0, 400, 37))
        assert all(v is None for row in _nightly(fresh, customers)
                   for k, v in row.items() if not k.endswith("_id"))
        out = run([str(BIN / "rtml"), "materialize"],
                  env={**env, "RTML_REDIS_ADDRESS": fresh.redis_address}, cwd=stack.repo_root)
        assert "has no rtml load recorded" in out
        loaded = _nightly(fresh, customers)
        assert loaded == _nightly(stack, customers)  # the same values as the stack's own store
        assert all(row["cust_tx_count_30d"] is not None for row in loaded)
        again = run([str(BIN / "rtml"), "materialize"],
                    env={**env, "RTML_REDIS_ADDRESS": fresh.redis_address}, cwd=stack.repo_root)
        assert "incremental from" in again
    finally:
        stop_embedded(fresh)


def test_each_online_store_gets_its_own_stream_recovery(stack: Settings, tmp_path):
    other = Settings(repo_root=tmp_path, redis_address=f"localhost:{free_port()}")
    start_embedded(other)
    try:
        mine = Settings(repo_root=tmp_path, redis_address=stack.redis_address)
        def recovery(settings: Settings) -> str:
            cmd = stream_command(settings)
            return cmd[cmd.index("-r") + 1]

        a, b, a_again = recovery(mine), recovery(other), recovery(mine)
        assert a == a_again and a != b
        sid = connect(other).get("rtml:store:id")
        assert b.endswith(sid.decode())
        # Two scenarios' flows on one online store: one recovery store each (Bytewax resumes a
        # dataflow only from its own snapshots).
        cmd = stream_command(mine, model="sensors")
        assert cmd[cmd.index("-r") + 1] not in (a, b)
        assert (tmp_path / ".rtml" / "recovery").is_dir()
    finally:
        stop_embedded(other)
