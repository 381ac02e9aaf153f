"""What every results file records, so each number can be traced and a disturbed run recognised.

Every benchmark writes its JSON through `Recorder.write`, which adds one `meta` block:

- `git`: the commit and whether the tree differed from it (`dirty`, with the changed paths;
  results files and generated docs are not counted, the runs themselves rewrite those);
- `settings`: the serving and streaming settings in force (`RTML_*`, from `Settings`) and every
  `RTML_*` variable set in the environment (secrets masked); per-target overrides (batching, the
  stock set-up's on-demand mode, a backend) sit with each target's figures;
- `model`: the BentoML tag asked for and the version it resolved to;
- `machine`: cores, the 1-minute load average before and after, and per measured window the
  share of the machine's CPU used by *other* processes (`benchmarks.cpu`, measured from /proc);
- `command`: the command line.

**Discard rule**: a run in which other processes used more than `DISCARD_OTHERS_SHARE` (10%) of
the machine's CPU during any measured window is still written, with `"discarded": "<reason>"`,
and still listed in docs/runs.md. `of_record` is false for files written outside
benchmarks/results/ (smoke runs, tests).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.cpu import CpuWatch
from rtml.settings import REPO_ROOT, Settings

RESULTS = Path(__file__).resolve().parent / "results"
DISCARD_OTHERS_SHARE = 0.10
# Paths a benchmark run itself rewrites: they do not make the measured code differ.
GENERATED = ("benchmarks/results/", "docs/img/", "docs/runs.md")
SERVING_SETTINGS = ("serve_workers", "batching", "batch_max_size", "batch_max_latency_ms",
                    "model_backend", "cache", "cache_ttl_s", "max_inflight", "tracing",
                    "feature_timeout_ms", "model_timeout_ms", "model_tag")
STREAM_SETTINGS = ("stream_writer", "stream_snapshot_s", "stream_partitions",
                   "stream_allowed_lateness_s", "prediction_stream_maxlen",
                   "prediction_log_flush_ms")
_SECRET = re.compile(r"(password|passwd|token|secret|key|webhook)", re.I)


def git_state(root: Path = REPO_ROOT) -> dict[str, Any]:
    """Commit and dirtiness of the working tree (generated paths ignored)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout
    try:
        commit = git("rev-parse", "HEAD").strip()
        lines = git("status", "--porcelain", "--untracked-files=all").splitlines()
    except (OSError, subprocess.SubprocessError) as exc:
        return {"commit": None, "dirty": None, "error": str(exc)[:200]}
    changed = [ln[3:] for ln in lines if not ln[3:].startswith(GENERATED)]
    return {"commit": commit, "dirty": bool(changed), "dirty_paths": changed[:20]}


def _mask(name: str, value: str) -> str:
    if _SECRET.search(name):
        return "***"
    return re.sub(r"(password=)[^,]*", r"\1***", re.sub(r"//[^/@]*@", "//***@", value))


def settings_record(settings: Settings) -> dict[str, Any]:
    """The serving/streaming settings in force and the RTML_* variables set (masked)."""
    values = settings.model_dump()
    return {
        "serving": {k: values[k] for k in SERVING_SETTINGS},
        "streaming": {k: values[k] for k in STREAM_SETTINGS},
        "redis_address": _mask("redis_address", settings.redis_address),
        "env": {k: _mask(k, v) for k, v in sorted(os.environ.items()) if k.startswith("RTML_")},
    }


def model_record(tag: str) -> dict[str, Any]:
    """The tag asked for and the concrete version the BentoML store resolves it to now."""
    try:
        import bentoml

        from rtml.serving.card import load_card

        ref = bentoml.models.get(tag)
        card = load_card(ref)
        return {"asked": tag, "version": str(ref.tag), "feature_service": card.feature_service,
                "features": len(card.features),
                "onnx": ref.custom_objects.get("onnx") is not None}
    except Exception as exc:  # no model yet: say so in the file, do not fail the run
        return {"asked": tag, "version": None, "error": f"{type(exc).__name__}: {exc}"[:200]}


def load_1m() -> float | None:
    """The 1-minute load average (None where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def discard_reason(windows: dict[str, dict[str, Any]], *,
                   limit: float = DISCARD_OTHERS_SHARE) -> str | None:
    """Why a run does not count: the first measured window where others used > `limit`."""
    worst = max(windows.items(), key=lambda kv: kv[1].get("others_share", 0.0), default=None)
    if worst is None or worst[1].get("others_share", 0.0) <= limit:
        return None
    name, w = worst
    return (f"other processes used {w['others_share']:.0%} of the machine's CPU during "
            f"'{name}' (limit {limit:.0%})")


class Recorder:
    """Collects a run's metadata from start to `write`; `window()` marks what was measured."""

    def __init__(self, kind: str, settings: Settings, *, ports: tuple[int, ...] = (),
                 model: bool = True) -> None:
        self.kind, self.settings = kind, settings
        self.started = datetime.now(UTC)
        self.load_before = load_1m()
        self.cpu = CpuWatch()
        self.own_ports: dict[int, list[int]] = {}
        for port in (settings.redis_port, *ports):
            self.add_port(port)
        self.git = git_state(settings.repo_root if (settings.repo_root / ".git").exists()
                             else REPO_ROOT)
        self.model = model_record(settings.model_tag) if model else None

    def add_port(self, port: int) -> None:
        """Count the server listening on `port` (one we did not start) as part of the run."""
        if port not in self.own_ports:
            self.own_ports[port] = self.cpu.add_port(port)

    def window(self, name: str):
        """Context manager around one measurement (a target, a rate, a step, a phase)."""
        return self.cpu.window(name)

    def meta(self) -> dict[str, Any]:
        """The `meta` block (see the module docstring)."""
        return {
            "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
            "started_at": self.started.isoformat(timespec="seconds"),
            "git": self.git,
            "settings": settings_record(self.settings),
            "model": self.model,
            "machine": {
                "cores": os.cpu_count(),
                "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else os.cpu_count(),
                "python": platform.python_version(), "platform": platform.platform(),
                "load_1m_before": self.load_before, "load_1m_after": load_1m(),
                "own_servers_by_port": {str(k): v for k, v in self.own_ports.items()},
                "cpu_windows": self.cpu.windows,
                "others_share_max": max((w["others_share"] for w in self.cpu.windows.values()),
                                        default=None),
            },
        }

    def write(self, payload: dict[str, Any], *, out_dir: Path = RESULTS) -> Path:
        """`<out_dir>/<kind>-<UTC stamp>.json`: kind, status, meta, then the payload."""
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out = out_dir / f"{self.kind}-{stamp}.json"
        i = 2
        while out.exists():  # two results of one kind in the same second
            out, i = out_dir / f"{self.kind}-{stamp}-{i}.json", i + 1
        meta = self.meta()
        head: dict[str, Any] = {"kind": self.kind, "measured_at": stamp,
                                "of_record": out_dir.resolve() == RESULTS.resolve()}
        reason = payload.pop("discarded", None) or discard_reason(meta["machine"]["cpu_windows"])
        if reason:
            head["discarded"] = reason
        out.write_text(json.dumps({**head, "meta": meta, **payload}, indent=2, default=str)
                       + "\n")
        if reason:
            print(f"DISCARDED ({reason}): {out}", file=sys.stderr)
        return out
