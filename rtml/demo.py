"""`make demo`: the whole fraud path on one machine, started and stopped by one command."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from rtml.redis_server import RedisUnavailableError, ensure_redis
from rtml.settings import Settings


def stop_group(proc: subprocess.Popen, *, timeout_s: float = 15.0) -> None:
    """SIGTERM a child's whole process group (workers included); SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_ready(proc: subprocess.Popen, ready_url: str, *, timeout_s: float, name: str,
               log: Path, refused: bool = False, error: type[Exception] = RuntimeError) -> None:
    """Poll `ready_url` until it answers 200; `error` if `proc` exits or time runs out.

    `refused`: a 503 whose body names a `reason` (the fraud service's /readyz) is final, so
    say it at once instead of waiting out the timeout.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise error(f"{name} exited ({proc.returncode}) before answering; log: {log}\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.get(ready_url, timeout=1.0)
            if r.status_code == 200:
                return
            if refused and r.status_code == 503 and "reason" in r.text:
                raise error(f"{name} not ready: {r.json()['reason']}")
        if time.monotonic() > deadline:
            raise error(f"{name}: no answer on {ready_url} in {timeout_s:.0f}s; log: {log}")
        time.sleep(0.25)


def _step(name: str) -> float:
    print(f"\n== {name}", flush=True)
    return time.perf_counter()


def _done(t0: float, what: str = "") -> None:
    print(f"   {what}{' ' if what else ''}({time.perf_counter() - t0:.1f}s)", flush=True)


@contextlib.contextmanager
def bentoml_serve(settings: Settings, *, port: int, log_path: Path,
                  ready_timeout_s: float = 120.0) -> Iterator[str]:
    """`bentoml serve` the fraud service in its own process group; stop it on exit."""
    url = f"http://127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [bentoml, "serve", "bentos.fraud.service:FraudService", "--port", str(port),
             "--host", "127.0.0.1"],
            cwd=settings.repo_root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "RTML_REDIS_ADDRESS": settings.redis_address},
        )
    try:
        wait_ready(proc, f"{url}/readyz", timeout_s=ready_timeout_s, name="bentoml serve",
                   log=log_path, refused=True)
        yield url
    finally:
        stop_group(proc)


@contextlib.contextmanager
def stream_flow(settings: Settings, *, log_path: Path) -> Iterator[None]:
    """The fresh-features Bytewax flow in its own process group, from a clean slate."""
    import shutil

    import redis

    from pipelines.feast_push import FRESHNESS_STREAM
    from rtml.cli import stream_command
    from rtml.events import stream_key

    client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    client.delete(*[stream_key(i) for i in range(settings.stream_partitions)], FRESHNESS_STREAM)
    shutil.rmtree(settings.state_dir / "recovery", ignore_errors=True)
    cmd = stream_command(settings)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=settings.repo_root, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                env={**os.environ, "RTML_REDIS_ADDRESS": settings.redis_address})
    try:
        yield
    finally:
        stop_group(proc)


def run_demo(settings: Settings, *, days: int, customers: int, terminals: int, replay: int,
             port: int, stream: bool = True) -> int:
    """Every stage in order; returns the exit status."""
    import redis

    from benchmarks.load import run_load, sample_requests
    from monitoring.labels import write_labels
    from pipelines.batch_features import build
    from pipelines.feast_push import FRESHNESS_STREAM
    from pipelines.fresh_aggregates import write_backfill
    from pipelines.produce import produce
    from pipelines.simulate import default_start, simulate, write
    from pipelines.stream_sources import ensure_fresh_sources
    from rtml.features import apply_repo, load_store
    from rtml.predlog import drain
    from training.train_fraud import train

    started = time.perf_counter()
    t = _step(f"redis at {settings.redis_address}")
    try:
        status = ensure_redis(settings)
    except RedisUnavailableError as exc:
        print(f"rtml: {exc}", file=sys.stderr)
        return 2
    _done(t, "embedded Valkey" if status.embedded else "external Redis")

    t = _step(f"simulate {days} days, {customers} customers, {terminals} terminals")
    data = simulate(customers=customers, terminals=terminals, days=days,
                    start=default_start(days), seed=0, progress=True)
    write(data, settings.raw_dir)
    write_labels(data.transactions, settings.labels_path, delay_s=2 * 86400)  # chargebacks
    tx = data.transactions
    _done(t, f"{len(tx):,} transactions, {int(tx['is_fraud'].sum()):,} fraud")

    t = _step("batch features" + (" + backfill of the streamed windows" if stream else ""))
    build(settings.raw_dir / "transactions.parquet", settings.features_dir)
    if stream:
        write_backfill(settings.raw_dir / "transactions.parquet", settings.features_dir)
    ensure_fresh_sources(settings.features_dir)
    _done(t)

    t = _step("feast apply + materialize-incremental")
    apply_repo(settings)
    # The demo regenerates history every run, so it rewrites the whole serving window rather
    # than continuing from the last run's watermark (what the nightly `rtml materialize` does).
    now = datetime.now(UTC)
    load_store(settings).materialize(start_date=now - timedelta(days=3), end_date=now)
    _done(t)

    service = "fraud_model_v2" if stream else "fraud_model_v1"
    t = _step(f"train {service}")
    # v2 joins two more views per payment; the last 14 training days keep the demo in budget.
    m = (train(settings, service_name=service, train_days=14, test_days=7) if stream
         else train(settings, service_name=service))
    print(f"   {m['bentoml_tag']}: average precision {m['xgboost']['average_precision']:.3f} "
          f"(amount rule {m['baseline_amount_rule']['average_precision']:.3f}), ROC-AUC "
          f"{m['xgboost']['roc_auc']:.3f}")
    _done(t)

    t = _step("bentoml serve + replay")
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    client.delete(settings.prediction_stream)
    flow = (stream_flow(settings, log_path=settings.state_dir / "demo-stream.log") if stream
            else contextlib.nullcontext())
    with flow, bentoml_serve(settings, port=port,
                             log_path=settings.state_dir / "demo-serve.log") as url:
        print(f"   serving on {url}")
        if stream:
            # Yesterday's payments arrive as live events; the flow turns them into fresh windows.
            last_day = tx[tx["day"] == tx["day"].max()]
            sent = produce(host=settings.redis_host, port=settings.redis_port,
                           transactions=last_day, rate=5000, duration=None,
                           partitions=settings.stream_partitions, progress=False)
            print(f"   streamed {sent['sent']:,} events at {sent['achieved_rate']:,.0f}/s")
            time.sleep(5)  # the flow catches up (freshness is reported below)
        reqs = sample_requests(settings, replay, seed=1, last_days=1 if stream else 14)
        summary = asyncio.run(run_load(url, reqs, rate=200.0))
        time.sleep(0.5)  # let the prediction log flush
    logged = drain(client, stream=settings.prediction_stream, out_dir=settings.predictions_dir)
    _done(t)

    lat = summary["latency_ms"]
    print("\n== result")
    print(f"   replayed {summary['requests']} held-out transactions at 200 rps over HTTP")
    print(f"   decisions: {summary['decisions']}")
    print(f"   fallbacks: {summary['fallbacks']} {summary['fallback_reasons'] or ''}")
    print(f"   errors:    {summary['errors'] or 0}")
    print(f"   latency:   p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms "
          "(client-side, open loop)")
    print(f"   logged:    {logged} predictions -> {settings.predictions_dir}")
    if stream:
        lags = sorted(float(f[b"lag_ms"]) for _, f in client.xrange(FRESHNESS_STREAM))
        fresh = _fresh_share(settings)
        if lags:
            print(f"   freshness: XADD -> readable in Feast p50 {lags[len(lags) // 2]:.0f} ms, "
                  f"max {lags[-1]:.0f} ms over {len(lags)} pushes")
        print(f"   fresh:     {fresh:.0%} of scored payments had streamed last-hour activity")
    print(f"   metrics:   {settings.artifacts_dir / 'fraud' / 'metrics.json'}")
    print("   monitor:   rtml monitor run --model fraud  (then open reports/index.html)")
    print(f"   total:     {time.perf_counter() - started:.0f}s")
    return 0 if not summary["errors"] else 1


def _fresh_share(settings: Settings) -> float:
    """Share of logged decisions whose features include streamed activity."""
    import json

    import pandas as pd

    log = pd.read_parquet(settings.predictions_dir)
    counts = log["features"].map(lambda f: json.loads(f).get("cust_tx_count_1h", 0))
    return float((counts > 0).mean()) if len(counts) else 0.0
