"""Serving settings through a real `bentoml serve`: L1 cache, overload shedding, ONNX backend."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter

import httpx
import pandas as pd
import pytest

from rtml.serving.asgi import parse_server_timing
from rtml.settings import Settings
from tests.support.procs import REPO_ROOT, bentoml_serve


@pytest.fixture(scope="module")
def tuned_url(stack: Settings, env: dict[str, str]):
    """Cache on, at most 2 scoring requests in flight, trees in ONNX Runtime."""
    with bentoml_serve({**env, "RTML_FRAUD__CACHE": "on", "RTML_FRAUD__MAX_INFLIGHT": "2",
                        "RTML_FRAUD__MODEL_BACKEND": "onnx"}) as url:
        yield url


@pytest.fixture(scope="module")
def known(stack: Settings) -> dict:
    tx = pd.read_parquet(stack.raw_dir / "transactions.parquet")
    r = tx.iloc[-2]
    return {"transaction_id": "cache-1", "customer_id": int(r.customer_id),
            "terminal_id": int(r.terminal_id), "amount": 77.7,
            "timestamp": "2026-11-28T12:00:00Z"}


def _descs(resp: httpx.Response) -> dict[str, str]:
    """Server-Timing entry -> its `desc` (backend name, cache hit/miss)."""
    return {name: params["desc"]
            for name, params in parse_server_timing(resp.headers["server-timing"]).items()
            if "desc" in params}


def test_a_repeated_identical_request_is_answered_from_the_cache(tuned_url, known):
    with httpx.Client(base_url=tuned_url, timeout=10) as c:
        first = c.post("/score", json=known)
        again = c.post("/score", json={**known, "transaction_id": "cache-2"})
        other = c.post("/score", json={**known, "transaction_id": "cache-3", "amount": 77.8})
        metrics = c.get("/metrics").text
    assert first.status_code == again.status_code == other.status_code == 200
    assert _descs(first) == {"model": "onnx", "cache": "miss"}
    assert _descs(again)["cache"] == "hit"
    assert _descs(other)["cache"] == "miss"  # another amount is another feature vector
    a, b = first.json(), again.json()
    assert b["transaction_id"] == "cache-2"  # the answer is for this request...
    assert (b["score"], b["decision"], b["reasons"]) == (a["score"], a["decision"], a["reasons"])
    assert 'rtml_l1_cache_lookups_total{result="hit"}' in metrics
    assert "rtml_batch_size_bucket" in metrics


async def _burst(url: str, rows: list[dict], n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as c:
        return await asyncio.gather(*(c.post("/score_batch", json={"transactions": rows})
                                      for _ in range(n)))


def test_a_burst_past_max_inflight_is_shed_early_and_the_service_stays_up(tuned_url, known):
    rows = [{**known, "transaction_id": f"burst-{i}", "amount": 10.0 + i} for i in range(200)]
    answers = asyncio.run(_burst(tuned_url, rows, 30))
    by_status = Counter(r.status_code for r in answers)
    assert set(by_status) <= {200, 503}, by_status
    assert by_status[200] >= 2 and by_status[503] >= 1, by_status
    for shed in (r for r in answers if r.status_code == 503):
        assert shed.headers["retry-after"] == "1"
        body = shed.json()
        assert body["reason"] == "max_inflight" and "RTML_FRAUD__MAX_INFLIGHT" in body["error"]
    for ok in (r for r in answers if r.status_code == 200):  # the admitted are answered in full
        assert [d["transaction_id"] for d in ok.json()] == [r["transaction_id"] for r in rows]
    with httpx.Client(base_url=tuned_url, timeout=10) as c:
        assert c.get("/readyz").status_code == 200
        assert c.post("/score", json={**known, "transaction_id": "after"}).status_code == 200


def test_the_stack_model_scores_alike_in_onnx_and_native(stack: Settings, env: dict[str, str]):
    """The trained model's ONNX export, loaded as serving loads it, against its booster."""
    script = """
import json, sys
import numpy as np
from bentos.fraud.model import FraudModel
native = FraudModel.load("fraud_model:latest", backend="xgboost")
onnx = FraudModel.load("fraud_model:latest", backend="onnx")
rng = np.random.default_rng(3)
x = rng.gamma(1.0, 30.0, (3000, len(native.features))).astype(np.float32)
diffs = [float(np.max(np.abs(onnx.predict(x[:n]) - native.predict(x[:n])))) for n in (1, 64, 3000)]
print(json.dumps({"diffs": diffs, "spread": float(native.predict(x).std()),
                  "onnx": onnx.backend_for(1), "native": native.backend_for(1)}))
"""
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (got["onnx"], got["native"]) == ("onnx", "xgboost")
    assert max(got["diffs"]) <= 1e-5 and got["spread"] > 0.0
    metrics = json.loads((stack.artifacts_dir / "fraud" / "metrics.json").read_text())
    assert metrics["onnx"]["max_abs_diff_test"] <= 1e-5
