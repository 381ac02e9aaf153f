"""The real sensors flow (`python -m bytewax.run`) on real Valkey and Feast.

Bad readings go to the dead-letter stream while the flow keeps scoring, every injected spike is
one alert in `rtml:alerts`, a machine never seen before warms up and is learned, and
`machine_stats` online holds the 10 s window statistics of each channel's newest reading,
recomputed here by brute force.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from pipelines.sensors.streams import (
    ALERT_STREAM,
    DEAD_LETTER_STREAM,
    encode,
    partition_of,
    stream_key,
)
from rtml.features.online import load_store
from rtml.redis import connect
from rtml.runtime import stop_group
from rtml.settings import REPO_ROOT, Settings
from tests.sensors.sample import readings
from tests.support.webhook_server import WebhookServer

PARTITIONS = 4
OLD, NEW = ["s1", "s2"], "s-new"
CHANNELS = ["temperature", "current"]
BAD = [  # (fields, the field its dead-letter reason must name)
    ({"machine_id": "s1", "channel": "temperature", "ts": "1700000000.0", "value": "NaN"},
     "value: not finite"),
    ({"machine_id": "s1", "channel": "temperature", "ts": "1700000000.0", "value": "hot"},
     "value: not a number"),
    ({"channel": "current", "ts": "1700000000.0", "value": "1.5"}, "machine_id: missing"),
    ({"machine_id": "s2", "channel": "current", "value": "1.5"}, "timestamp: missing"),
    ({"machine_id": "s2", "channel": "current", "ts": "yesterday", "value": "1.5"}, "ts: not"),
]


def _xadd(client, rows: list[dict]) -> None:
    pipe = client.pipeline(transaction=False)
    for r in rows:
        if "bad" in r:
            fields, machine = r["bad"], r["bad"].get("machine_id", "s1")
        else:
            fields, machine = encode(machine_id=r["machine_id"], channel=r["channel"],
                                     ts=r["timestamp"], value=r["value"],
                                     reading_id=r["reading_id"]), r["machine_id"]
        pipe.xadd(stream_key(partition_of(machine, PARTITIONS)), fields)
    pipe.execute()


def _window_10s(rows: list[dict], machine: str, channel: str) -> dict[str, float]:
    """Brute force: mean/min/max of the channel's readings in (t - 10 s, t] of its newest t."""
    mine = [r for r in rows if r["machine_id"] == machine and r["channel"] == channel]
    newest = max(r["timestamp"] for r in mine)
    values = [r["value"] for r in mine if newest - 10 < r["timestamp"] <= newest]
    return {"mean_10s": sum(values) / len(values), "min_10s": min(values),
            "max_10s": max(values)}


def test_flow_scores_alerts_dead_letters_and_pushes_features(
        sensors: Settings, env: dict[str, str], tmp_path: Path) -> None:
    t0 = time.time() - 400  # recent: the online rows are within the view's 1 h TTL
    old, old_spikes = readings(machines=OLD, channels=CHANNELS, seconds=200, spikes=3, gap_s=50,
                               t0=t0, seed=21)
    new, new_spikes = readings(machines=[NEW], channels=CHANNELS, seconds=150, spikes=1,
                               warm_s=100, t0=t0 + 150, seed=22)
    # The bad readings arrive after the warm-up, before any spike; the new machine after them.
    first_spike = min(ts for _, _, ts in old_spikes)
    before = [r for r in old if r["timestamp"] < first_spike - 5]
    after = sorted([r for r in old if r["timestamp"] >= first_spike - 5] + new,
                   key=lambda r: r["timestamp"])
    sent = before + [{"bad": fields} for fields, _ in BAD] + after
    good = before + after
    client = connect(sensors, decode_responses=True)
    _xadd(client, sent)

    recovery = tmp_path / "recovery"
    recovery.mkdir()
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), "1"], check=True)
    log = tmp_path / "flow.log"
    hook = WebhookServer()  # alerts are also POSTed to a webhook when one is set
    with open(log, "wb") as out:
        flow = subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "pipelines.sensors.flow:get_flow()",
             "-r", str(recovery), "-s", "1", "-b", "0"],
            cwd=REPO_ROOT, env={**env, "RTML_SENSORS__STREAM_PARTITIONS": str(PARTITIONS),
                 "RTML_SENSORS__ALERT_WEBHOOK_URL": hook.url},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    machines = {*OLD, NEW}
    want_alerts = old_spikes | new_spikes
    try:
        deadline = time.monotonic() + 120
        while True:
            got = [f for _, f in client.xrange(ALERT_STREAM) if f["machine_id"] in machines]
            if len(got) >= len(want_alerts):
                break
            assert flow.poll() is None, f"the flow died:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, (
                f"{len(got)} of {len(want_alerts)} alerts after 120 s\n{log.read_text()[-2000:]}")
            time.sleep(0.3)
        # Every injected spike is exactly one alert; nothing else alerted (the new machine's
        # warm-up included), and each alert names its reading.
        assert {(f["machine_id"], f["channel"], float(f["ts"])) for f in got} == want_alerts
        assert len(got) == len(want_alerts)
        assert all(f["reading_id"].startswith(f["machine_id"]) for f in got)

        # The webhook got each of them once, as JSON, with the stream's alert ids.
        hook.wait_for(len(want_alerts))
        posted = [b for b in hook.bodies if b["machine_id"] in machines]
        assert sorted(b["alert_id"] for b in posted) == sorted(f["alert_id"] for f in got)
        assert {(b["machine_id"], b["channel"], b["ts"]) for b in posted} == want_alerts

        # The bad readings were dead-lettered with a reason naming the field, and the flow went
        # on (the alerts above all come from readings sent after them).
        dead = [f for _, f in client.xrange(DEAD_LETTER_STREAM)]
        for fields, reason in BAD:
            match = [d for d in dead if {k: v for k, v in d.items()
                                         if k not in ("reason", "failed_at", "source_id")
                                         } == fields]
            assert len(match) == 1, (fields, dead)
            assert match[0]["reason"].startswith(reason), match[0]["reason"]
        assert all(ts > first_spike - 5 for _, _, ts in want_alerts)

        # machine_stats online: each channel's newest 10 s window (the throttled last row is
        # flushed by the flow's timer), for the new machine too.
        store = load_store(sensors)
        names = ["mean_10s", "min_10s", "max_10s"]
        deadline = time.monotonic() + 60
        while True:
            rows = [{"machine_channel": f"{m}:{c}"} for m in sorted(machines) for c in CHANNELS]
            online = store.get_online_features(
                features=[f"machine_stats:{n}" for n in names], entity_rows=rows).to_dict()
            diffs = []
            for i, row in enumerate(rows):
                m, c = row["machine_channel"].split(":")
                want = _window_10s(good, m, c)
                got_row = {n: online[n][i] for n in names}
                if any(got_row[n] is None or abs(got_row[n] - want[n]) > 1e-9 for n in names):
                    diffs.append((row["machine_channel"], got_row, want))
            if not diffs:
                break
            assert time.monotonic() < deadline, f"machine_stats differs: {diffs}"
            time.sleep(0.5)
        assert flow.poll() is None, "the flow stopped"
    finally:
        stop_group(flow)
        hook.httpd.shutdown()
