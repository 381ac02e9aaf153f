"""The recommendation stack for integration tests, built once per session in the tests' sandbox.

A small simulated shop (seeded), its nightly features and stock backfill, the real `feast apply`
and `feast materialize-incremental`, the real `rtml recs precompute` (L2 entries, popular
lists), and the real stream flow (`python -m bytewax.run`) consuming `rtml:recs:events` from the
tests' own Valkey. Services are started by the test modules (at most two `bentoml serve`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from feature_repo.recs.specs import NIGHTLY
from feature_repo.recs.stream_specs import STREAMED
from pipelines.recs.batch_features import build as build_nightly
from pipelines.recs.events import STREAM, encode
from pipelines.recs.simulate import simulate
from pipelines.recs.stream_backfill import write_stock
from rtml.cli.scenarios import REGISTRY
from rtml.features.online import load_store
from rtml.redis import connect
from rtml.redis.embedded import start_embedded, stop_embedded
from rtml.runtime import stop_group
from rtml.settings import REPO_ROOT, Settings
from tests.support.procs import BIN, free_port, run

USERS, ITEMS, DAYS = 3000, 1500, 4
PRECOMPUTED = 300  # the most active users get an L2 entry


@pytest.fixture(scope="session")
def recs_sandbox(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[Settings, dict[str, str]]]:
    """A repo copy and a Valkey of its own: other tests' loads never mix into these stores."""
    root = tmp_path_factory.mktemp("repo_recs_serving")
    shutil.copytree(REPO_ROOT / "feature_repo", root / "feature_repo",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / ".feastignore", root / ".feastignore")
    s = Settings(scenario="recs", repo_root=root, redis_address=f"localhost:{free_port()}")
    text = (REPO_ROOT / "feature_store.yaml").read_text()
    (root / "feature_store.yaml").write_text(text.replace('"localhost:6379"',
                                                          f'"{s.redis_address}"'))
    start_embedded(s)
    try:
        yield s, {**env, "RTML_REPO_ROOT": str(root), "RTML_REDIS_ADDRESS": s.redis_address}
    finally:
        stop_embedded(s)


@pytest.fixture(scope="session")
def recs_env(recs_sandbox: tuple[Settings, dict[str, str]]) -> dict[str, str]:
    """Environment for every CLI and server of these tests."""
    return recs_sandbox[1]


@pytest.fixture(scope="session")
def recs_stack(recs_sandbox: tuple[Settings, dict[str, str]]) -> Settings:
    """Shop data, nightly features, stock as of the last event, Feast applied and loaded, L2."""
    s, env = recs_sandbox
    simulate(s, seed=11, n_users=USERS, n_items=ITEMS, days=DAYS, sessions_per_day=1500)
    folder = s.data_dir / "recs"
    build_nightly(folder, s.features_dir, last_days=2)
    REGISTRY.ensure_offline_sources(s.features_dir)  # every scenario's views materialize
    events = pd.read_parquet(folder / "events.parquet")
    write_stock(pd.read_parquet(folder / "items.parquet"), events,
                pd.Timestamp(events["ts"].max()).to_pydatetime(), s.features_dir)
    root = s.repo_root
    run([str(BIN / "feast"), "apply"], env=env, cwd=root)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    views = [v.name for v in (*NIGHTLY, *STREAMED)]
    run([str(BIN / "feast"), "materialize-incremental", now, *sum((["-v", v] for v in views),
                                                                   [])], env=env, cwd=root)
    run([str(BIN / "rtml"), "recs", "precompute", "--top", str(PRECOMPUTED)], env=env, cwd=root)
    return s


def online(settings: Settings, refs: list[str], key: str, ids: list[int]) -> pd.DataFrame:
    """Feast's own online read (not the service's reader), one row per id."""
    got = load_store(settings).get_online_features(
        features=refs, entity_rows=[{key: i} for i in ids]).to_df()
    return got.set_index(key)


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 90) -> None:
    """Poll `check` until true; fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.2)


class Shop:
    """Sends events onto the stream the flow reads (what a shop front end would send)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = connect(settings)

    def send(self, *events: dict) -> None:
        """XADD events now (ids and times filled in when absent)."""
        with self.client.pipeline(transaction=False) as pipe:
            for e in events:
                full = {"event_id": uuid.uuid4().hex, "session_id": 1, "quantity": 1,
                        "ts": datetime.now(UTC), **e}
                pipe.xadd(STREAM, encode(full))
            pipe.execute()

    def session_items(self, user: int) -> list[int]:
        """The user's session as Feast serves it."""
        got = online(self.settings, ["user_session:session_items"], "user_id", [user])
        value = got.loc[user, "session_items"]
        return [] if value is None else [int(i) for i in value]

    def stock(self, items: list[int]) -> dict[int, float]:
        """Units in stock as Feast serves them."""
        got = online(self.settings, ["item_stock:stock_level"], "item_id", items)
        return {int(i): float(v) for i, v in got["stock_level"].fillna(0).items()}


@pytest.fixture(scope="session")
def recs_flow(recs_stack: Settings, recs_env: dict[str, str],
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """The real flow over the stream; yields once it has pushed a sentinel session."""
    recovery = tmp_path_factory.mktemp("recs_recovery")
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), "1"], check=True)
    log = Path(recs_stack.repo_root) / "recs-flow.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "pipelines.recs.flow:get_flow()",
             "-r", str(recovery), "-s", "1", "-b", "0"],
            cwd=REPO_ROOT, env=recs_env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    shop = Shop(recs_stack)
    try:
        sentinel = 9_999_000
        shop.send({"user_id": sentinel, "item_id": 1, "type": "click"})

        def ready() -> bool:
            assert proc.poll() is None, f"flow died:\n{log.read_text()[-3000:]}"
            return shop.session_items(sentinel) == [1]

        wait_until(ready, "the flow's first session row", timeout_s=120)
        yield shop
    finally:
        stop_group(proc)
