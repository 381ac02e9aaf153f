"""The real stack for integration tests, built once per session in a sandbox copy of the repo.

A Valkey of the tests' own on a free port (started by rtml's embedded-server code, so the fault
test may stop it without touching the shared Redis on :6379), the real `feast` CLI for apply and
materialize, `rtml` for data, features and training, and a real `bentoml serve`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest

from rtml.demo import stop_group
from rtml.redis_server import start_embedded, stop_embedded
from rtml.settings import REPO_ROOT, Settings

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 300) -> str:
    """Run a CLI command; fail the test with its output when it fails."""
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n"
                    f"{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr


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
    settings = Settings(repo_root=sandbox, redis_address=f"localhost:{free_port()}")
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
            "RTML_PREDICTION_STREAM": "rtml:predictions:fraud_v2"}


@pytest.fixture(scope="session")
def stack_v2(stack: Settings, env_v2: dict[str, str]) -> Settings:
    """`stack` plus `fraud_model_v2`, trained in `env_v2`'s model store.

    On the nightly views and the streamed views' backfill (which `rtml features build` wrote).
    """
    settings = Settings(repo_root=Path(env_v2["RTML_REPO_ROOT"]),
                        redis_address=stack.redis_address,
                        prediction_stream=env_v2["RTML_PREDICTION_STREAM"])
    for view in ("customer_fresh", "terminal_fresh"):  # the backfill, not an empty placeholder
        path = settings.features_dir / f"{view}.parquet"
        assert path.exists() and len(pd.read_parquet(path)) > 0, f"no backfill in {path}"
    run([str(BIN / "rtml"), "train", "fraud", "--service", V2_SERVICE], env=env_v2,
        cwd=settings.repo_root)
    metrics = json.loads((settings.artifacts_dir / "fraud" / "metrics.json").read_text())
    assert metrics["feature_service"] == V2_SERVICE, metrics["feature_service"]
    return settings


@contextlib.contextmanager
def bentoml_serve(env: dict[str, str], *, want_ready: bool = True,
                  timeout_s: float = 120) -> Iterator[str]:
    """`bentoml serve` the fraud service on a free port; yields its URL once it answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(env["RTML_REPO_ROOT"]) / f"serve-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "bentoml"), "serve", "bentos.fraud.service:FraudService", "--port",
             str(port), "--host", "127.0.0.1"],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            assert proc.poll() is None, f"bentoml serve died:\n{log.read_text()[-3000:]}"
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"{url}/readyz", timeout=1)
                if r.status_code == 200 or (not want_ready and r.status_code == 503):
                    break
            assert time.monotonic() < deadline, f"no /readyz in {timeout_s}s:\n{log.read_text()}"
            time.sleep(0.3)
        yield url
    finally:
        stop_group(proc)


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
