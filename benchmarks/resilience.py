"""What the outage, overload and soak benchmarks share: a Redis of their own, a timed driver, RSS.

- `own_redis`: a Valkey on a free port (the embedded server's code), holding a copy of every key
  of the configured Redis (SCAN + DUMP/RESTORE, read only on the source), which the benchmark may
  kill (SIGKILL) and restart (its append-only file brings the features back). :6379 or whatever
  the settings name is never stopped.
- `drive`: open-loop load like `benchmarks.load` (request i is due at i/rate, its latency counts
  from then), dispatched as it falls due so a ten-minute run holds no million tasks, with
  timed actions (kill, restart, sample) run in a thread beside it; every answer is kept: status,
  fallback flag and reason, `Retry-After`, due and done times.
- `group_rss_mb`: resident memory of a process group (a service and its workers, a flow).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from benchmarks.load import percentiles
from benchmarks.servers import Ports
from rtml.redis import connect
from rtml.redis.embedded import embedded_pid, start_embedded, stop_embedded
from rtml.settings import Settings

COPY_BATCH = 500


@dataclass
class Answer:
    """One request as the client saw it; times in seconds from the run's start."""

    due: float
    done: float
    status: int | str  # HTTP status, or the client error's name
    fallback: bool | None = None  # None: not a 200 (no decision)
    reason: str | None = None
    retry_after: str | None = None
    sent: float | None = None  # when the client got round to sending it

    @property
    def latency_ms(self) -> float:
        """From when it was due (open loop), not from when the client got round to it."""
        return (self.done - self.due) * 1000

    @property
    def service_ms(self) -> float:
        """From when it was sent: without the generator's own lag (a busy client)."""
        return (self.done - (self.sent if self.sent is not None else self.due)) * 1000

    @property
    def decision(self) -> bool:
        """A 200 with a decision in it: the only answer that is not a failure here."""
        return self.status == 200 and self.fallback is not None


@dataclass
class Run:
    """A driven run: every answer, and when each action started and ended."""

    answers: list[Answer]
    marks: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (start, end)
    results: dict[str, Any] = field(default_factory=dict)  # name -> what the action returned
    elapsed_s: float = 0.0


def payload(body: dict[str, Any]) -> dict[str, Any]:
    """A request body without the sample's private `_` fields."""
    return {k: v for k, v in body.items() if not k.startswith("_")}


async def _fire(session: aiohttp.ClientSession, url: str, body: dict[str, Any], due: float,
                t0: float, out: list[Answer]) -> None:
    status: int | str
    fallback = reason = retry = None
    sent = time.perf_counter() - t0
    try:
        async with session.post(url, json=body) as resp:
            status = resp.status
            retry = resp.headers.get("Retry-After")
            data = await resp.json(content_type=None)
            if status == 200 and isinstance(data, dict) and "fallback" in data:
                fallback, reason = bool(data["fallback"]), data.get("fallback_reason")
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
        status = type(exc).__name__
    out.append(Answer(due=due, done=time.perf_counter() - t0, status=status, fallback=fallback,
                      reason=reason, retry_after=retry, sent=sent))


async def _act(name: str, fn: Callable[[], Any], t0: float, run: Run) -> None:
    start = time.perf_counter() - t0
    run.results[name] = await asyncio.to_thread(fn)
    run.marks[name] = (start, time.perf_counter() - t0)


