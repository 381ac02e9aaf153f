"""Each edge alert reaches the central `rtml:alerts` exactly once, whatever happens on the way.

Central down, then up, then a `kill -9` of the forwarder while a publish is in flight, then a
forward that finishes.

The central Redis is the tests' Valkey behind a TCP proxy that can refuse connections (down) or
hold Redis's replies back (a slow link): holding replies is what lets the test kill the
forwarder after the central side has written an alert but before the outbox heard so, the one
window where a naive forwarder sends an alert twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pipelines.sensors.outbox import Outbox
from pipelines.sensors.streams import ALERT_STREAM
from rtml.redis import connect
from rtml.settings import REPO_ROOT, Settings
from tests.sensors.sample import detector, readings
from tests.support.procs import BIN
from tests.support.redis_proxy import RedisProxy


@pytest.fixture
def proxy(valkey: Settings):
    p = RedisProxy((valkey.redis_host, valkey.redis_port))
    yield p
    p.close()


def _central_ids(client, ours: set[str]) -> list[str]:
    """Alert ids of ours in the central stream, one entry per occurrence."""
    return [fields["alert_id"] for _, fields in client.xrange(ALERT_STREAM)
            if fields.get("alert_id") in ours]


def _rtml(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "rtml"), *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_alerts_reach_central_exactly_once_across_outage_and_kill_9(
        valkey: Settings, env: dict[str, str], proxy: RedisProxy, tmp_path: Path) -> None:
    rows, spiked = readings(machines=["e1", "e2", "e3"], channels=["temperature", "current"],
                            seconds=200, spikes=3, gap_s=50, seed=11)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = detector().save(tmp_path / "model.zip")
    outbox, alerts = tmp_path / "outbox.sqlite", tmp_path / "alerts.jsonl"
    central = f"redis://127.0.0.1:{proxy.port}"
    client = connect(valkey, decode_responses=True)

    # 1. The network is gone: the edge keeps scoring, every alert waits in the outbox.
    proxy.cut()
    done = _rtml("edge", "run", "--model", str(model), "--input", str(source), "--alerts",
                 str(alerts), "--outbox", str(outbox), "--central", central, "--json", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    ours = {json.loads(line)["alert_id"] for line in alerts.read_text().splitlines()}
    assert len(ours) == summary["alerts"] == summary["pending"] >= 12
    assert summary["forwarded"] == 0
    assert "central Redis unreachable" in done.stderr
    assert _central_ids(client, ours) == []

    # 2. Back, over a slow link: kill -9 the forwarder while a publish is in flight.
    proxy.heal()
    proxy.delay_s = 0.3
    fwd = subprocess.Popen([str(BIN / "rtml"), "edge", "forward", "--outbox", str(outbox),
                            "--central", central], cwd=REPO_ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    deadline = time.monotonic() + 60
    while len(_central_ids(client, ours)) < 3:
        assert fwd.poll() is None, "the forwarder finished before it could be killed"
        assert time.monotonic() < deadline, "nothing reached the central stream"
        time.sleep(0.01)
    os.killpg(fwd.pid, signal.SIGKILL)
    fwd.wait()
    published = set(_central_ids(client, ours))
    box = Outbox(outbox)
    pending = {a.alert_id for a in box.pending(1000)}
    box.close()
    assert pending, "everything was forwarded: the kill came too late to test anything"
    # The crash window was hit: the central side has an alert the outbox still calls pending.
    assert published & pending

    # 3. The next forward finishes the job; nothing is sent twice, nothing is lost.
    proxy.delay_s = 0.0
    done = _rtml("edge", "forward", "--outbox", str(outbox), "--central", central, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["pending"] == 0
    central_ids = _central_ids(client, ours)
    assert sorted(central_ids) == sorted(ours)  # each alert exactly once
    # And what arrived is the alert itself: machine, channel and reading as the edge wrote them.
    sent = {json.loads(line)["alert_id"]: json.loads(line)
            for line in alerts.read_text().splitlines()}
    for _, fields in client.xrange(ALERT_STREAM):
        if fields.get("alert_id") in ours:
            want = sent[fields["alert_id"]]
            assert (fields["machine_id"], fields["channel"], fields["reading_id"]) == (
                want["machine_id"], want["channel"], want["reading_id"])
    assert {(a["machine_id"], a["channel"], a["ts"]) for a in sent.values()} == spiked


def test_a_running_edge_forwards_as_soon_as_central_answers(
        valkey: Settings, env: dict[str, str], proxy: RedisProxy, tmp_path: Path) -> None:
    """`--follow`: alerts raised while central is down go out once it is back, run still going."""
    rows, spiked = readings(machines=["f1"], channels=["pressure"], seconds=200, spikes=3,
                            gap_s=50, seed=12)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = detector().save(tmp_path / "model.zip")
    alerts = tmp_path / "alerts.jsonl"
    client = connect(valkey, decode_responses=True)
    proxy.cut()
    edge = subprocess.Popen(
        [str(BIN / "rtml"), "edge", "run", "--model", str(model), "--input", str(source),
         "--follow", "--alerts", str(alerts), "--outbox", str(tmp_path / "o.sqlite"),
         "--central", f"redis://127.0.0.1:{proxy.port}", "--json"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not alerts.exists() or len(alerts.read_text().splitlines()) < len(spiked):
            assert edge.poll() is None, edge.stderr.read() if edge.stderr else ""
            assert time.monotonic() < deadline, "the edge raised too few alerts"
            time.sleep(0.1)
        ours = {json.loads(line)["alert_id"] for line in alerts.read_text().splitlines()}
        time.sleep(1.0)
        assert _central_ids(client, ours) == []
        proxy.heal()  # the forwarder's back-off is at most a few seconds here
        deadline = time.monotonic() + 60
        while sorted(_central_ids(client, ours)) != sorted(ours):
            assert time.monotonic() < deadline, "alerts were not forwarded once central was up"
            time.sleep(0.2)
    finally:
        os.killpg(edge.pid, signal.SIGTERM)
        out, err = edge.communicate(timeout=30)
    summary = json.loads(out.strip().splitlines()[-1])
    assert (summary["alerts"], summary["forwarded"], summary["pending"]) == (
        len(spiked), len(spiked), 0)
