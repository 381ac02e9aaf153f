"""How the cost of an answer grows with the work (issue 13 part 6): history depth and customers.

    rtml bench depth --customers 500 --factors 1,10,100 --rate 200 --duration 30
    rtml bench scale --customers 5000,100000,1000000 --rate 200 --duration 30

*depth*: the same customers with x1, x10, x100 payments each (`rtml data generate --tx-scale`),
the same request rate. The seed's naive path aggregates a customer's last 30 days in SQL per
request (`benchmarks.naive_server`: two index range scans), so its work grows with the rows in
the window; rtml reads one precomputed hash per entity from Redis, whatever the history. Each
depth is a world of its own, built the way a user builds one (`rtml data generate`,
`rtml features build`, `feast apply`, `feast materialize-incremental`) in a copy of the Feast
repo with its own Valkey on a free port; the naive side gets the same transactions in Postgres.
One model serves every depth and both sides (trained once on a small world of its own, in the
benchmark's own BentoML store), so only the feature path differs.

*scale*: rtml alone at several customer counts (x1 depth, a short history): p99 at the rate,
and the online store's memory (`INFO memory` used_memory minus the empty server's) per customer.

Both write `benchmarks/results/{depth,scale}-<stamp>.json` and a plot in `docs/img/` (with
`--results-dir` elsewhere, the plot goes there too: a smoke run leaves the docs alone).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import servers
from benchmarks.load import DEFAULT_SKEW, run_load, sample_requests
from benchmarks.naive_server import DEFAULT_DSN, load_transactions, table_name
from benchmarks.record import RESULTS, Recorder
from rtml.redis import connect
from rtml.redis.embedded import start_embedded, stop_embedded
from rtml.settings import REPO_ROOT, Settings

BIN = Path(sys.executable).parent
DOCS_IMG = REPO_ROOT / "docs" / "img"
SERVICE = "bentos.fraud.service:FraudService"


class StepFailed(RuntimeError):
    """A pipeline command of a world that exited non-zero: the command and its last output."""


def world_root(base: Path, name: str) -> Path:
    """A fresh copy of the Feast repo (yaml, definitions, .feastignore) under `base/name`."""
    root = base / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "feature_repo", root / "feature_repo",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / ".feastignore", root / ".feastignore")
    return root


@contextmanager
def world(base: Path, name: str, *, port: int, model_home: Path) -> Iterator[
        tuple[Settings, dict[str, str]]]:
    """Settings and environment of a world: its repo copy and its own Valkey on `port`."""
    root = world_root(base, name)
    settings = Settings(scenario="fraud", repo_root=root, redis_address=f"127.0.0.1:{port}")
    text = (REPO_ROOT / "feature_store.yaml").read_text()
    (root / "feature_store.yaml").write_text(
        text.replace('"localhost:6379"', f'"{settings.redis_address}"'))
    env = {**os.environ, "RTML_REPO_ROOT": str(root),
           "RTML_REDIS_ADDRESS": settings.redis_address, "RTML_REDIS_EMBEDDED": "never",
           "BENTOML_HOME": str(model_home), "FEAST_USAGE": "False",
           "PYTHONWARNINGS": "ignore"}
    start_embedded(settings)
    try:
        yield settings, env
    finally:
        stop_embedded(settings)


def step(cmd: list[str], *, env: dict[str, str], cwd: Path, what: str) -> float:
    """Run one pipeline command; its seconds. `StepFailed` with its output when it fails."""
    t0 = time.perf_counter()
    print(f"   {what}: {' '.join(Path(cmd[0]).name if i == 0 else c for i, c in enumerate(cmd))}",
          flush=True)
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise StepFailed(f"{' '.join(cmd)} exited {proc.returncode}:\n"
                         f"{(proc.stdout + proc.stderr)[-2000:]}")
    return time.perf_counter() - t0


def build_world(settings: Settings, env: dict[str, str], *, customers: int, terminals: int,
                days: int, tx_scale: float, seed: int = 0) -> dict[str, float]:
    """Data, nightly features, `feast apply`, `feast materialize-incremental` now: seconds each."""
    root = settings.repo_root
    rtml, feast = str(BIN / "rtml"), str(BIN / "feast")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return {
        "generate_s": step([rtml, "data", "generate", "--days", str(days), "--customers",
                            str(customers), "--terminals", str(terminals), "--seed", str(seed),
                            "--tx-scale", f"{tx_scale:g}"], env=env, cwd=root, what="data"),
        "features_s": step([rtml, "features", "build"], env=env, cwd=root, what="features"),
        "apply_s": step([feast, "apply"], env=env, cwd=root, what="apply"),
        "materialize_s": step([feast, "materialize-incremental", now], env=env, cwd=root,
                              what="materialize"),
    }


def redis_memory(settings: Settings) -> dict[str, int]:
    """used_memory and keys of the world's Valkey."""
    client = connect(settings)
    try:
        return {"used_memory": int(client.info("memory")["used_memory"]),
                "keys": int(client.dbsize())}
    finally:
        client.close()