async def _drive(url: str, pool: list[dict[str, Any]], *, rate: float, duration_s: float,
                 path: str,
                 actions: list[tuple[float, str, Callable[[], Any]]], timeout_s: float,
                 progress: Callable[[Run, float], None] | None) -> Run:
    run = Run(answers=[])
    target = url.rstrip("/") + path
    bodies = [payload(b) for b in pool]
    n = int(rate * duration_s)
    connector = aiohttp.TCPConnector(limit=200, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        t0 = time.perf_counter() + 0.05
        pending: set[asyncio.Task] = set()
        todo = sorted(actions, key=lambda a: a[0])
        next_tick = 1.0
        for i in range(n):
            due = i / rate
            while todo and todo[0][0] <= due:
                _, name, fn = todo.pop(0)
                pending.add(asyncio.create_task(_act(name, fn, t0, run)))
            delay = t0 + due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(_fire(session, target, bodies[i % len(bodies)], due, t0,
                                             run.answers))
            pending.add(task)
            task.add_done_callback(pending.discard)
            if progress is not None and due >= next_tick:
                progress(run, due)
                next_tick += 1.0
        for _, name, fn in todo:  # actions due after the last request still run
            pending.add(asyncio.create_task(_act(name, fn, t0, run)))
        await asyncio.gather(*pending)
        run.elapsed_s = time.perf_counter() - t0
    run.answers.sort(key=lambda a: a.due)
    return run


def drive(url: str, pool: list[dict[str, Any]], *, rate: float, duration_s: float,
          actions: list[tuple[float, str, Callable[[], Any]]] = (),  # type: ignore[assignment]
          path: str = "/score", timeout_s: float = 10.0,
          progress: Callable[[Run, float], None] | None = None) -> Run:
    """POST bodies of `pool` (cycled) to `url` + `path` at `rate`/s for `duration_s`.

    An action `(at_s, name, fn)` runs `fn()` in a thread once the request due at `at_s` is
    sent; its start and end land in `marks[name]`, its return value in `results[name]`. No
    cyclic GC in the driver while the clock runs (see `benchmarks.load.run_load`).
    """
    gc.collect()
    gc.disable()
    try:
        return asyncio.run(_drive(url, pool, rate=rate, duration_s=duration_s, path=path,
                                  actions=list(actions), timeout_s=timeout_s, progress=progress))
    finally:
        gc.enable()


def print_progress(run: Run, now: float) -> None:
    """One carriage-return line: answers so far, failures, fallbacks, 503s."""
    a = run.answers
    failed = sum(1 for x in a if not x.decision and x.status != 503)
    print(f"\r  {now:6.1f}s  {len(a)} answered, {failed} failed, "
          f"{sum(1 for x in a if x.fallback)} fallbacks, "
          f"{sum(1 for x in a if x.status == 503)} shed   ", end="", flush=True)


def latency(answers: list[Answer], *, from_send: bool = False) -> dict[str, float]:
    """p50 … max of these answers' open-loop latencies, or from when each was sent (ms)."""
    return percentiles([a.service_ms if from_send else a.latency_ms for a in answers])


def statuses(answers: list[Answer]) -> dict[str, int]:
    """Answers per HTTP status (or client error)."""
    out: dict[str, int] = {}
    for a in answers:
        out[str(a.status)] = out.get(str(a.status), 0) + 1
    return out


# --- a Redis of the benchmark's own ------------------------------------------------------------


def copy_keys(source: Any, target: Any, *, batch: int = COPY_BATCH) -> int:
    """Every key of `source` into `target` (DUMP/RESTORE with TTLs, in pipelined batches)."""
    keys: list[bytes] = []
    copied = 0

    def flush() -> int:
        with source.pipeline(transaction=False) as p:
            for k in keys:
                p.dump(k)
                p.pttl(k)
            got = p.execute()
        with target.pipeline(transaction=False) as p:
            for k, blob, ttl in zip(keys, got[::2], got[1::2], strict=True):
                if blob is not None:
                    p.restore(k, max(int(ttl), 0), blob, replace=True)
            p.execute()
        return len(keys)

    for key in source.scan_iter(count=1000):
        keys.append(key)
        if len(keys) >= batch:
            copied += flush()
            keys.clear()
    if keys:
        copied += flush()
    return copied


@dataclass
class OwnRedis:
    """The benchmark's Valkey: its settings (address, data folder) and kill / restart."""

    settings: Settings
    keys: int

    @property
    def address(self) -> str:
        """`127.0.0.1:<port>`."""
        return self.settings.redis_address

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save; connections drop at once."""
        pid = embedded_pid(self.settings)
        if pid is None:
            raise RuntimeError(f"own Valkey at {self.address} is not running")
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)  # ours: reap it, or it lingers as a zombie that "still runs"

    def restart(self) -> float:
        """Start it again on the same port and data (append-only file); when PING answers."""
        start_embedded(self.settings, timeout_s=30)
        return time.perf_counter()


@contextlib.contextmanager
def own_redis(source: Settings, *, root: Path | None = None) -> Iterator[OwnRedis]:
    """A Valkey on a free port with a copy of `source`'s keys; stopped (and removed) on exit."""
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rtml-own-")))
        own = source.model_copy(update={"repo_root": root,
                                        "redis_address": f"127.0.0.1:{Ports().take()}"})
        start_embedded(own)
        stack.callback(stop_embedded, own)
        src, dst = connect(source, role="cli"), connect(own, role="cli")
        try:
            keys = copy_keys(src, dst)
        finally:
            src.close()
            dst.close()
        yield OwnRedis(settings=own, keys=keys)


# --- memory of a process group -----------------------------------------------------------------


def group_rss_mb(pgid: int) -> float:
    """Resident memory (MB) summed over the processes of group `pgid` (from /proc)."""
    total_kb = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # Field 5 (pgrp) comes after the command name in parentheses, which may hold spaces.
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total_kb / 1024


def spread(values: list[float]) -> dict[str, float]:
    """min, median, max of a list (empty: {})."""
    if not values:
        return {}
    v = np.asarray(values, dtype=np.float64)
    return {"min": float(v.min()), "median": float(np.median(v)), "max": float(v.max())}
