"""Who used the machine's CPU during a measurement: this benchmark's processes, or others.

A latency or throughput figure taken while another process was busy on the same cores measures
that process too. So every measured window records, from the kernel's own counters (Linux
`/proc`, in clock ticks), the CPU time the whole machine spent busy (`/proc/stat`) and the time
this benchmark's processes spent (`/proc/<pid>/stat`); the difference is what others used.

*Our* processes are this one and all its descendants (the servers a harness starts, their
workers), plus the servers it talks to that it did not start, found by the port they listen on
(Redis, Postgres, a service already running at `--url`) and their descendants (Postgres's
backends). A process counts with `cutime`/`cstime`, the time of its children it has reaped, so a
server stopped inside the window is still counted (in its parent). Two snapshots per window,
none inside it: nothing here runs while the clock of a measurement runs.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROC = Path("/proc")
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def machine_ticks(proc: Path = PROC) -> dict[str, int]:
    """The aggregate `cpu` line of /proc/stat: ticks per state since boot, all cores."""
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    with open(proc / "stat") as f:
        parts = f.readline().split()
    assert parts[0] == "cpu", parts[0]
    return {n: int(v) for n, v in zip(names, parts[1:], strict=False)}


def _stat(pid: int, proc: Path = PROC) -> tuple[int, int] | None:
    """(ppid, ticks of the process and its reaped children), None when it is gone."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    rest = text.rsplit(")", 1)[1].split()  # fields from 3 (state) on; comm may hold spaces
    ppid = int(rest[1])
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])  # fields 14-17
    return ppid, utime + stime + cutime + cstime


def _all_pids(proc: Path = PROC) -> list[int]:
    return [int(p.name) for p in proc.iterdir() if p.name.isdigit()]


def descendants(roots: set[int], proc: Path = PROC) -> dict[int, int]:
    """Ticks per pid for `roots` and every process below them."""
    stats = {pid: s for pid in _all_pids(proc) if (s := _stat(pid, proc)) is not None}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[int, int] = {}
    todo = [r for r in roots if r in stats]
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out[pid] = stats[pid][1]
        todo += children.get(pid, [])
    return out


def listening_pids(port: int, proc: Path = PROC) -> set[int]:
    """Processes holding a socket that listens on TCP `port` (any address, IPv4 or IPv6)."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(proc / "net" / table) as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                    inodes.add(cols[9])
    if not inodes:
        return set()
    wanted = {f"socket:[{i}]" for i in inodes}
    pids = set()
    for pid in _all_pids(proc):
        with contextlib.suppress(OSError):
            for fd in (proc / str(pid) / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        pids.add(pid)
                        break
    return pids


@dataclass
class Snapshot:
    """The machine's ticks and our processes' ticks at one instant."""

    machine: dict[str, int]
    ours: dict[int, int]


def snapshot(roots: set[int], proc: Path = PROC) -> Snapshot:
    """Both counters now (the machine's first: our scan's own time then counts as ours)."""
    return Snapshot(machine=machine_ticks(proc), ours=descendants(roots, proc))


def usage(start: Snapshot, end: Snapshot) -> dict[str, Any]:
    """Shares of the machine's capacity over the window: busy, ours, others, steal, irq.

    Capacity is every tick of every core (idle included). Busy is user + nice + system time;
    others = busy - ours (never below 0). Interrupt and steal time are reported apart: the kernel
    charges them to no process, and loopback traffic of our own shows up as softirq.
    """
    d = {k: end.machine.get(k, 0) - start.machine.get(k, 0) for k in end.machine}
    capacity = sum(d.values())
    busy = d["user"] + d["nice"] + d["system"]
    # A process of ours that ended inside the window was reaped by its parent (one of ours), so
    # its final ticks are in that parent's cutime/cstime at the end: plain totals balance.
    ours = max(0, sum(end.ours.values()) - sum(start.ours.values()))
    if capacity <= 0:
        return {"seconds": 0.0, "busy_share": 0.0, "ours_share": 0.0, "others_share": 0.0,
                "steal_share": 0.0, "irq_share": 0.0, "ours_cpu_s": 0.0, "others_cpu_s": 0.0}
    return {
        "seconds": round(capacity * TICK_S / max(1, _cores()), 2),
        "ours_cpu_s": round(ours * TICK_S, 2),
        "others_cpu_s": round(max(0, busy - ours) * TICK_S, 2),
        "busy_share": round(busy / capacity, 4),
        "ours_share": round(min(ours, busy) / capacity, 4),
        "others_share": round(max(0, busy - ours) / capacity, 4),
        "steal_share": round(d.get("steal", 0) / capacity, 4),
        "irq_share": round((d.get("irq", 0) + d.get("softirq", 0)) / capacity, 4),
    }


def _cores() -> int:
    return os.cpu_count() or 1


@dataclass
class CpuWatch:
    """Measured windows of CPU use; `roots` are the processes counted as ours (see module doc)."""

    roots: set[int] = field(default_factory=lambda: {os.getpid()})
    windows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_port(self, port: int) -> list[int]:
        """Count the processes listening on `port` (and their descendants) as ours."""
        pids = sorted(listening_pids(port))
        self.roots.update(pids)
        return pids

    @contextlib.contextmanager
    def window(self, name: str):
        """Measure CPU use over the block; recorded under `name` (repeated names get a suffix)."""
        start = snapshot(self.roots)
        try:
            yield
        finally:
            key, i = name, 2
            while key in self.windows:
                key, i = f"{name} ({i})", i + 1
            self.windows[key] = usage(start, snapshot(self.roots))