def history_stats(settings: Settings) -> dict[str, float]:
    """Rows, and payments per customer in the 30 days the naive SQL reads (mean and max)."""
    import pandas as pd

    tx = pd.read_parquet(settings.raw_dir / "transactions.parquet",
                         columns=["customer_id", "event_timestamp"])
    last = tx[tx["event_timestamp"] >= tx["event_timestamp"].max() - pd.Timedelta(days=30)]
    per = last.groupby("customer_id").size()
    return {"rows": int(len(tx)), "per_customer_30d_mean": float(per.mean()),
            "per_customer_30d_max": int(per.max())}


def measure(url: str, reqs: list[dict[str, Any]], warm: list[dict[str, Any]], *,
            rate: float, label: str) -> dict[str, Any]:
    """Warm-up at the rate, then the measured open-loop run."""
    asyncio.run(run_load(url, warm, rate=rate, progress=False))
    return asyncio.run(run_load(url, reqs, rate=rate, label=label))


def row(summary: dict[str, Any]) -> dict[str, Any]:
    """What the tables keep of a load summary."""
    lat = summary["latency_ms"]
    return {"p50_ms": lat["p50"], "p99_ms": lat["p99"], "requests": summary["requests"],
            "errors": sum(summary["errors"].values()) if summary["errors"] else 0,
            "fallbacks": summary["fallbacks"]}


def train_model(base: Path, model_home: Path, ports: servers.Ports) -> float:
    """Train the model every world serves; seconds taken.

    `rtml train fraud` on a small world with enough history (training's split needs ~65 days),
    into the benchmark's own model store.
    """
    print("== the model: 500 customers, 70 days", flush=True)
    with world(base, "train", port=ports.take(), model_home=model_home) as (s, env):
        build_world(s, env, customers=500, terminals=1000, days=70, tx_scale=1.0)
        return step([str(BIN / "rtml"), "train", "fraud"], env=env, cwd=s.repo_root,
                    what="train")


