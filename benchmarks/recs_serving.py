"""The recommendation service under load, end to end in a sandbox: cache off, then L1 + L2 on.

    python -m benchmarks.recs_serving --out benchmarks/results/recs_serving.json
    python -m benchmarks.recs_serving --in-process 300 [--profile]   # per request, no HTTP

Builds a sandbox (its own Valkey on a free port, a simulated shop, nightly features, the stock
backfill, `feast apply`, `feast materialize`, `rtml recs precompute --top N`), then for each
configuration starts `bentoml serve` and runs `benchmarks.recs_load` at `--rate` for
`--duration` seconds per user-activity skew. Prints one line per run and writes the JSON. Also
measures Redis memory per item and per user of the online store (`INFO memory` before and after
the load of each entity's views, divided by the entities loaded).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.recs_load import draw_users, run
from rtml.redis import connect
from rtml.redis.embedded import start_embedded, stop_embedded
from rtml.runtime import process, serve_command
from rtml.settings import REPO_ROOT, Settings

BIN = Path(sys.executable).parent
CONFIGS = {  # label -> service settings
    "cache off": {"RTML_RECS__CACHE": "false", "RTML_RECS__ENTITY_CACHE": "false"},
    "L1+L2 on": {"RTML_RECS__CACHE": "true", "RTML_RECS__ENTITY_CACHE": "true"},
}


def _sandbox(root: Path, port: int) -> Settings:
    shutil.copytree(REPO_ROOT / "feature_repo", root / "feature_repo",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / ".feastignore", root / ".feastignore")
    s = Settings(scenario="recs", repo_root=root, redis_address=f"localhost:{port}")
    text = (REPO_ROOT / "feature_store.yaml").read_text()
    (root / "feature_store.yaml").write_text(text.replace('"localhost:6379"',
                                                          f'"{s.redis_address}"'))
    return s


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> None:
    subprocess.run(cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def _memory(s: Settings) -> int:
    return int(connect(s).info("memory")["used_memory"])


def build(s: Settings, env: dict[str, str], *, users: int, items: int, days: int,
          top: int) -> dict[str, Any]:
    """The stack; returns sizes and the memory the online store takes per user and per item."""
    from feature_repo.recs.specs import ITEM_COVISIT, ITEM_STATS, NIGHTLY, USER_PROFILE
    from feature_repo.recs.stream_specs import ITEM_STOCK
    from pipelines.recs.batch_features import build as build_nightly
    from pipelines.recs.batch_features import ensure_sources
    from pipelines.recs.simulate import simulate
    from pipelines.recs.stream_backfill import write_stock

    cat = simulate(s, seed=0, n_users=users, n_items=items, days=days)
    folder = s.data_dir / "recs"
    build_nightly(folder, s.features_dir, last_days=1)
    ensure_sources(s.features_dir)
    write_stock(cat.items, cat.events, pd.Timestamp(cat.events["ts"].max()).to_pydatetime(),
                s.features_dir)
    root = s.repo_root
    _run([str(BIN / "feast"), "apply"], env, root)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    sizes: dict[str, Any] = {"events": len(cat.events), "users": users, "items": items}
    before = _memory(s)
    _run([str(BIN / "feast"), "materialize-incremental", now, "-v", USER_PROFILE.name], env, root)
    mid = _memory(s)
    _run([str(BIN / "feast"), "materialize-incremental", now,
          *sum((["-v", v.name] for v in (ITEM_STATS, ITEM_COVISIT, ITEM_STOCK)), [])], env, root)
    after = _memory(s)
    profiles = len(pd.read_parquet(s.features_dir / str(USER_PROFILE.offline_file),
                                   columns=["user_id"])["user_id"].unique())
    sizes.update(users_with_profile=profiles,
                 bytes_per_user=(mid - before) / max(profiles, 1),
                 bytes_per_item=(after - mid) / items,
                 nightly_views=[v.name for v in NIGHTLY])
    _run([str(BIN / "rtml"), "recs", "precompute", "--top", str(top)], env, root)
    sizes["precomputed_top"] = top
    return sizes


def in_process(env: dict[str, str], users: Any, *, n: int, profile: bool = False
               ) -> dict[str, Any]:
    """`n` requests through the service's own `recommend`, cache off, no HTTP: ms per request.

    The service class is built in this process (`RecsService.inner()`), so the time is the
    request path's alone (no server, no client), with a budget too wide to cut a request
    short on a loaded machine; `cProfile` then shows where the time goes.
    """
    import cProfile
    import os
    import pstats
    import time

    import numpy as np

    os.environ.update({**env, **CONFIGS["cache off"], "RTML_RECS__REQUEST_BUDGET_MS": "10000",
                       "RTML_RECS__FEATURE_TIMEOUT_MS": "10000"})
    from bentos.recs.service import RecsService

    svc = RecsService.inner()
    prof = cProfile.Profile()
    stages: dict[str, list[float]] = {}
    medians: dict[str, float] = {}

    async def go(batch: Any, fallbacks: list[str]) -> list[float]:
        times = []
        for u in batch:
            t = time.perf_counter()
            a = await asyncio.wait_for(svc.recommend(int(u), 10, None), 30)
            times.append((time.perf_counter() - t) * 1000)
            if a.fallback:
                fallbacks.append(str(a.reason))
            for k, v in a.timings.items():
                stages.setdefault(k, []).append(v)
        return times

    async def all_runs() -> tuple[list[float], list[str]]:
        fallbacks: list[str] = []
        await go(users[:50], [])  # warm-up: connections, lists, caches of keys
        stages.clear()
        times = await go(users[:n], fallbacks)
        medians.update({k: float(np.median(v)) for k, v in stages.items()})
        if profile:
            prof.enable()
            await go(users[:min(n, 100)], [])
            prof.disable()
        return times, fallbacks

    times, fallbacks = asyncio.run(all_runs())
    if profile:
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    return {"requests": len(times), "mean_ms": float(np.mean(times)),
            "p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)),
            "stage_ms_p50": medians,
            "fallbacks": len(fallbacks), "first_fallback": fallbacks[0] if fallbacks else None}


def main() -> None:
    """Command line: build, then every configuration at every skew."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--skews", default="0.8,1.0,1.2")
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--items", type=int, default=10_000)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--top", type=int, default=2_000)
    p.add_argument("--port", type=int, default=3310)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--in-process", type=int, default=0, metavar="N",
                   help="only time N requests in this process (no HTTP)")
    p.add_argument("--profile", action="store_true", help="with --in-process: a cProfile")
    args = p.parse_args()
    from benchmarks.servers import Ports

    with tempfile.TemporaryDirectory(prefix="recs-bench-") as tmp:
        s = _sandbox(Path(tmp), Ports(0).take())
        start_embedded(s)
        try:
            env = {"RTML_REPO_ROOT": str(s.repo_root), "RTML_REDIS_ADDRESS": s.redis_address,
                   "RTML_REDIS_EMBEDDED": "never", "FEAST_USAGE": "False",
                   "BENTOML_HOME": str(Path(tmp) / "bentoml"), "PATH": str(BIN) + ":/usr/bin:/bin"}
            sizes = build(s, env, users=args.users, items=args.items, days=args.days,
                          top=args.top)
            print(json.dumps(sizes), flush=True)
            if args.in_process:
                users = draw_users(s, args.in_process, skew=1.0, seed=1)
                print("in process:", json.dumps(in_process(env, users, n=args.in_process,
                                                              profile=args.profile)))
                return
            rows = []
            for label, knobs in CONFIGS.items():
                skews = [1.0] if label == "cache off" else [
                    float(x) for x in args.skews.split(",")]
                log = Path(tmp) / f"serve-{label.replace(' ', '_')}.log"
                url = f"http://127.0.0.1:{args.port}"
                cmd = serve_command("bentos.recs.service:RecsService", port=args.port)
                with process(label, cmd, ready_url=f"{url}/readyz", log=log, cwd=REPO_ROOT,
                             env={**env, **knobs}, timeout_s=300):
                    for skew in skews:
                        users = draw_users(s, int(args.rate * args.duration), skew=skew,
                                           seed=1)
                        asyncio.run(run(url, users[:200], rate=args.rate))  # warm-up
                        r = asyncio.run(run(url, users, rate=args.rate))
                        r.update(config=label, skew=skew)
                        rows.append(r)
                        lat = r["latency_ms"]
                        print(f"{label:>9} skew {skew:.1f}: p50 {lat['p50']:.2f} p95 "
                              f"{lat['p95']:.2f} p99 {lat['p99']:.2f} ms  server p99 "
                              f"{r['server_total_ms'].get('p99', 0):.2f}  L2 "
                              f"{r['l2_hit_rate']:.1%} L1 {r['l1_hit_rate']:.1%}  "
                              f"fallbacks {r['fallbacks']} errors {r['errors']}", flush=True)
            if args.out:
                args.out.write_text(json.dumps({"sizes": sizes, "runs": rows}, indent=2) + "\n")
        finally:
            stop_embedded(s)


if __name__ == "__main__":
    main()
