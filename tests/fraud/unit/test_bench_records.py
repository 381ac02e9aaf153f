"""Benchmark records: metadata, the discard rule, docs/runs.md, both shed rules, records.sh.

What every results file carries, how a disturbed run is recognised, the generated list of runs,
the two saturation rules, the better stock mode, and the one-shot records script.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import cpu
from benchmarks.cost import latest, load_capacity
from benchmarks.record import Recorder, discard_reason, git_state, settings_record
from benchmarks.runs import render
from benchmarks.saturate import saturation_point, step_ok
from benchmarks.side_by_side import best_stock, expand
from rtml.settings import REPO_ROOT, Settings

TICK = cpu.TICK_S


def _snap(user: int, system: int, idle: int, ours: dict[int, int], steal: int = 0,
          softirq: int = 0) -> cpu.Snapshot:
    machine = {"user": user, "nice": 0, "system": system, "idle": idle, "iowait": 0, "irq": 0,
               "softirq": softirq, "steal": steal}
    return cpu.Snapshot(machine=machine, ours=ours)


def test_usage_splits_busy_time_into_ours_and_others():
    start = _snap(1000, 500, 8000, {1: 300, 2: 50})
    # +400 user, +100 system, +450 idle, +30 steal, +20 softirq = 1000 ticks of capacity.
    # Ours: pid 1 +120, pid 2 ended (its ticks now in pid 1's cutime: +60 more), pid 3 new 70.
    end = _snap(1400, 600, 8450, {1: 300 + 120 + 50 + 60, 3: 70}, steal=30, softirq=20)
    u = cpu.usage(start, end)
    ours = (300 + 120 + 50 + 60 + 70) - (300 + 50)
    assert u["busy_share"] == pytest.approx(500 / 1000)
    assert u["ours_share"] == pytest.approx(ours / 1000)
    assert u["others_share"] == pytest.approx((500 - ours) / 1000)
    assert u["steal_share"] == pytest.approx(0.03) and u["irq_share"] == pytest.approx(0.02)
    assert u["others_cpu_s"] == pytest.approx((500 - ours) * TICK, abs=0.01)


def test_usage_never_reports_negative_others():
    u = cpu.usage(_snap(0, 0, 0, {1: 0}), _snap(100, 0, 100, {1: 150}))
    assert u["others_share"] == 0.0 and u["ours_share"] == pytest.approx(0.5)


def test_a_reaped_child_counts_as_ours():
    """A child that burned CPU and exited inside the window is counted (via our cutime)."""
    watch = cpu.CpuWatch()
    burn = ("import time\nt = time.process_time()\n"
            "while time.process_time() - t < 0.3: pass")
    with watch.window("child"):
        subprocess.run([sys.executable, "-c", burn], check=True)
    assert watch.windows["child"]["ours_cpu_s"] >= 0.25


def test_descendants_include_a_live_child():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        found = cpu.descendants({os.getpid()})
        assert os.getpid() in found and child.pid in found
    finally:
        child.kill()
        child.wait()


def test_listening_pids_finds_the_listener():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert os.getpid() in cpu.listening_pids(port)
    assert cpu.listening_pids(port) == set()  # closed: nobody listens


def test_discard_rule_names_the_worst_window():
    assert discard_reason({}) is None
    assert discard_reason({"a": {"others_share": 0.10}, "b": {"others_share": 0.02}}) is None
    reason = discard_reason({"a": {"others_share": 0.04}, "rtml": {"others_share": 0.31}})
    assert reason is not None and "31%" in reason and "'rtml'" in reason and "10%" in reason


def test_results_file_carries_the_metadata(tmp_path):
    settings = Settings(scenario="fraud", redis_address="localhost:1")  # nothing listens on port 1
    rec = Recorder("unit", settings, model=False)
    with rec.window("measured"):
        sum(range(10_000))
    out = rec.write({"figure": 1}, out_dir=tmp_path)
    data = json.loads(out.read_text())
    head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    meta = data["meta"]
    assert data["kind"] == "unit" and data["figure"] == 1
    assert data["of_record"] is False  # not in benchmarks/results/
    assert meta["git"]["commit"] == head and isinstance(meta["git"]["dirty"], bool)
    assert meta["machine"]["cores"] == os.cpu_count()
    assert {"load_1m_before", "load_1m_after"} <= set(meta["machine"])
    assert set(meta["machine"]["cpu_windows"]) == {"measured"}
    assert meta["settings"]["serving"]["batching"] == settings.batching
    assert meta["settings"]["serving"]["model_backend"] == settings.model_backend
    # Two writes in the same second do not overwrite each other.
    assert rec.write({"figure": 2}, out_dir=tmp_path) != out


def test_a_disturbed_run_is_written_and_marked_discarded(tmp_path):
    rec = Recorder("unit", Settings(scenario="fraud", redis_address="localhost:1"), model=False)
    rec.cpu.windows["step 1"] = {"others_share": 0.05}
    rec.cpu.windows["step 2"] = {"others_share": 0.42}
    data = json.loads(rec.write({"x": 1}, out_dir=tmp_path).read_text())
    assert "42%" in data["discarded"] and "step 2" in data["discarded"]
    assert data["x"] == 1 and data["meta"]["machine"]["others_share_max"] == 0.42


def test_settings_record_masks_secrets(monkeypatch):
    monkeypatch.setenv("RTML_REDIS_ADDRESS", "redis.example:6380,password=hunter2")
    monkeypatch.setenv("RTML_MONITOR_WEBHOOK_URL", "https://user:pw@hooks.example/x")
    rec = settings_record(Settings(scenario="fraud"))
    text = json.dumps(rec)
    assert "hunter2" not in text and "pw@" not in text
    assert rec["env"]["RTML_REDIS_ADDRESS"].startswith("redis.example:6380")


def test_git_state_ignores_what_the_runs_rewrite(tmp_path):
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "score-1.json").write_text("{}")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "runs.md").write_text("x")
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    state = git_state(tmp_path)
    assert state["dirty"] is True and state["dirty_paths"] == ["code.py"]


def _step(rate: float, shed: int = 0, p99: float = 5.0) -> dict:
    r = {"target_rps": rate, "requests": 1000, "batch": 1, "latency_ms": {"p99": p99},
         "errors": {"503": shed} if shed else {}, "fallbacks": 0, "achieved_rps": rate,
         "scored_tx_per_s": rate}
    r["ok_by_rule"] = {"no_shed": step_ok(r, budget_ms=50, max_shed=0.0),
                       "shed_1pct": step_ok(r, budget_ms=50, max_shed=0.01)}
    return r


def test_saturation_under_both_shed_rules():
    steps = [_step(100), _step(150, shed=3), _step(225, shed=8), _step(337, shed=40)]
    assert saturation_point(steps, "no_shed")["target_rps"] == 100
    assert saturation_point(steps, "shed_1pct")["target_rps"] == 225
    # Stepping down from a start above capacity: the highest rate below every failure.
    down = [_step(400, p99=80), _step(266, shed=2), _step(177)]
    assert saturation_point(down, "no_shed")["target_rps"] == 177
    assert saturation_point(down, "shed_1pct")["target_rps"] == 266
    assert saturation_point([_step(100, shed=5)], "no_shed") is None


def test_cost_uses_the_chosen_rule_and_skips_discarded_runs(tmp_path):
    run = {"path": "/score", "batch": 1, "batching": True, "device": "cpu", "target": "rtml",
           "scored_tx_per_s": 450.0, "tx_per_s_per_core": 450.0,
           "rules": {"no_shed": {"saturation_rps": 300, "scored_tx_per_s": 300.0,
                                 "tx_per_s_per_core": 300.0},
                     "shed_1pct": {"saturation_rps": 450, "scored_tx_per_s": 450.0,
                                   "tx_per_s_per_core": 450.0}}}
    good = tmp_path / "saturate-20260101T000000Z.json"
    bad = tmp_path / "saturate-20260102T000000Z.json"
    good.write_text(json.dumps({"runs": [run]}))
    bad.write_text(json.dumps({"runs": [run], "discarded": "busy"}))
    assert latest(tmp_path) == good
    assert [c.per_unit for c in load_capacity(good)] == [300.0]
    assert [c.per_unit for c in load_capacity(good, rule="shed_1pct")] == [450.0]
    with pytest.raises(ValueError, match="--rule"):
        load_capacity(good, rule="most")


def _target(p99: float, errors: int = 0) -> dict:
    return {"latency_ms": {"p50": 1.0, "p99": p99}, "errors": {"TimeoutError": errors}
            if errors else {}}


def test_the_better_stock_mode_has_fewest_errors_then_lowest_p99():
    rows = {"stock-pandas": _target(20.0), "stock-python": _target(12.0), "rtml": _target(1.0)}
    assert best_stock(rows) == "stock-python"
    rows["stock-python"] = _target(12.0, errors=3)
    assert best_stock(rows) == "stock-pandas"
    assert best_stock({"rtml": _target(1.0)}) is None
    assert expand(["naive", "stock", "rtml"], ["pandas", "python"]) == [
        "naive", "stock-pandas", "stock-python", "rtml"]
    with pytest.raises(ValueError, match="--stock-modes"):
        expand(["stock"], ["arrow"])


def test_runs_page_lists_every_file_and_marks_the_bad_ones(tmp_path):
    legacy = {"kind": "score", "machine": {"cpus": 2}, "runs": [
        {"label": "200", "target_rps": 200, "latency_ms": {"p99": 4.29}}]}
    (tmp_path / "score-20260101T000000Z.json").write_text(json.dumps(legacy))
    rec = Recorder("score", Settings(scenario="fraud", redis_address="localhost:1"), model=False)
    rec.cpu.windows["/score 200 rps"] = {"others_share": 0.03}
    good = rec.write({"runs": legacy["runs"]}, out_dir=tmp_path)
    time.sleep(0)  # (same-second writes get distinct names)
    rec.cpu.windows["/score 200 rps (2)"] = {"others_share": 0.55}
    bad = rec.write({"runs": legacy["runs"]}, out_dir=tmp_path)
    text = render(tmp_path)
    for path in (good, bad, tmp_path / "score-20260101T000000Z.json"):
        assert f"[{path.name}]" in text
    lines = {ln.split("]")[0].lstrip("| ["): ln for ln in text.splitlines() if ln.startswith("| [")}
    assert "**discarded**" in lines[bad.name] and "55%" in lines[bad.name]
    assert "**discarded**" not in lines[good.name] and "3%" in lines[good.name]
    assert "no metadata" in lines["score-20260101T000000Z.json"]
    assert "200 rps 4.29" in lines[good.name]
    assert "3 runs: 1 with metadata and kept, 1 discarded, 1 without metadata" in text


@pytest.mark.parametrize(("records_set", "n_commands", "n_rtml"),
                         [("fraud", 11, 8), ("scale", 9, 8), ("recs", 6, 5)])
def test_records_script_commands_parse(tmp_path, records_set, n_commands, n_rtml):
    """Every `rtml` command the records script runs is accepted by the CLI (dry run)."""
    from typer.testing import CliRunner

    from rtml.cli import app

    out = subprocess.run(["bash", str(REPO_ROOT / "benchmarks" / "records.sh")],
                         env={**os.environ, "RECORDS_DRY_RUN": "1",
                              "RECORDS_SET": records_set},
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    commands = [shlex.split(ln.removeprefix("would run: ")) for ln in out.splitlines()
                if ln.startswith("would run: ")]
    assert len(commands) == n_commands
    runner = CliRunner()
    checked = 0
    for argv in commands:
        if argv[0] == "env":  # `env NAME=value … command`: the command is what is checked
            argv = argv[1:]
            while "=" in argv[0]:
                argv = argv[1:]
        if not argv[0].endswith("/rtml"):
            assert argv[1] == "-m" and argv[2].startswith("benchmarks."), argv
            continue
        # --help is eager: the options before it are parsed (an unknown one exits 2), nothing runs.
        result = runner.invoke(app, [*argv[1:], "--help"])
        assert result.exit_code == 0, (argv, result.output)
        checked += 1
    assert checked == n_rtml


def test_python_mode_odfv_twin_computes_what_the_declared_view_does():
    from benchmarks.stock_odfv import transaction_request_features_python

    amounts, means = [30.0, 12.5, 80.0, 5.0], [60.0, None, 0.0, float("nan")]
    got = transaction_request_features_python({"amount": amounts, "cust_mean_amount_30d": means})
    assert got["tx_amount"] == amounts
    assert got["amount_vs_cust_mean_30d"] == [0.5, 0.0, 0.0, 0.0]  # no history: 0.0


def test_results_live_where_the_runs_page_reads_them():
    from benchmarks import record, runs

    assert runs.RESULTS == record.RESULTS == Path(record.__file__).parent / "results"


def test_comparison_servers_answer_with_the_services_model_code():
    """Score, decision and reasons from `FraudModel`, reasons only for flagged rows."""
    import numpy as np
    import xgboost as xgb

    from benchmarks.model import answer, server_timing
    from bentos.fraud.model import FraudModel
    from rtml.serving.backends import NativeBackend, choose
    from rtml.serving.card import ModelCard

    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=400) > 0.8).astype(int)
    names = ["a", "b", "c"]
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3},
                        xgb.DMatrix(x, label=y, feature_names=names), num_boost_round=20)
    card = ModelCard(name="m", version="m:1", feature_service="s", features=names,
                     thresholds={"review": 0.5, "decline": 0.9})
    model = FraudModel(booster=booster, card=card,
                       router=choose([NativeBackend.on(booster, "cpu")], 3))
    for row in x[:60]:
        vec = [float(v) for v in row]
        want = float(booster.predict(xgb.DMatrix(row[None, :], feature_names=names))[0])
        got = answer(model, "t", vec)
        assert got["score"] == pytest.approx(want, abs=1e-6)
        assert got["decision"] == ("decline" if want >= 0.9 else "review" if want >= 0.5
                                   else "approve")
        if want < 0.5:
            assert got["reasons"] == []
        else:  # TreeSHAP: the largest positive contributions, as the service lists them
            contrib = booster.predict(xgb.DMatrix(row[None, :], feature_names=names),
                                      pred_contribs=True)[0][:-1]
            top = [names[i] for i in np.argsort(-contrib)[:3] if contrib[i] > 0]
            assert [r["feature"] for r in got["reasons"]] == top
        assert got["model_version"] == "m:1"
    assert server_timing({"model": 0.01234}, {"model": "onnx"}) == "model;dur=0.012;desc=onnx"
