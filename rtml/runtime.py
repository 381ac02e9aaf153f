"""Process groups, readiness waits, `bentoml serve`, flows: what the CLI, demo and tests start.

Every long-running piece (a BentoML service, a Bytewax flow, a benchmark's server) runs in a
process group of its own, so stopping it stops its workers too; a start is over only when the
piece answers, or fails with its log's tail. One copy of this for the CLI, the demo, the
benchmarks and the tests, for any scenario: the service and flow are dotted paths the caller
takes from the scenario registry.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from rtml.settings import Settings

BIN = Path(sys.executable).parent


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

    `refused`: a 503 whose body names a `reason` (a service's /readyz) is final, so say it at
    once instead of waiting out the timeout.
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


def start_group(cmd: list[str], *, log: Path, cwd: Path, env: dict[str, str] | None = None
                ) -> subprocess.Popen:
    """Start `cmd` in a new process group, stdout and stderr to `log`; `env` over os.environ."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, **(env or {})})


@contextlib.contextmanager
def process(name: str, cmd: list[str], *, ready_url: str, log: Path, cwd: Path,
            env: dict[str, str] | None = None, timeout_s: float = 120.0, refused: bool = False,
            error: type[Exception] = RuntimeError) -> Iterator[str]:
    """Run `cmd` until `ready_url` answers 200; yield it; stop the group whatever happens."""
    proc = start_group(cmd, log=log, cwd=cwd, env=env)
    try:
        wait_ready(proc, ready_url, timeout_s=timeout_s, name=name, log=log, refused=refused,
                   error=error)
        yield ready_url
    finally:
        stop_group(proc)


def serve_command(service: str, *, port: int, host: str | None = "127.0.0.1",
                  bentoml: str | None = None) -> list[str]:
    """The `bentoml serve <service>` line (`service` as `module:Class`, from the registry)."""
    cmd = [bentoml or str(BIN / "bentoml"), "serve", service, "--port", str(port)]
    return cmd + ["--host", host] if host else cmd


@contextlib.contextmanager
def bentoml_serve(settings: Settings, service: str, *, port: int, log: Path,
                  env: dict[str, str] | None = None, timeout_s: float = 120.0,
                  name: str = "bentoml serve", refused: bool = True,
                  error: type[Exception] = RuntimeError) -> Iterator[str]:
    """`bentoml serve` a service from the repo root on `port`; yield its URL once /readyz is 200.

    The child gets this process's `RTML_REDIS_ADDRESS` (the embedded server may have moved it),
    then `env` on top.
    """
    url = f"http://127.0.0.1:{port}"
    with process(name, serve_command(service, port=port), ready_url=f"{url}/readyz", log=log,
                 cwd=settings.repo_root, timeout_s=timeout_s, refused=refused, error=error,
                 env={"RTML_REDIS_ADDRESS": settings.redis_address, **(env or {})}):
        yield url


def flow_command(settings: Settings, flow: str, *, name: str | None = None, workers: int = 1,
                 process_id: int | None = None, addresses: str | None = None,
                 say: Callable[[str], None] | None = None) -> list[str]:
    """The `python -m bytewax.run` line for a flow (`"module:get_flow()"`, from the registry).

    Its recovery store is the one of the online store at `RTML_REDIS_ADDRESS`
    (`rtml.features.online_store.recovery_dir`) for this flow (`name`, default: the settings'
    scenario), initialised when new.
    """
    from rtml.features.online_store import recovery_dir
    from rtml.redis import connect

    recovery = recovery_dir(settings.state_dir, connect(settings),
                            flow=name or settings.scenario or "default",
                            say=say or (lambda m: print(m, file=sys.stderr)))
    cmd = [sys.executable, "-m", "bytewax.run", flow,
           "-r", str(recovery), "-s", f"{settings.stream_snapshot_s:g}", "-b", "0",
           "-w", str(workers)]
    if process_id is not None and addresses:
        cmd += ["-i", str(process_id), "-a", addresses]
    return cmd
