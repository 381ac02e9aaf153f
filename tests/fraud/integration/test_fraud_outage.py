"""Under load, for real: Redis killed and restarted, and twice the load the service admits.

The Redis is a Valkey of this module's own (`benchmarks.resilience.own_redis`: the stack's keys
copied onto a free port), so SIGKILL takes nothing from the other tests. The load is the
benchmarks' open-loop driver against a real `bentoml serve`. Behaviour is asserted — every answer
a decision, outage answers flagged, normal answers once Redis is back, 503 + Retry-After past the
admission limit — never how fast (`rtml bench chaos` / `overload` measure that).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pandas as pd
import pytest

from benchmarks.resilience import Answer, OwnRedis, drive, own_redis
from rtml.features.online import load_store
from rtml.settings import Settings
from tests.support.independent import expected_answer, saved_model
from tests.support.procs import bentoml_serve

pytestmark = pytest.mark.integration

RATE = 40  # requests/s: light enough for a shared 2-core machine, enough to span the outage
BEFORE_S, DOWN_S, AFTER_S = 3.0, 2.0, 5.0
SETTLE_S = 2.0  # after Redis is back, requests due this much later must all be scored
# Generous budgets: a normal read on a loaded machine must not fall back for slowness.
FEATURE_TIMEOUT_MS = 1000


@pytest.fixture(scope="module")
def payments(stack: Settings) -> list[dict]:
    """Payments of 50 different customers of the last day."""
    tx = pd.read_parquet(stack.raw_dir / "transactions.parquet")
    last = tx[tx["day"] == tx["day"].max()].drop_duplicates("customer_id").sample(
        50, random_state=5)
    return [{"transaction_id": f"out-{r.transaction_id}", "customer_id": int(r.customer_id),
             "terminal_id": int(r.terminal_id), "amount": float(r.amount),
             "timestamp": "2026-11-28T12:00:00Z"} for r in last.itertuples()]


@pytest.fixture(scope="module")
def own(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRedis]:
    with own_redis(stack, root=tmp_path_factory.mktemp("own_redis")) as r:
        yield r


@pytest.fixture(scope="module")
def served(own: OwnRedis, env: dict[str, str]) -> Iterator[str]:
    with bentoml_serve({**env, "RTML_REDIS_ADDRESS": own.address,
                        "RTML_FRAUD__FEATURE_TIMEOUT_MS": str(FEATURE_TIMEOUT_MS),
                        "RTML_FRAUD__PREDICTION_STREAM": "rtml:predictions:outage"}) as url:
        yield url


def _phase(answers: list[Answer], lo: float, hi: float) -> list[Answer]:
    return [a for a in answers if lo <= a.due < hi]


def test_redis_killed_under_load_every_answer_is_a_decision_and_scoring_comes_back(
        served: str, own: OwnRedis, payments, stack: Settings, env):
    drive(served, payments, rate=RATE, duration_s=1.0)  # connections, lazy state
    run = drive(served, payments, rate=RATE, duration_s=BEFORE_S + DOWN_S + AFTER_S,
                actions=[(BEFORE_S, "kill", own.kill), (BEFORE_S + DOWN_S, "restart",
                                                        own.restart)])
    killed, back = run.marks["kill"][1], run.marks["restart"][1]
    assert len(run.answers) == int(RATE * (BEFORE_S + DOWN_S + AFTER_S))
    failed = [a for a in run.answers if not a.decision]
    assert not failed, failed[:5]  # no error, no timeout: a decision every time

    # Asked while Redis was gone: every answer the flagged fallback, saying why.
    down = _phase(run.answers, killed + 0.05, run.marks["restart"][0])
    assert len(down) >= RATE * (DOWN_S - 0.5)
    assert all(a.fallback for a in down), [a for a in down if not a.fallback][:3]
    assert all(a.reason.startswith("feature_store_unavailable: ") for a in down)
    # Some outage answers tried Redis and were refused; the rest the breaker spared it.
    kinds = {a.reason.split(":")[1].strip() for a in down}
    assert "circuit open after repeated errors" in kinds, kinds

    # Once it is back: scored again, with nothing between "back" and the settled tail failing.
    settled = _phase(run.answers, back + SETTLE_S, float("inf"))
    assert settled and not any(a.fallback for a in settled), \
        [a for a in settled if a.fallback][:3]

    # And scored right: a payment now gets the booster's score on Feast's values.
    with httpx.Client(base_url=served, timeout=30) as client:
        body = client.post("/score", json={**payments[0], "transaction_id": "out-after"}).json()
    assert body["fallback"] is False, body
    want = expected_answer(load_store(stack), saved_model(env["BENTOML_HOME"]), payments[0])
    assert body["score"] == pytest.approx(want.score, abs=2e-5)


@pytest.fixture(scope="module")
def narrow(stack: Settings, env: dict[str, str]) -> Iterator[str]:
    """The service admitting one scoring request at a time: any overlap is past its capacity."""
    with bentoml_serve({**env, "RTML_FRAUD__MAX_INFLIGHT": "1",
                        "RTML_FRAUD__FEATURE_TIMEOUT_MS": str(FEATURE_TIMEOUT_MS),
                        "RTML_FRAUD__PREDICTION_STREAM": "rtml:predictions:overload"}) as url:
        yield url


def test_past_capacity_requests_are_shed_with_retry_after_and_the_admitted_are_answered(
        narrow: str, payments):
    run = drive(narrow, payments, rate=300, duration_s=3.0)
    by_status: dict[int | str, list[Answer]] = {}
    for a in run.answers:
        by_status.setdefault(a.status, []).append(a)
    assert set(by_status) <= {200, 503}, {k: len(v) for k, v in by_status.items()}
    shed, admitted = by_status.get(503, []), by_status.get(200, [])
    assert shed, "300 requests/s against one slot: some must be shed"
    assert all(a.retry_after == "1" for a in shed)
    assert admitted and all(a.decision for a in admitted)
    assert any(not a.fallback for a in admitted)  # admitted requests are scored
    with httpx.Client(base_url=narrow, timeout=30) as client:
        assert client.get("/readyz").status_code == 200  # health is never shed
        r = client.post("/score", json=payments[1])  # alone again: admitted and scored
        assert r.status_code == 200 and r.json()["fallback"] is False, r.text
