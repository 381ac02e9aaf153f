"""The recs scenario's offline half as users drive it, on a real Valkey and the real CLIs.

Generate, build, `feast apply`, `feast materialize-incremental` (beside fraud's views), read
online, `rtml train recs`.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from feature_repo.fraud.specs import VIEWS as FRAUD_VIEWS
from rtml.features.online import load_store
from rtml.features.specs import parquet_schema
from rtml.settings import Settings
from tests.support.procs import BIN, run
from training.recs.features import FEATURE_NAMES


@pytest.fixture(scope="module")
def recs_repo(valkey: Settings, env: dict[str, str],
              tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, str]]:
    """Its own repo copy and data (fraud's files stay fraud's), on the tests' Valkey."""
    root = tmp_path_factory.mktemp("repo_recs")
    for name in ("feature_store.yaml", ".feastignore"):
        shutil.copy(valkey.repo_root / name, root / name)
    shutil.copytree(valkey.repo_root / "feature_repo", root / "feature_repo",
                    ignore=shutil.ignore_patterns("__pycache__"))
    settings = Settings(scenario="recs", repo_root=root, redis_address=valkey.redis_address)
    # The other scenario has no data here: its sources exist empty, as before its first build.
    settings.features_dir.mkdir(parents=True)
    for view in FRAUD_VIEWS:
        pq.write_table(parquet_schema(view).empty_table(), settings.features_dir
                       / str(view.offline_file))
    renv = {**env, "RTML_REPO_ROOT": str(root)}
    run([str(BIN / "rtml"), "data", "generate", "--scenario", "recs", "--days", "10",
         "--users", "500", "--items", "400", "--sessions-per-day", "100", "--seed", "4"],
        env=renv, cwd=root)
    run([str(BIN / "rtml"), "features", "build", "--scenario", "recs"], env=renv, cwd=root)
    run([str(BIN / "feast"), "apply"], env=renv, cwd=root)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    run([str(BIN / "feast"), "materialize-incremental", now], env=renv, cwd=root)
    return settings, renv


def test_online_store_serves_the_latest_nightly_rows_list_features_included(recs_repo):
    settings, _ = recs_repo
    store = load_store(settings)
    for view, key, names in (
            ("user_profile", "user_id", ["user_events_7d", "user_top_categories",
                                         "user_recent_items"]),
            ("item_covisit", "item_id", ["covisit_items", "covisit_weights"]),
            ("item_stats", "item_id", ["item_clicks_7d", "item_order_rate_7d"])):
        rows = pd.read_parquet(settings.features_dir / f"{view}.parquet")
        latest = rows.sort_values("event_timestamp").groupby(key).tail(1).head(20)
        online = store.get_online_features(
            features=[f"{view}:{n}" for n in names],
            entity_rows=[{key: int(i)} for i in latest[key]]).to_dict()
        for n in names:
            for want, got in zip(latest[n], online[n], strict=True):
                if n.endswith(("weights", "rate_7d")):
                    np.testing.assert_allclose(got, want, err_msg=f"{view}.{n}")
                else:
                    assert np.array_equal(got, want), (view, n)


def test_rtml_train_recs_writes_the_metrics_file_and_a_model_with_its_card(recs_repo):
    settings, renv = recs_repo
    out = run([str(BIN / "rtml"), "train", "recs", "--seeds", "0,1"], env=renv,
              cwd=settings.repo_root, timeout=600)
    assert "ranker_mmr" in out
    metrics = json.loads((settings.artifacts_dir / "recs" / "metrics.json").read_text())
    for method in ("popularity", "revisit", "covisitation", "ranker", "ranker_mmr"):
        for name in ("ndcg@10", "hitrate@10", "recall@20"):
            assert 0.0 <= metrics[method][name] <= 1.0
            assert len(metrics[method]["per_seed"][name]) == 2
    assert metrics["in_stock_share"] == 1.0
    assert metrics["ranker"]["ndcg@10"] > metrics["popularity"]["ndcg@10"]
    card = json.loads((settings.artifacts_dir / "recs" / "card.json").read_text())
    assert card["features"] == FEATURE_NAMES and card["feature_service"] == "recs_ranker_v1"
    assert 0.0 <= card["thresholds"]["mmr_lambda"] <= 1.0
    models = Path(renv["BENTOML_HOME"]) / "models" / "recs_model"
    assert any(models.iterdir())
