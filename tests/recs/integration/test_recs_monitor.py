"""`rtml monitor run --model recs` on a real Valkey: impressions graded by the clicks that follow.

Impressions go through the prediction log's stream and its drain, clicks onto the shop's event
stream, both in the tests' own Valkey; the monitor (the kit's runner with the recs spec, and the
CLI) must find NDCG@10 and HitRate@10 equal to a hand computation over that small set.
"""

from __future__ import annotations

import json
import math
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from monitoring.recs.spec import LABEL_HORIZON_S, MONITOR
from pipelines.recs.events import STREAM, encode
from rtml.monitor.run import run_monitor
from rtml.redis import connect
from rtml.serving.card import ModelCard, write_card
from rtml.serving.predlog import _encode, drain
from rtml.settings import Settings
from tests.support.procs import BIN

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
U = 8_800_000  # users no other test sends events for


def _items(base: int) -> list[int]:
    return list(range(base + 1, base + 11))


# (user, minutes before NOW the answer was logged, the ten items shown)
IMPRESSIONS = [
    (U + 1, 120, _items(100)),
    (U + 2, 120, _items(200)),
    (U + 3, 120, _items(300)),
    (U + 4, 10, _items(400)),  # its horizon has not passed: pending
]
# (user, minutes before NOW, item, type)
CLICKS = [
    (U + 1, 115, 103, "click"),  # rank 3
    (U + 1, 110, 120, "cart"),  # not shown: a miss the ideal ranking counts
    (U + 2, 119, 201, "click"),  # rank 1
    (U + 2, 120 - 40, 205, "click"),  # 40 min after its answer: past the horizon
    (U + 3, 121, 301, "click"),  # before its answer: grades nothing
    (U + 4, 5, 401, "click"),  # pending impression
]


def _ndcg_hit(shown: list[int], clicked: set[int], k: int = 10) -> tuple[float, float]:
    """By the definition: DCG of the shown hits over the DCG of every click at the top."""
    dcg = sum(1 / math.log2(r + 2) for r, i in enumerate(shown[:k]) if i in clicked)
    ideal = sum(1 / math.log2(r + 2) for r in range(min(len(clicked), k)))
    return (dcg / ideal if ideal else 0.0), float(any(i in clicked for i in shown[:k]))


EXPECTED = [_ndcg_hit(_items(100), {103, 120}), _ndcg_hit(_items(200), {201}),
            _ndcg_hit(_items(300), set())]
NDCG = sum(n for n, _ in EXPECTED) / 3
HIT = sum(h for _, h in EXPECTED) / 3


@pytest.fixture(scope="module")
def logged(recs_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    s = recs_stack
    client = connect(s)
    # Whatever other tests logged is not this test's traffic.
    drain(client, stream=s.prediction_stream, out_dir=tmp_path_factory.mktemp("other-tests"))
    write_card(ModelCard(name="recs_model", feature_service="recs_ranker_v1",
                         features=["score"], metrics={"ndcg@10": 0.3}), s.artifacts_dir / "recs")
    with client.pipeline(transaction=False) as pipe:
        for user, minutes, items in IMPRESSIONS:
            at = (NOW - timedelta(minutes=minutes)).isoformat()
            pipe.xadd(s.prediction_stream, _encode({
                "request_id": uuid.uuid4().hex, "user_id": user, "k": 10, "items": items,
                "scores": [1.0] * len(items), "sources": ["covisit"] * len(items),
                "cold_start": False, "fallback": False, "model_version": "recs_model:test",
                "cache": "miss", "timings_ms": {"features": 1.5, "model": 0.5, "total": 4.0},
                "total_ms": 4.0, "event_timestamp": at, "logged_at": at}))
        for user, minutes, item, kind in CLICKS:
            pipe.xadd(STREAM, encode({"event_id": uuid.uuid4().hex, "user_id": user,
                                      "item_id": item, "session_id": 1, "type": kind,
                                      "ts": NOW - timedelta(minutes=minutes), "quantity": 1}))
        pipe.execute()
    assert drain(client, stream=s.prediction_stream, out_dir=s.predictions_dir) == len(IMPRESSIONS)
    return s


def test_horizon_is_what_the_set_assumes():
    assert LABEL_HORIZON_S == 1800


def test_ranking_metrics_equal_a_hand_computation(logged: Settings):
    summary = run_monitor(logged, MONITOR, now=NOW)
    assert summary["labels"]["labelled"] == 3
    assert summary["labels"]["pending"] == 1
    assert summary["labels"]["with_click"] == 2
    quality = summary["figures"]["quality"]
    assert quality["labelled_rows"] == 3
    assert quality["current"]["ndcg@10"] == pytest.approx(NDCG, abs=1e-9)
    assert quality["current"]["hitrate@10"] == pytest.approx(HIT, abs=1e-9)
    assert NDCG == pytest.approx((1 / math.log2(4)) / (1 + 1 / math.log2(3)) / 3 + 1 / 3)
    assert {c["name"]: c["status"] for c in summary["checks"]
            if c["section"] == "quality"}["NDCG@10"] == "skip"  # 3 < RTML_MONITOR_MIN_LABELS
    # The list-level metrics of the preset are there too.
    for name in ("personalisation", "novelty", "popularity_bias", "diversity", "map@10"):
        assert name in quality["current"], name
    assert summary["figures"]["health"]["rows"] == len(IMPRESSIONS)
    assert summary["figures"]["feature_drift"]["current_clicks"] >= len(CLICKS)
    assert (logged.reports_dir / "recs" / "latest.json").exists()


def test_cli_runs_it_and_the_dashboard_shows_recs(logged: Settings, recs_env: dict[str, str]):
    got = subprocess.run([str(BIN / "rtml"), "monitor", "run", "--model", "recs"],
                         env=recs_env, capture_output=True, text=True, timeout=300,
                         cwd=recs_env["RTML_REPO_ROOT"])
    assert got.returncode in (0, 1), got.stderr
    assert got.stdout.startswith("monitor recs: "), got.stdout
    latest = json.loads((logged.reports_dir / "recs" / "latest.json").read_text())
    assert latest["predictions"]["total"] == len(IMPRESSIONS)
    assert "<h2>recs:" in (logged.reports_dir / "index.html").read_text()
