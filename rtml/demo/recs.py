"""`rtml demo recs`: the recommendation path on one machine, started and stopped by one command.

Stages, in production's order: simulate a small shop (its history ends at today 00:00 UTC),
train the ranker and its baselines (`rtml train recs` -> `artifacts/recs/metrics.json`), build the
nightly features and the stock as of the last event, `feast apply` + materialize, precompute the
L2 entries of the most active users, start the stream flow and `bentoml serve` the service,
replay the last hours of history onto the event stream (stamped now: live sessions, trending,
stock), then a short open-loop load (`benchmarks.recs_load`), stop everything and print the lift
table (from metrics.json), latency percentiles, the fallback share and the cache hit rates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rtml.demo import _done, _step, clear_online_store, wait_caught_up
from rtml.redis import connect
from rtml.redis.embedded import RedisUnavailableError, ensure_redis
from rtml.runtime import bentoml_serve, flow_command, start_group, stop_group
from rtml.scenarios import Scenario
from rtml.settings import Settings

METHODS = ("popularity", "revisit", "covisitation", "ranker", "ranker_mmr")
# The demo's shop: small enough to run in a few minutes, big enough for a ranker to learn.
USERS, ITEMS, DAYS, SESSIONS_PER_DAY = 5000, 2000, 12, 800
PRECOMPUTED = 500  # the most active users get an L2 entry
REPLAY_HOURS = 3.0  # history replayed onto the stream, stamped now
# Modest: one service worker answers ~25 rps on 2 cores (docs/recs-serving.md); more would show
# the overload's fallbacks, not the service.
LOAD_RATE, LOAD_SECONDS, LOAD_SKEW = 10.0, 15.0, 1.0
# Requests a seed (`rtml train recs`: 2000 / 1000 / 2000).
TRAIN_REQUESTS = {"n_train": 1000, "n_valid": 500, "n_test": 1000}


def lift_table(metrics: dict[str, Any]) -> list[str]:
    """The ranker against its baselines, as metrics.json has them (mean over the seeds)."""
    lines = [f"   {'method':<14}{'ndcg@10':>9}{'hitrate@10':>12}{'recall@20':>11}"]
    for m in METHODS:
        e = metrics[m]
        lines.append(f"   {m:<14}{e['ndcg@10']:>9.4f}{e['hitrate@10']:>12.4f}"
                     f"{e['recall@20']:>11.4f}")
    ranker = metrics["ranker"]["ndcg@10"]
    vs = {b: ranker / metrics[b]["ndcg@10"] if metrics[b]["ndcg@10"] else float("inf")
          for b in ("covisitation", "popularity")}
    lines.append(f"   lift of the ranker (ndcg@10): x{vs['covisitation']:.2f} over co-visitation, "
                 f"x{vs['popularity']:.2f} over popularity; seeds {metrics.get('seeds')}, "
                 f"in-stock share {metrics['in_stock_share']:.3f}")
    return lines


def load_lines(summary: dict[str, Any]) -> list[str]:
    """Latency, fallbacks and cache outcomes of one `benchmarks.recs_load.run`."""
    lat, n = summary["latency_ms"], summary["requests"]
    fallbacks = sum(summary["fallbacks"].values())
    answered = sum(summary["cache"].values())
    return [
        f"   requests:  {n} GET /recommendations at {summary['rate']:g}/s over HTTP "
        f"(open loop, Zipf users)",
        f"   latency:   p50 {lat['p50']:.2f} ms, p95 {lat['p95']:.2f} ms, p99 {lat['p99']:.2f} ms "
        "(client-side, from each request's due time)",
        f"   fallbacks: {fallbacks / max(answered, 1):.1%} of answers {summary['fallbacks'] or ''}",
        f"   cache:     L2 hit {summary['l2_hit_rate']:.1%}, L1 hit {summary['l1_hit_rate']:.1%} "
        f"({summary['cache']}); cold starts {summary['cold_starts']}",
        f"   errors:    {summary['errors'] or 0}",
    ]


@contextlib.contextmanager
def _flow(settings: Settings, flow: str, *, log_path: Path) -> Iterator[None]:
    """The recs flow in its own process group, from a clean event stream and recovery store."""
    from pipelines.recs.events import DEAD_LETTER_STREAM, STREAM
    from rtml.features.push import FRESHNESS_STREAM
    from rtml.streams.stop import clear_clean_stop, record_clean_stop

    client = connect(settings)
    client.delete(STREAM, DEAD_LETTER_STREAM, FRESHNESS_STREAM)
    clear_clean_stop(client)
    shutil.rmtree(settings.state_dir / "recovery", ignore_errors=True)
    proc = start_group(flow_command(settings, flow), log=log_path, cwd=settings.repo_root,
                       env={"RTML_REDIS_ADDRESS": settings.redis_address})
    try:
        yield
    finally:
        running = proc.poll() is None
        stop_group(proc)
        if running:
            record_clean_stop(client, by="rtml demo recs")


def run_demo(settings: Settings, scenario: Scenario, *, port: int = 3000,
             **_: Any) -> int:
    """Every stage of the recs scenario in order; returns the exit status.

    The fraud demo's options (days, customers, ...) are accepted and not used: the shop's size is
    this module's constants.
    """
    import pandas as pd

    from benchmarks.recs_load import draw_users
    from benchmarks.recs_load import run as run_load
    from feature_repo.recs.specs import NIGHTLY
    from feature_repo.recs.stream_specs import STREAMED
    from pipelines.recs import batch_features
    from pipelines.recs.precompute import precompute
    from pipelines.recs.produce import produce
    from pipelines.recs.simulate import simulate
    from pipelines.recs.stream_backfill import write_stock_at_end
    from rtml.cli.scenarios import REGISTRY
    from rtml.features.online import apply_repo, in_repo, load_store
    from rtml.serving.predlog import drain
    from training.recs.train import train

    started = time.perf_counter()
    t = _step(f"redis at {settings.redis_address}")
    try:
        status = ensure_redis(settings)
    except RedisUnavailableError as exc:
        print(f"rtml: {exc}", file=sys.stderr)
        return 2
    _done(t, "embedded Valkey" if status.embedded else "external Redis")
    client = connect(settings)

    t = _step(f"simulate a shop: {USERS:,} users, {ITEMS:,} items, {DAYS} days")
    simulate(settings, seed=0, n_users=USERS, n_items=ITEMS, days=DAYS,
             sessions_per_day=SESSIONS_PER_DAY)
    raw = settings.data_dir / "recs"
    events = pd.read_parquet(raw / "events.parquet")
    _done(t, f"{len(events):,} events up to {events['ts'].max():%Y-%m-%d %H:%M} UTC -> {raw}")

    t = _step("train the ranker and its baselines (rtml train recs, {n_train}/{n_valid}/{n_test} "
              "requests a seed)".format(**TRAIN_REQUESTS))
    metrics = train(settings, **TRAIN_REQUESTS)
    print(f"   {metrics['bentoml_tag']}: objective {metrics['objective']}, MMR lambda "
          f"{metrics['mmr_lambda']}")
    _done(t)

    t = _step("nightly features + stock as of the last event; feast apply + materialize")
    batch_features.build(raw, settings.features_dir)
    write_stock_at_end(raw, settings.features_dir)
    REGISTRY.ensure_offline_sources(settings.features_dir)  # feast reads every view's source
    apply_repo(settings)
    store = load_store(settings)
    cleared = clear_online_store(client, store.config.project)
    views = [v.name for v in (*NIGHTLY, *STREAMED)]
    now = datetime.now(UTC)
    with in_repo(store):
        store.materialize(start_date=now - timedelta(days=3), end_date=now, feature_views=views)
    _done(t, f"{', '.join(views)} ({cleared:,} rows of an earlier run deleted)")

    t = _step(f"L2: precompute the {PRECOMPUTED} most active users")
    r = precompute(settings, top=PRECOMPUTED)
    _done(t, f"{r.written:,} entries, popular list of {r.popular}")

    t = _step("stream flow + bentoml serve + replay + load")
    client.delete(settings.prediction_stream)
    shutil.rmtree(settings.predictions_dir, ignore_errors=True)
    with _flow(settings, scenario.flow or "", log_path=settings.state_dir / "demo-recs-stream.log"
               ), bentoml_serve(settings, scenario.service, port=port,
                                log=settings.state_dir / "demo-recs-serve.log") as url:
        print(f"   serving on {url}")
        recent = events[events["ts"] > events["ts"].max() - pd.Timedelta(hours=REPLAY_HOURS)]
        sent = produce(settings=settings, events=recent, rate=5000, duration=None,
                       progress=False)
        caught_up = wait_caught_up(client)
        print(f"   replayed the last {REPLAY_HOURS:g} h of history ({sent['sent']:,} events) "
              f"stamped now at {sent['achieved_rate']:,.0f}/s"
              f"{'' if caught_up else ' (the flow had not caught up after 60 s)'}")
        users = draw_users(settings, int(LOAD_RATE * LOAD_SECONDS), skew=LOAD_SKEW, seed=0)
        summary = asyncio.run(run_load(url, users, rate=LOAD_RATE))
        time.sleep(0.5)  # let the prediction log flush
    logged = drain(client, stream=settings.prediction_stream, out_dir=settings.predictions_dir)
    _done(t)

    print("\n== result: offline, the test days (full catalogue, mean over seeds)")
    for line in lift_table(json.loads((settings.artifacts_dir / "recs" / "metrics.json")
                                      .read_text())):
        print(line)
    print("\n== result: online, this machine")
    for line in load_lines(summary):
        print(line)
    print(f"   logged:    {logged} impressions -> {settings.predictions_dir}")
    print(f"   metrics:   {settings.artifacts_dir / 'recs' / 'metrics.json'}")
    print("   monitor:   rtml monitor run --model recs  (then open reports/index.html; clicks "
          "grade an answer 30 min after it)")
    print(f"   total:     {time.perf_counter() - started:.0f}s")
    return 0 if not summary["errors"] else 1
