"""The prediction-log claims: Redis memory at the stream's cap, and monitoring over 1 M rows.

Both start from real log entries — what `bentoml serve` logs for held-out transactions — so the
sizes are the service's, not a guess (see `benchmarks.claims` for what each measures).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import servers
from benchmarks.claims import free_port, owned_valkey
from benchmarks.load import run_load, sample_requests
from benchmarks.stock_odfv import feast_yaml
from rtml.redis import connect, connect_async
from rtml.settings import Settings

CHUNK = 50_000  # rows per parquet part, as `rtml log drain` reads them


def real_entries(settings: Settings, n: int, *, service: str) -> list[dict[str, str]]:
    """`n` log entries written by a real `bentoml serve` to a stream of its own (then removed)."""
    stream = f"rtml:predictions:claims-{os.getpid()}"
    env = {"RTML_FRAUD__PREDICTION_STREAM": stream}
    client = connect(settings)
    with servers.rtml_server(settings, service=service, port=free_port(), env=env) as url:
        asyncio.run(run_load(url, sample_requests(settings, n, seed=7), rate=200.0,
                             label="real log entries"))
        # The log flushes in the background every RTML_PREDICTION_LOG_FLUSH_MS; a loaded
        # machine can take longer than one fixed pause.
        deadline = time.monotonic() + 10
        while client.xlen(stream) < n and time.monotonic() < deadline:
            time.sleep(0.1)
    try:
        entries = [{k.decode(): v.decode() for k, v in fields.items()}
                   for _, fields in client.xrange(stream)]
    finally:
        client.delete(stream)
        client.close()
    if len(entries) < n:
        raise RuntimeError(f"the service logged {len(entries)} of {n} requests")
    return entries


def log_memory(settings: Settings, real: list[dict[str, str]], *, entries: int = 0
               ) -> dict[str, Any]:
    """Fill a stream past its cap through `PredictionLog`; its memory, per entry and at the cap."""
    from rtml.serving.predlog import PredictionLog

    cap = settings.prediction_stream_maxlen
    total = entries or int(cap * 1.2)
    with owned_valkey() as own:
        sync = connect(own)
        used_before = int(sync.info("memory")["used_memory"])

        async def fill() -> int:
            client = connect_async(own)
            log = PredictionLog(client=client, stream=settings.prediction_stream, maxlen=cap,
                                flush_ms=settings.prediction_log_flush_ms)
            for i in range(total):
                entry = dict(real[i % len(real)])
                entry["request_id"] = f"{i:032x}"  # unique, as the service's uuid4().hex
                log.append(entry)
                if i % 5000 == 4999 or i == total - 1:
                    while log.written < i + 1:  # the service's own background flush
                        await asyncio.sleep(0.01)
            await client.aclose()
            return log.written

        written = asyncio.run(fill())
        length = int(sync.xlen(settings.prediction_stream))
        usage = int(sync.memory_usage(settings.prediction_stream, samples=0))
        used_after = int(sync.info("memory")["used_memory"])
        sync.close()
    per_entry = usage / length
    return {"cap": cap, "written": written, "stream_length": length,
            "real_entries": len(real), "memory_usage_bytes": usage,
            "bytes_per_entry": round(per_entry, 1),
            "mb_at_cap": round(per_entry * cap / 1e6, 1),
            "mib_at_cap": round(per_entry * cap / 2**20, 1),
            "used_memory_delta_mb": round((used_after - used_before) / 1e6, 1),
            "entry_fields": sorted(real[0])}


def _scratch_root(settings: Settings, root: Path) -> None:
    """A repo root for the monitor: this repo's registry, model artifacts and labels, linked."""
    shutil.copy(feast_yaml(settings), root / "feature_store.yaml")
    (root / "artifacts").symlink_to(settings.artifacts_dir)
    (root / "data" / "labels").parent.mkdir(parents=True, exist_ok=True)
    if settings.labels_path.parent.exists():
        (root / "data" / "labels").symlink_to(settings.labels_path.parent)


def write_predictions(settings: Settings, real: list[dict[str, str]], out_dir: Path, *,
                      rows: int, days: float = 6.0, seed: int = 0) -> float:
    """`rows` predictions over the last `days`, as `rtml log drain` writes them; seconds taken."""
    from rtml.serving.predlog import _write_parquet

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    tx_ids = pd.read_parquet(settings.raw_dir / "transactions.parquet",
                             columns=["transaction_id"])["transaction_id"].to_numpy()
    now = datetime.now(UTC) - timedelta(minutes=1)
    offsets = np.sort(rng.uniform(0, days * 86400, rows))[::-1]  # oldest first
    templates = []
    for e in real:
        logged = datetime.fromisoformat(e["logged_at"]).timestamp()
        times = json.loads(e.get("feature_event_times") or "{}")
        templates.append(({k.encode(): v.encode() for k, v in e.items()}, logged, times))
    for start in range(0, rows, CHUNK):
        batch = []
        for i in range(start, min(rows, start + CHUNK)):
            fields, logged, times = templates[i % len(templates)]
            at = now.timestamp() - offsets[i]
            row = dict(fields)
            stamp = datetime.fromtimestamp(at, UTC).isoformat()
            row[b"logged_at"] = row[b"event_timestamp"] = stamp.encode()
            row[b"transaction_id"] = f"tx-{tx_ids[i % len(tx_ids)]}".encode()
            row[b"request_id"] = f"{i:032x}".encode()
            if times:  # feature ages as the real entry had them, at the new instant
                shifted = {k: v + (at - logged) for k, v in times.items()}
                row[b"feature_event_times"] = json.dumps(shifted, separators=(",", ":")).encode()
            batch.append((f"{int(at * 1000)}-{i}".encode(), row))
        _write_parquet(batch, out_dir)
    return time.perf_counter() - t0


def monitor_run(settings: Settings, real: list[dict[str, str]], *, rows: int) -> dict[str, Any]:
    """`rtml monitor run --model fraud` over `rows` predictions in a scratch repo root."""
    with tempfile.TemporaryDirectory(prefix="rtml-claims-monitor-") as tmp:
        root = Path(tmp)
        _scratch_root(settings, root)
        scratch = Settings(scenario="fraud", repo_root=root)
        write_s = write_predictions(settings, real, scratch.predictions_dir, rows=rows)
        env = {**os.environ, "RTML_REPO_ROOT": str(root),
               "RTML_REDIS_ADDRESS": settings.redis_address}
        cmd = [str(Path(sys.executable).parent / "rtml"), "monitor", "run", "--model", "fraud"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=settings.repo_root, capture_output=True,
                              text=True, timeout=1800)
        wall = time.perf_counter() - t0
        latest = root / "reports" / "fraud" / "latest.json"
        if proc.returncode == 2 or not latest.exists():
            raise RuntimeError(f"rtml monitor run could not run ({proc.returncode}):\n"
                               f"{proc.stderr[-2000:]}")
        summary = json.loads(latest.read_text())
    return {"predictions": rows, "real_entries": len(real), "write_parquet_s": round(write_s, 1),
            "monitor_wall_s": round(wall, 1), "monitor_seconds": summary["seconds"],
            "exit_status": proc.returncode, "status": summary["status"],
            "failed_checks": summary["failed_checks"], "summary_predictions":
            summary["predictions"], "labels": summary["labels"],
            "sample_rows": settings.monitor_sample_rows}
