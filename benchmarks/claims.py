"""Three README claims as measurements with results files (small and quick; after `make demo`).

    python -m benchmarks.claims writer     # direct Feast-layout writer vs FeatureStore.push
    python -m benchmarks.claims log        # Redis memory of the prediction log at its cap
    python -m benchmarks.claims monitor    # `rtml monitor run` over 1 M logged predictions
    python -m benchmarks.claims all

- **writer** ("7x cheaper"): the same rows for the streamed views' push sources, in micro-batches,
  through `rtml.features.writer.FeastRedisWriter` and through `FeatureStore.push`, each into an
  emptied Valkey the benchmark owns (on a free port, never the repo's Redis); µs per row both
  ways, median of `--repeat` alternating rounds, and their ratio.
- **log** ("about 190 MB for 250k entries"): real log entries are taken from a real
  `bentoml serve` scoring held-out transactions (its log pointed at a stream of its own, removed
  afterwards), then cycled through the service's own log code (`rtml.serving.predlog.PredictionLog`,
  `XADD ... MAXLEN ~ RTML_FRAUD__PREDICTION_STREAM_MAXLEN`) into an owned Valkey past the cap; the
  stream's `MEMORY USAGE` (every node sampled) and the server's used memory are reported.
- **monitor** ("1 M predictions in about 20 s"): 1 M predictions built from the same real entries
  (ids of real transactions, so labels join) are written as the drain writes them
  (`rtml.serving.predlog._write_parquet`) into a scratch repo root that links the repo's registry,
  model artifacts and labels; `rtml monitor run --model fraud` runs on it as a subprocess; its
  wall time and the run's own `seconds` are reported.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.record import RESULTS, Recorder
from rtml.redis import connect
from rtml.settings import Settings


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def owned_valkey() -> Iterator[Settings]:
    """An embedded Valkey on a free port with its data in a scratch folder; stopped afterwards."""
    from rtml.redis.embedded import start_embedded, stop_embedded

    with tempfile.TemporaryDirectory(prefix="rtml-claims-") as tmp:
        own = Settings(scenario="fraud", repo_root=Path(tmp),
                       redis_address=f"localhost:{free_port()}")
        start_embedded(own)
        try:
            yield own
        finally:
            stop_embedded(own)


def _push_rows(store: Any, n: int, seed: int) -> dict[str, tuple[str, list[tuple]]]:
    """Per push source of fraud's streamed views: (entity column, rows (entity, values, time)).

    Fraud's only: the repo also registers other scenarios' push sources (string keys, lists).
    """
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    fraud = {p.name for p in store.get_feature_service("fraud_model_v2").feature_view_projections}
    out = {}
    for view in store.list_feature_views():
        if view.name not in fraud or view.stream_source is None:
            continue
        (key,) = view.join_keys
        rows = []
        for i in range(n):
            values = {f.name: (int(rng.integers(0, 20)) if "count" in f.name
                               else float(rng.gamma(2.0, 30.0))) for f in view.features}
            rows.append((10_000_000 + i, values, now - timedelta(seconds=int(n - i))))
        out[view.stream_source.name] = (key, rows)
    return out


def writer(settings: Settings, *, rows: int, batch: int, repeat: int) -> dict[str, Any]:
    """µs per row: direct writer vs `FeatureStore.push`, same rows, same micro-batches."""
    from feast.data_source import PushMode

    from rtml.features.online import load_store
    from rtml.features.writer import FeastRedisWriter

    with owned_valkey() as own:
        store = load_store(Settings(scenario="fraud", repo_root=settings.repo_root,
                                    redis_address=own.redis_address))
        client = connect(own)
        data = _push_rows(store, rows, seed=0)
        direct = FeastRedisWriter(store, client)

        def via_direct(source: str, part: list[tuple]) -> None:
            direct.write(source, part)

        def via_push(source: str, part: list[tuple]) -> None:
            key = data[source][0]
            frame = pd.DataFrame([{key: e, "event_timestamp": t, **v} for e, v, t in part])
            store.push(source, frame, to=PushMode.ONLINE)

        per_row: dict[str, list[float]] = {"direct": [], "push": []}
        written: dict[str, int] = {}
        first_source, (_, first_rows) = next(iter(data.items()))
        for i in range(repeat):
            order = [("direct", via_direct), ("push", via_push)]
            for name, fn in order if i % 2 == 0 else order[::-1]:
                client.flushall()
                fn(first_source, first_rows[:batch])  # warm-up: registry and caches
                client.flushall()
                hset0 = client.info("commandstats").get("cmdstat_hset", {}).get("calls", 0)
                t0 = time.perf_counter()
                total = 0
                for source, (_, all_rows) in data.items():
                    for j in range(0, len(all_rows), batch):
                        fn(source, all_rows[j:j + batch])
                        total += len(all_rows[j:j + batch])
                per_row[name].append((time.perf_counter() - t0) / total * 1e6)
                written[name] = (client.info("commandstats").get("cmdstat_hset", {})
                                 .get("calls", 0) - hset0)
        client.close()
    direct_us = statistics.median(per_row["direct"])
    push_us = statistics.median(per_row["push"])
    return {"rows_per_round": rows * len(data), "push_sources": sorted(data),
            "batch_rows": batch, "rounds": repeat, "us_per_row": per_row,
            "rows_written": written, "direct_us_per_row": round(direct_us, 2),
            "push_us_per_row": round(push_us, 2), "push_over_direct": round(push_us / direct_us, 2)}


def main() -> int:
    """Run the chosen claim benchmarks; one results file each."""
    from benchmarks import claims_log

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("which", choices=["writer", "log", "monitor", "all"])
    p.add_argument("--rows", type=int, default=5000, help="writer: rows per push source")
    p.add_argument("--batch", type=int, default=500, help="writer: rows per write call")
    p.add_argument("--repeat", type=int, default=3, help="writer: alternating rounds")
    p.add_argument("--real", type=int, default=2000, help="log/monitor: real entries to take")
    p.add_argument("--entries", type=int, default=0,
                   help="log: entries to write (default 1.2 x the cap)")
    p.add_argument("--predictions", type=int, default=1_000_000, help="monitor: rows")
    p.add_argument("--results-dir", type=Path, default=RESULTS)
    p.add_argument("--service", default="bentos.fraud.service:FraudService",
                   help="log/monitor: the BentoML service that writes the real entries "
                        "(these claims are the fraud scenario's)")
    a = p.parse_args()
    settings = Settings(scenario="fraud")
    which = ["writer", "log", "monitor"] if a.which == "all" else [a.which]
    real: list[dict[str, str]] | None = None
    for name in which:
        rec = Recorder(f"claim-{name}", settings, model=name != "writer")
        with rec.window(name):
            if name == "writer":
                out = writer(settings, rows=a.rows, batch=a.batch, repeat=a.repeat)
            else:
                real = real or claims_log.real_entries(settings, a.real, service=a.service)
                out = (claims_log.log_memory(settings, real, entries=a.entries) if name == "log"
                       else claims_log.monitor_run(settings, real, rows=a.predictions))
        print(name, {k: v for k, v in out.items() if not isinstance(v, list | dict)})
        print(f"results: {rec.write(out, out_dir=a.results_dir)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
