"""`make demo`: the whole fraud path on one machine, started and stopped by one command."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rtml.redis import connect
from rtml.redis.embedded import RedisUnavailableError, ensure_redis
from rtml.runtime import bentoml_serve, flow_command, start_group, stop_group
from rtml.scenarios import Scenario
from rtml.settings import Settings


def _step(name: str) -> float:
    print(f"\n== {name}", flush=True)
    return time.perf_counter()


def _done(t0: float, what: str = "") -> None:
    print(f"   {what}{' ' if what else ''}({time.perf_counter() - t0:.1f}s)", flush=True)


@contextlib.contextmanager
def stream_flow(settings: Settings, flow: str, *, log_path: Path) -> Iterator[None]:
    """A scenario's Bytewax flow in its own process group, from a clean slate.

    Stopping it on exit is recorded as a clean stop (`rtml.streams.stop`) when it was still
    running, so the monitor reports the stream as stopped on purpose rather than dead.
    """
    from pipelines.fraud.events import stream_key
    from rtml.features.push import FRESHNESS_STREAM
    from rtml.streams.stop import clear_clean_stop, record_clean_stop

    client = connect(settings)
    client.delete(*[stream_key(i) for i in range(settings.stream_partitions)], FRESHNESS_STREAM)
    clear_clean_stop(client)
    shutil.rmtree(settings.state_dir / "recovery", ignore_errors=True)
    cmd = flow_command(settings, flow)
    proc = start_group(cmd, log=log_path, cwd=settings.repo_root,
                       env={"RTML_REDIS_ADDRESS": settings.redis_address})
    try:
        yield
    finally:
        running = proc.poll() is None
        stop_group(proc)
        if running:
            record_clean_stop(client, by="rtml demo")


def wait_caught_up(client: Any, *, quiet_s: float = 1.5, timeout_s: float = 60.0) -> bool:
    """Wait until the flow's sink has recorded no push for `quiet_s` (it has read everything).

    Each push of streamed events adds a sample to the freshness stream; decays (timers) add none.
    False when it was still pushing after `timeout_s`.
    """
    from rtml.features.push import FRESHNESS_STREAM

    deadline = time.monotonic() + timeout_s
    last, quiet_since = None, time.monotonic()
    while time.monotonic() < deadline:
        newest = client.xrevrange(FRESHNESS_STREAM, count=1)
        if newest != last:
            last, quiet_since = newest, time.monotonic()
        elif newest and time.monotonic() - quiet_since >= quiet_s:
            return True
        time.sleep(0.1)
    return False


def clear_online_store(client: Any, project: str) -> int:
    """Delete the project's Feast rows: the demo loads an online store of this run only.

    Each run simulates a new history; Feast's Redis store keeps a stored row unless the new one is
    newer, so a second run on the same day would keep the first run's snapshot, and a streamed
    value left by an earlier run would be served as if current.
    """
    deleted, batch = 0, []
    for key in client.scan_iter(match=f"*{project}", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            deleted += client.unlink(*batch)
            batch = []
    if batch:
        deleted += client.unlink(*batch)
    return deleted


def run_demo(settings: Settings, scenario: Scenario, *, days: int, customers: int,
             terminals: int, replay: int, port: int, stream: bool = True,
             drift_amount: float = 1.0) -> int:
    """Every stage of the fraud scenario in order; returns the exit status.

    `scenario` names the service and the flow to start (the registry's fraud entry).

    The order is production's (`rtml.demo.plan`): history up to now, the nightly snapshot, the
    stream catching up on today's payments with their own times, then the next payments scored
    before the stream counts them. `drift_amount` != 1 makes every payment from now on cost that
    many times more: the monitor should flag it.
    """
    from benchmarks.load import run_load
    from monitoring.fraud.labels import write_labels
    from pipelines.fraud.batch_features import build
    from pipelines.fraud.produce import produce
    from pipelines.fraud.simulate import SimulatedData, simulate, write
    from pipelines.fraud.windows import write_backfill
    from rtml.cli.scenarios import REGISTRY
    from rtml.demo.plan import history, replay_split, score_requests, stream_start, timeline
    from rtml.features.online import apply_repo, in_repo, load_store
    from rtml.features.online_store import record_materialized
    from rtml.features.push import FRESHNESS_STREAM
    from rtml.serving.predlog import drain
    from training.fraud.train import train

    started = time.perf_counter()
    t = _step(f"redis at {settings.redis_address}")
    try:
        status = ensure_redis(settings)
    except RedisUnavailableError as exc:
        print(f"rtml: {exc}", file=sys.stderr)
        return 2
    _done(t, "embedded Valkey" if status.embedded else "external Redis")
    client = connect(settings)

    plan = timeline(datetime.now(UTC), days=days)
    t = _step(f"simulate {days} days, {customers} customers, {terminals} terminals, up to now")
    data = simulate(customers=customers, terminals=terminals, days=days, start=plan.start,
                    seed=0, progress=True, drift_amount=drift_amount,
                    drift_from_day=plan.now_day if drift_amount != 1.0 else None)
    tx = history(data.transactions, before=plan.now)
    write(SimulatedData(data.customers, data.terminals, tx), settings.raw_dir)
    # Chargebacks arrive two days after each payment, the scored ones included.
    write_labels(data.transactions, settings.labels_path, delay_s=2 * 86400)
    local = (plan.now - plan.start).total_seconds() % 86400
    _done(t, f"{len(tx):,} transactions, {int(tx['is_fraud'].sum()):,} fraud, up to "
             f"{plan.now:%H:%M} UTC ({int(local // 3600):02d}:{int(local % 3600 // 60):02d} "
             "in the customers' day)")
    if drift_amount != 1.0:
        print(f"   drift: every payment from now on costs x{drift_amount:g}")

    t = _step("batch features" + (" + backfill of the streamed windows" if stream else ""))
    build(settings.raw_dir / "transactions.parquet", settings.features_dir)
    if stream:
        write_backfill(settings.raw_dir / "transactions.parquet", settings.features_dir)
    REGISTRY.ensure_offline_sources(settings.features_dir)  # feast reads every view's source
    _done(t)

    t = _step("feast apply + materialize the nightly views")
    apply_repo(settings)
    store = load_store(settings)
    cleared = clear_online_store(client, store.config.project)
    # The nightly views only: the streamed views' online values come from the stream below, as
    # in production (their backfill is training's offline copy). The demo regenerates history
    # every run, so it rewrites the whole serving window rather than continuing from the last
    # run's watermark (what the nightly `rtml materialize` does).
    nightly = [v.name for v in store.list_feature_views() if v.tags.get("refresh") != "stream"]
    with in_repo(store):
        store.materialize(start_date=plan.now - timedelta(days=3), end_date=plan.now,
                          feature_views=nightly)
    record_materialized(client, plan.now)  # a later `rtml materialize` continues from here
    _done(t, f"{', '.join(nightly)} ({cleared:,} rows of an earlier run deleted)")

    service = "fraud_model_v2" if stream else "fraud_model_v1"
    t = _step(f"train {service}")
    # v2 joins two more views per payment; the last 14 training days keep the demo in budget.
    m = (train(settings, service_name=service, train_days=14, test_days=7) if stream
         else train(settings, service_name=service))
    print(f"   {m['bentoml_tag']}: average precision {m['xgboost']['average_precision']:.3f} "
          f"(amount rule {m['baseline_amount_rule']['average_precision']:.3f}), ROC-AUC "
          f"{m['xgboost']['roc_auc']:.3f}")
    _done(t)

    t = _step("bentoml serve + stream + score")
    # The monitor reads the log of this run only (an earlier run's rows, drifted or slow, are not
    # this model's traffic).
    client.delete(settings.prediction_stream)
    shutil.rmtree(settings.predictions_dir, ignore_errors=True)
    flow = (stream_flow(settings, scenario.flow, log_path=settings.state_dir / "demo-stream.log")
            if stream and scenario.flow else contextlib.nullcontext())
    with flow, bentoml_serve(settings, scenario.service, port=port,
                             log=settings.state_dir / "demo-serve.log") as url:
        print(f"   serving on {url}")
        at = datetime.now(UTC)
        streamed, upcoming = replay_split(data.transactions, at=at, scored=replay)
        if stream:
            # Today's payments up to now, with their own times: the flow's windows then hold
            # what the last 10 minutes / hour really held.
            sent = produce(address=settings.redis_address,
                           transactions=streamed, rate=5000, duration=None,
                           partitions=settings.stream_partitions, progress=False,
                           own_times=True)
            caught_up = wait_caught_up(client)
            print(f"   streamed {sent['sent']:,} events from {stream_start(at):%H:%M} to "
                  f"{at:%H:%M:%S} UTC at their own times, at {sent['achieved_rate']:,.0f}/s"
                  f"{'' if caught_up else ' (the flow had not caught up after 60 s)'}")
        # The next payments, scored now, before the stream counts them.
        reqs = score_requests(upcoming, at=datetime.now(UTC))
        summary = asyncio.run(run_load(url, reqs, rate=200.0))
        time.sleep(0.5)  # let the prediction log flush
    stopped = datetime.now(UTC)
    logged = drain(client, stream=settings.prediction_stream, out_dir=settings.predictions_dir)
    _done(t)

    lat = summary["latency_ms"]
    span = upcoming["event_timestamp"].max() - upcoming["event_timestamp"].min()
    print("\n== result")
    print(f"   scored {summary['requests']} upcoming payments (the next "
          f"{span.total_seconds() / 3600:.1f} h of them) at 200 rps over HTTP")
    print(f"   decisions: {summary['decisions']}")
    print(f"   fallbacks: {summary['fallbacks']} {summary['fallback_reasons'] or ''}")
    print(f"   errors:    {summary['errors'] or 0}")
    print(f"   latency:   p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms "
          "(client-side, open loop)")
    print(f"   logged:    {logged} predictions -> {settings.predictions_dir}")
    if stream:
        lags = sorted(float(f[b"lag_ms"]) for _, f in client.xrange(FRESHNESS_STREAM))
        if lags:
            print(f"   freshness: XADD -> readable in Feast p50 {lags[len(lags) // 2]:.0f} ms, "
                  f"max {lags[-1]:.0f} ms over {len(lags)} pushes")
        served, reference = _fresh_share(settings)
        print(f"   fresh:     {served:.0%} of scored payments had streamed activity in the last "
              f"hour (training reference: {reference:.0%})")
        print(f"   stream:    stopped with the service at {stopped:%H:%M:%S} UTC (recorded: the "
              "monitor reports it as stopped, not dead)")
    print(f"   metrics:   {settings.artifacts_dir / 'fraud' / 'metrics.json'}")
    print(f"   monitor:   rtml monitor run --model {scenario.name}  (then open "
          "reports/index.html)")
    print(f"   total:     {time.perf_counter() - started:.0f}s")
    return 0 if not summary["errors"] else 1


def _fresh_share(settings: Settings) -> tuple[float, float]:
    """Shares of scored payments and of the training reference with last-hour streamed activity.

    Equal, up to sampling, when the stream holds what a real hour holds.
    """
    import json

    import pandas as pd

    log = pd.read_parquet(settings.predictions_dir)
    counts = log["features"].map(lambda f: json.loads(f).get("cust_tx_count_1h", 0))
    ref = pd.read_parquet(settings.artifacts_dir / "fraud" / "reference.parquet",
                          columns=["cust_tx_count_1h"])["cust_tx_count_1h"]
    return (float((counts > 0).mean()) if len(counts) else 0.0,
            float((ref > 0).mean()) if len(ref) else 0.0)