def run_depth(*, customers: int, factors: list[float], rate: float, duration: float,
              days: int = 40, terminals: int = 1000, dsn: str = DEFAULT_DSN,
              skew: float = DEFAULT_SKEW, targets: tuple[str, ...] = ("naive", "rtml"),
              out_dir: Path = RESULTS, plot: Path | None = DOCS_IMG / "cost-depth.png",
              base: Path | None = None, warmup_s: float = 3.0) -> tuple[int, Path]:
    """Every depth in turn (both targets one after another); results file; exit status."""
    from benchmarks.side_by_side import check_postgres, pg_port

    if "naive" in targets:
        check_postgres(dsn)
    base = base or REPO_ROOT / ".rtml" / "bench" / "depth"
    model_home = base / "bentoml"
    shutil.rmtree(model_home, ignore_errors=True)
    ports = servers.Ports(0)
    train_s = train_model(base, model_home, ports)
    rec: Recorder | None = None
    depths: list[dict[str, Any]] = []
    for i, factor in enumerate(factors):
        print(f"== depth x{factor:g}: {customers} customers, {days} days", flush=True)
        with world(base, f"x{factor:g}", port=ports.take(), model_home=model_home) as (s, env):
            if rec is None:
                rec = Recorder("depth", s, model=False)
                pg = pg_port(dsn) if "naive" in targets else None
                if pg is not None:  # the naive side's SQL runs in Postgres: part of the run
                    rec.add_port(pg)
            else:
                rec.add_port(s.redis_port)
            built = build_world(s, env, customers=customers, terminals=terminals, days=days,
                                tx_scale=factor)
            if i == 0:
                built["train_s"] = train_s
            hist = history_stats(s)
            entry: dict[str, Any] = {"factor": factor, **hist, "build": built,
                                     "redis": redis_memory(s), "targets": {}}
            reqs = sample_requests(s, max(1, int(rate * duration)), seed=0, skew=skew)
            warm = sample_requests(s, max(1, int(rate * warmup_s)), seed=99, skew=skew)
            for name in targets:
                if name == "naive":
                    parquet = s.raw_dir / "transactions.parquet"
                    table = table_name(parquet)
                    t0 = time.perf_counter()
                    load_transactions(dsn, parquet, table)
                    entry["build"]["postgres_load_s"] = time.perf_counter() - t0
                    # The naive server reads the model from the benchmark's store too.
                    ctx = servers.naive_server(s, dsn=dsn, table=table, port=ports.take(),
                                               env=env)
                else:
                    ctx = servers.rtml_server(s, service=SERVICE, port=ports.take(), env=env)
                with ctx as url, rec.window(f"x{factor:g}-{name}"):
                    entry["targets"][name] = row(measure(
                        url, reqs, warm, rate=rate, label=f"{name} x{factor:g} {rate:g} rps"))
            depths.append(entry)
    assert rec is not None
    print()
    print(depth_table(depths))
    out = rec.write({"customers": customers, "days": days, "terminals": terminals,
                     "rate_rps": rate, "duration_s": duration, "skew": skew,
                     "depths": depths}, out_dir=out_dir)
    if plot is not None:
        plot = plot if out_dir.resolve() == RESULTS.resolve() else out_dir / plot.name
        plot_depth(depths, plot, rate=rate)
        print(f"plot: {plot}")
    print(f"results: {out}")
    bad = [f"x{d['factor']:g} {n}" for d in depths for n, r in d["targets"].items()
           if r["errors"] or not r["requests"]]
    if bad:
        print(f"errors from: {', '.join(bad)}")
    return (1 if bad else 0), out


