"""Test tiers and the session fixtures that build the real stack.

`unit` folders need no servers; everything under an `integration` folder is marked `integration`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from rtml.redis.embedded import start_embedded, stop_embedded
from rtml.settings import REPO_ROOT, Settings
from tests.support.bentos import Built, build_all
from tests.support.procs import BIN, bentoml_serve, free_port, run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything under an `integration` folder: `-m "not integration"` is the unit tier."""
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the Feast repo (yaml, definitions, .feastignore) with its own data folder."""
    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(REPO_ROOT / "feature_repo", root / "feature_repo",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / ".feastignore", root / ".feastignore")
    return root


@pytest.fixture(scope="session")
def valkey(sandbox: Path) -> Iterator[Settings]:
    """Settings for a Valkey owned by the tests, on a free port, with the sandbox as repo."""
    settings = Settings(scenario="fraud",
                        repo_root=sandbox, redis_address=f"localhost:{free_port()}")
    text = (REPO_ROOT / "feature_store.yaml").read_text()
    (sandbox / "feature_store.yaml").write_text(
        text.replace('"localhost:6379"', f'"{settings.redis_address}"'))
    start_embedded(settings)
    yield settings
    stop_embedded(settings)


@pytest.fixture(scope="session")
def env(valkey: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for every CLI the tests run: sandbox repo, test Valkey, private model store."""
    return {
        **os.environ,
        "RTML_REPO_ROOT": str(valkey.repo_root),
        "RTML_REDIS_ADDRESS": valkey.redis_address,
        "RTML_REDIS_EMBEDDED": "never",
        "BENTOML_HOME": str(tmp_path_factory.mktemp("bentoml")),
        "FEAST_USAGE": "False",
        "PYTHONWARNINGS": "ignore",
    }


@pytest.fixture(scope="session")
def stack(valkey: Settings, env: dict[str, str]) -> Settings:
    """Data, features, `feast apply`, `feast materialize-incremental`, a trained model."""
    root = valkey.repo_root
    run([str(BIN / "rtml"), "data", "generate", "--days", "70", "--customers", "400",
         "--terminals", "800", "--seed", "7"], env=env, cwd=root)
    run([str(BIN / "rtml"), "features", "build"], env=env, cwd=root)
    run([str(BIN / "feast"), "apply"], env=env, cwd=root)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    run([str(BIN / "feast"), "materialize-incremental", now], env=env, cwd=root)
    # Three seeds: test_model_quality checks every one against the amount rule.
    run([str(BIN / "rtml"), "train", "fraud", "--seeds", "0,1,2"], env=env, cwd=root)
    return valkey


V2_SERVICE = "fraud_model_v2"


@pytest.fixture(scope="session")
def env_v2(stack: Settings, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
           ) -> dict[str, str]:
    """Environment for `fraud_model_v2`: its own model store, artifacts and prediction stream.

    The service serves the newest model of its BentoML store, and training writes
    `artifacts/fraud/{metrics.json,reference.parquet}` under the repo root: both apart, so the v1
    tests (serving, monitoring against the v1 reference) see only v1. The Valkey and `data/`
    (raw events, features, the streamed views' backfill, the Feast registry) are `env`'s.
    """
    root = tmp_path_factory.mktemp("repo_v2")
    for name in ("feature_store.yaml", ".feastignore"):
        shutil.copy(stack.repo_root / name, root / name)
    shutil.copytree(stack.repo_root / "feature_repo", root / "feature_repo",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "data").symlink_to(stack.data_dir, target_is_directory=True)
    return {**env, "RTML_REPO_ROOT": str(root),
            "BENTOML_HOME": str(tmp_path_factory.mktemp("bentoml_v2")),
            "RTML_FRAUD__PREDICTION_STREAM": "rtml:predictions:fraud_v2"}


@pytest.fixture(scope="session")
def stack_v2(stack: Settings, env_v2: dict[str, str]) -> Settings:
    """`stack` plus `fraud_model_v2`, trained in `env_v2`'s model store.

    On the nightly views and the streamed views' backfill (which `rtml features build` wrote).
    """
    settings = Settings(scenario="fraud", repo_root=Path(env_v2["RTML_REPO_ROOT"]),
                        redis_address=stack.redis_address,
                        prediction_stream=env_v2["RTML_FRAUD__PREDICTION_STREAM"])
    for view in ("customer_fresh", "terminal_fresh"):  # the backfill, not an empty placeholder
        path = settings.features_dir / f"{view}.parquet"
        assert path.exists() and len(pd.read_parquet(path)) > 0, f"no backfill in {path}"
    run([str(BIN / "rtml"), "train", "fraud", "--service", V2_SERVICE], env=env_v2,
        cwd=settings.repo_root)
    metrics = json.loads((settings.artifacts_dir / "fraud" / "metrics.json").read_text())
    assert metrics["feature_service"] == V2_SERVICE, metrics["feature_service"]
    return settings


@pytest.fixture(scope="session")
def fraud_url(stack: Settings, env: dict[str, str]) -> Iterator[str]:
    """A running fraud service over the trained model and materialized features."""
    with bentoml_serve(env) as url:
        yield url


@pytest.fixture(scope="session")
def fraud_v2_url(stack_v2: Settings, env_v2: dict[str, str]) -> Iterator[str]:
    """A running fraud service over `fraud_model_v2` (nightly + streamed features)."""
    with bentoml_serve(env_v2) as url:
        yield url


@pytest.fixture(scope="session")
def built_bentos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    """`bentoml build` of every `bentos/<s>/bentofile.yaml`, once, into a private BentoML home."""
    return build_all(tmp_path_factory.mktemp("bentoml_build_home"))
