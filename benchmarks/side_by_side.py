"""naive vs stock vs rtml vs floor in one run: same data, model, request sample and rate.

    rtml bench side-by-side --rate 200 --duration 30      # after `make demo`'s setup

Targets run one after another (never together: they would share the cores), each after a short
warm-up at the same rate. The harness starts what it needs and stops it afterwards: Postgres must
already run (`naive`); `feast serve` and our thin model service (`stock`); `bentoml serve` for
`rtml` unless a service already answers at --url. `floor` is an in-process loop.

`stock` runs once per on-demand view mode in `stock_modes` (`stock-pandas`, `stock-python`:
`feast serve` computing the request-time view with DataFrames or with plain lists); the report
names the better one (fewest errors, then lowest p99) as *the* stock figure, both are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import servers
from benchmarks.load import DEFAULT_SKEW, run_load, sample_requests, table
from benchmarks.naive_server import DEFAULT_DSN, load_transactions, table_name
from benchmarks.record import RESULTS, Recorder
from benchmarks.stock_odfv import MODES
from rtml.settings import Settings

TARGETS = ("naive", "stock", "rtml", "floor")
DOCS_HIST = Path(__file__).resolve().parent.parent / "docs" / "img" / "side-by-side.png"


class PostgresUnavailable(RuntimeError):
    """Postgres did not answer at the DSN the naive target needs."""


def check_postgres(dsn: str) -> None:
    """Raise `PostgresUnavailable` with one line: what was tried and how to get one."""
    import psycopg

    from benchmarks.naive_server import ensure_database

    try:
        ensure_database(dsn)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PostgresUnavailable(
            f"naive: no Postgres at {dsn!r} ({first}); start one (`sudo service postgresql "
            "start`, or `docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust "
            "postgres:15`), pass --pg-dsn, or leave it out: --targets stock,rtml,floor") from None


def ratios(rows: dict[str, dict[str, Any]], *, against: str = "rtml") -> dict[str, dict]:
    """Per target {p50, p99}: the target's latency divided by `against`'s (>1: slower than it)."""
    base = rows.get(against)
    if base is None:
        return {}
    out = {}
    for name, r in rows.items():
        out[name] = {p: (r["latency_ms"][p] / base["latency_ms"][p]
                         if base["latency_ms"].get(p) else None) for p in ("p50", "p99")}
    return out


def best_stock(rows: dict[str, dict[str, Any]]) -> str | None:
    """The better measured stock variant: fewest errors, then lowest p99 (None: none ran)."""
    stock = {k: r for k, r in rows.items() if k.startswith("stock")}
    if not stock:
        return None
    return min(stock, key=lambda k: (sum(stock[k]["errors"].values()),
                                     stock[k]["latency_ms"].get("p99", float("inf"))))


def ratio_table(rows: dict[str, dict[str, Any]], *, against: str = "rtml",
                best: str | None = None) -> str:
    """Markdown: p50/p99 per target and as a multiple of `against`'s; `best` is marked."""
    rat = ratios(rows, against=against)
    lines = [f"| target | p50 ms | p99 ms | p50 × {against} | p99 × {against} |",
             "|---|---|---|---|---|"]
    for name, r in rows.items():
        lat = r["latency_ms"]
        rr = rat.get(name, {})
        cells = [f"{rr[p]:.2f}×" if rr.get(p) is not None else "–" for p in ("p50", "p99")]
        label = f"{name} (better stock)" if name == best else name
        lines.append(f"| {label} | {lat['p50']:.3f} | {lat['p99']:.3f} | {cells[0]} "
                     f"| {cells[1]} |")
    return "\n".join(lines)


def prepare_naive(settings: Settings, dsn: str) -> str:
    """Postgres answers and holds this dataset's indexed table; returns the table's name."""
    check_postgres(dsn)
    parquet = settings.raw_dir / "transactions.parquet"
    table = table_name(parquet)
    n = load_transactions(dsn, parquet, table)
    print(f"naive: {n:,} transactions in Postgres table {table} "
          "(indexes on (customer_id, ts) and (terminal_id, ts))")
    return table


def pg_port(dsn: str) -> int | None:
    """The DSN's port when Postgres runs on this machine (its CPU is then part of the run)."""
    import psycopg

    params = psycopg.conninfo.conninfo_to_dict(dsn)
    if params.get("host", "localhost") not in ("localhost", "127.0.0.1", "::1", ""):
        return None
    return int(params.get("port") or 5432)


def url_port(url: str) -> int:
    """The port of an http://host:port URL."""
    return int(url.split("//", 1)[-1].split("/", 1)[0].rsplit(":", 1)[1])


