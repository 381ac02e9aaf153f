"""The README-claim benchmarks, run small for real: Valkey, `bentoml serve`, `rtml monitor run`.

Asserts that each writes its results file with the metadata and measures what it says (rows
written both ways, the stream capped by the service's own log code, every prediction monitored),
never how fast anything was.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from rtml.settings import Settings
from tests.support.procs import BIN

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def claims(stack: Settings, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
           ) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("claims")
    cmd = [str(BIN / "python"), "-m", "benchmarks.claims", "all", "--rows", "200", "--batch",
           "100", "--repeat", "1", "--real", "40", "--entries", "500", "--predictions", "3000",
           "--results-dir", str(out)]
    # A cap of 300 entries: the 500 written must be trimmed to about it (MAXLEN ~).
    proc = subprocess.run(cmd, env={**env, "RTML_FRAUD__PREDICTION_STREAM_MAXLEN": "300"},
                          cwd=stack.repo_root, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = {p.name.split("-20")[0]: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(files) == {"claim-writer", "claim-log", "claim-monitor"}
    return files


def test_writer_claim_writes_every_row_both_ways(claims: dict[str, dict]):
    w = claims["claim-writer"]
    assert w["push_sources"] == ["customer_fresh_push", "terminal_fresh_push"]
    assert w["rows_written"] == {"direct": 400, "push": 400}  # 200 per push source
    assert w["direct_us_per_row"] > 0 and w["push_us_per_row"] > 0
    assert w["push_over_direct"] == pytest.approx(w["push_us_per_row"] / w["direct_us_per_row"],
                                                  rel=0.01)
    assert w["meta"]["git"]["commit"] and "cpu_windows" in w["meta"]["machine"]


def test_log_claim_measures_the_capped_stream(claims: dict[str, dict]):
    log = claims["claim-log"]
    assert log["written"] == 500 and log["cap"] == 300
    assert 300 <= log["stream_length"] < 500  # trimmed by whole nodes: about the cap
    assert log["bytes_per_entry"] == pytest.approx(
        log["memory_usage_bytes"] / log["stream_length"], rel=0.01)
    assert {"score", "decision", "features", "model_version"} <= set(log["entry_fields"])
    assert log["meta"]["model"]["version"].startswith("fraud_model:")


def test_monitor_claim_monitors_every_prediction(claims: dict[str, dict]):
    m = claims["claim-monitor"]
    assert m["summary_predictions"]["total"] == 3000
    assert m["exit_status"] == (0 if m["status"] == "pass" else 1)
    labels = m["labels"]
    assert labels["labelled"] + labels["pending"] + labels["unknown"] == 3000
    assert labels["unknown"] == 0  # ids of real transactions: each one known to the labels
    assert m["monitor_seconds"] > 0 and m["meta"]["command"][0] == "claims.py"