def depth_table(depths: list[dict[str, Any]]) -> str:
    """Markdown: per depth, rows in the 30-day window per customer, p50/p99 of each target."""
    names = sorted({n for d in depths for n in d["targets"]})
    head = "| depth | payments/customer (30 d, mean) | rows | " + " | ".join(
        f"{n} p50 ms | {n} p99 ms" for n in names) + " | Redis used_memory |"
    lines = [head, "|" + "---|" * (4 + 2 * len(names))]
    for d in depths:
        cells = []
        for n in names:
            r = d["targets"].get(n)
            cells += ([f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}"] if r else ["–", "–"])
        lines.append(f"| x{d['factor']:g} | {d['per_customer_30d_mean']:.0f} | {d['rows']:,} | "
                     + " | ".join(cells) + f" | {d['redis']['used_memory'] / 2**20:.1f} MiB |")
    return "\n".join(lines)


def plot_depth(depths: list[dict[str, Any]], path: Path, *, rate: float) -> None:
    """p99 against payments per customer, one line per target, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    names = sorted({n for d in depths for n in d["targets"]})
    for n in names:
        pts = [(d["per_customer_30d_mean"], d["targets"][n]["p99_ms"]) for d in depths
               if n in d["targets"]]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=n)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("payments per customer in the 30-day window (mean)")
    ax.set_ylabel(f"p99 ms at {rate:g} rps")
    ax.set_title("/score p99 as history deepens")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_scale(*, customers: list[int], rate: float, duration: float, days: int = 8,
              skew: float = DEFAULT_SKEW, out_dir: Path = RESULTS,
              plot: Path | None = DOCS_IMG / "cost-scale.png", base: Path | None = None,
              warmup_s: float = 3.0) -> tuple[int, Path]:
    """The rtml service at each customer count: p99 at the rate and Redis memory per customer."""
    base = base or REPO_ROOT / ".rtml" / "bench" / "scale"
    model_home = base / "bentoml"
    shutil.rmtree(model_home, ignore_errors=True)
    ports = servers.Ports(0)
    rec: Recorder | None = None
    rows: list[dict[str, Any]] = []
    train_s = train_model(base, model_home, ports)
    for i, n in enumerate(customers):
        terminals = max(1000, n // 5)
        print(f"== scale: {n:,} customers, {terminals:,} terminals, {days} days", flush=True)
        with world(base, f"c{n}", port=ports.take(), model_home=model_home) as (s, env):
            if rec is None:
                rec = Recorder("scale", s, model=False)
            else:
                rec.add_port(s.redis_port)
            empty = redis_memory(s)["used_memory"]
            built = build_world(s, env, customers=n, terminals=terminals, days=days,
                                tx_scale=1.0)
            if i == 0:
                built["train_s"] = train_s
            mem = redis_memory(s)
            entry: dict[str, Any] = {"customers": n, "terminals": terminals, "build": built,
                                     "redis": {**mem, "empty_used_memory": empty}}
            entry["bytes_per_entity"] = (mem["used_memory"] - empty) / (n + terminals)
            reqs = sample_requests(s, max(1, int(rate * duration)), seed=0, skew=skew)
            warm = sample_requests(s, max(1, int(rate * warmup_s)), seed=99, skew=skew)
            with (servers.rtml_server(s, service=SERVICE, port=ports.take(), env=env) as url,
                  rec.window(f"c{n}")):
                entry["rtml"] = row(measure(url, reqs, warm, rate=rate,
                                            label=f"rtml {n:,} customers {rate:g} rps"))
            rows.append(entry)
    assert rec is not None
    print()
    print(scale_table(rows))
    out = rec.write({"days": days, "rate_rps": rate, "duration_s": duration, "skew": skew,
                     "scales": rows}, out_dir=out_dir)
    if plot is not None:
        plot = plot if out_dir.resolve() == RESULTS.resolve() else out_dir / plot.name
        plot_scale(rows, plot, rate=rate)
        print(f"plot: {plot}")
    print(f"results: {out}")
    bad = [str(r["customers"]) for r in rows if r["rtml"]["errors"] or not r["rtml"]["requests"]]
    return (1 if bad else 0), out


def scale_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: customers, keys, Redis memory and per entity, rtml p50/p99."""
    lines = ["| customers | terminals | keys | Redis used_memory | bytes per entity | p50 ms "
             "| p99 ms | errors |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['customers']:,} | {r['terminals']:,} | {r['redis']['keys']:,} | "
            f"{r['redis']['used_memory'] / 2**20:.1f} MiB | {r['bytes_per_entity']:.0f} | "
            f"{r['rtml']['p50_ms']:.2f} | {r['rtml']['p99_ms']:.2f} | {r['rtml']['errors']} |")
    return "\n".join(lines)


def plot_scale(rows: list[dict[str, Any]], path: Path, *, rate: float) -> None:
    """p99 and Redis memory against customers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r["customers"] for r in rows]
    ax.plot(xs, [r["rtml"]["p99_ms"] for r in rows], marker="o", label="rtml p99 ms")
    ax.set_xscale("log")
    ax.set_xlabel("customers")
    ax.set_ylabel(f"p99 ms at {rate:g} rps")
    ax2 = ax.twinx()
    ax2.plot(xs, [r["redis"]["used_memory"] / 2**20 for r in rows], marker="s", color="C1",
             label="Redis MiB")
    ax2.set_ylabel("Redis used_memory MiB")
    ax.set_ylim(bottom=0, top=max(r["rtml"]["p99_ms"] for r in rows) * 1.3)  # from zero: a
    ax2.set_ylim(bottom=0)  # 1 ms change must not look like a collapse
    fig.legend(loc="lower right", bbox_to_anchor=(0.86, 0.16))
    ax.set_title("rtml as customers grow")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