@contextlib.contextmanager
def target_server(name: str, settings: Settings, *, url: str, ports: servers.Ports, dsn: str,
                  table: str, rec: Recorder | None = None,
                  server: dict[str, Any] | None = None, service: str = "") -> Iterator[str]:
    """The URL of target `name`, its servers started for the block (rtml: reused at `url`).

    `name` is naive, rtml or stock-<mode>. `server` receives how the target was set up.
    `service`: the BentoML service rtml starts (the scenario's, from the registry).
    """
    server = {} if server is None else server
    if name == "naive":
        server.update(pg_table=table, connections=4)
        with servers.naive_server(settings, dsn=dsn, table=table, port=ports.take()) as u:
            yield u
    elif name.startswith("stock"):
        mode = name.partition("-")[2] or "pandas"
        server.update(odfv_mode=mode)
        with servers.stock_server(settings, feast_port=ports.take(), port=ports.take(),
                                  mode=mode) as u:
            yield u
    elif name == "rtml" and servers.answers(url):
        print(f"  rtml: using the service already answering at {url}")
        server.update(reused=url, note="its settings may differ from this environment's")
        if rec is not None:
            rec.add_port(url_port(url))
        yield url
    else:
        server.update(reused=None, started="bentoml serve with this environment's settings")
        if not service:
            raise ValueError("target rtml: no service to start (pass the scenario's service)")
        with servers.rtml_server(settings, service=service, port=ports.take()) as u:
            yield u


def expand(targets: list[str], stock_modes: list[str]) -> list[str]:
    """Targets in run order, `stock` as one `stock-<mode>` per on-demand view mode."""
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise ValueError(f"--targets: unknown {unknown}; known: {', '.join(TARGETS)}")
    bad = [m for m in stock_modes if m not in MODES]
    if bad or not stock_modes:
        raise ValueError(f"--stock-modes: {bad or 'none'}; known: {', '.join(MODES)}")
    out: list[str] = []
    for t in targets:
        out += [f"stock-{m}" for m in stock_modes] if t == "stock" else [t]
    return out


def run(settings: Settings, *, targets: list[str], rate: float, duration: float,
        url: str = "http://127.0.0.1:3000", skew: float = DEFAULT_SKEW, dsn: str = DEFAULT_DSN,
        port_base: int = 0, out_dir: Path = RESULTS, hist: Path | None = DOCS_HIST,
        warmup_s: float = 2.0, stock_modes: tuple[str, ...] = MODES, service: str = "") -> int:
    """Each target in turn; the tables, the ratios, results JSON and histogram. Exit status.

    `service`: the BentoML service of the scenario, started for rtml when none answers at `url`.
    """
    names = expand(targets, list(stock_modes))
    table_ = prepare_naive(settings, dsn) if "naive" in names else ""
    port = pg_port(dsn) if "naive" in names else None
    rec = Recorder("side-by-side", settings, ports=(port,) if port else ())
    reqs = sample_requests(settings, max(1, int(rate * duration)), seed=0, skew=skew)
    warm = sample_requests(settings, max(1, int(rate * warmup_s)), seed=99, skew=skew)
    ports = servers.Ports(port_base)
    rows: dict[str, dict[str, Any]] = {}
    for name in names:
        if name == "floor":
            from benchmarks.floor import measure_floor

            print(f"  floor: in-process Redis read + model, {duration:g}s back to back")
            with rec.window(name):
                rows[name] = measure_floor(settings, reqs, duration_s=duration)
            rows[name]["server"] = {"in_process": True}
            continue
        server: dict[str, Any] = {}
        with target_server(name, settings, url=url, ports=ports, dsn=dsn, table=table_,
                           rec=rec, server=server, service=service) as u:
            asyncio.run(run_load(u, warm, rate=rate, progress=False))
            with rec.window(name):
                rows[name] = asyncio.run(run_load(u, reqs, rate=rate,
                                                  label=f"{name} {rate:g} rps"))
        rows[name].update(label=name, server=server)
    best = best_stock(rows)
    print()
    print(table(list(rows.values()), first="target"))
    print()
    print(ratio_table(rows, best=best))
    out = rec.write({
        "rate_rps": rate, "duration_s": duration, "skew": skew, "targets": rows,
        "stock_best": best, "ratios_vs_rtml": ratios(rows), "pg_table": table_ or None},
        out_dir=out_dir)
    if hist is not None:
        from benchmarks.report import plot_histograms

        plot_histograms({k: v["histogram"] for k, v in rows.items()}, hist,
                        title=f"/score latency at {rate:g} rps (floor: in-process, per call)")
        print(f"histogram: {hist}")
    print(f"results: {out}")
    failed = [k for k, v in rows.items() if v["errors"] or not v["requests"]]
    if failed:
        print(f"errors from: {', '.join(failed)}")
    return 1 if failed else 0
