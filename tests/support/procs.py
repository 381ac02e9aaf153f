"""Processes for integration tests: ports, CLI runs, `bentoml serve`.

The real stack for integration tests, built once per session in a sandbox copy of the repo.

A Valkey of the tests' own on a free port (started by rtml's embedded-server code, so the fault
test may stop it without touching the shared Redis on :6379), the real `feast` CLI for apply and
materialize, `rtml` for data, features and training, and a real `bentoml serve`.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rtml.cli.scenarios import FRAUD
from rtml.runtime import serve_command, stop_group
from rtml.settings import REPO_ROOT

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 300) -> str:
    """Run a CLI command; fail the test with its output when it fails."""
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n"
                    f"{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr


@contextlib.contextmanager
def bentoml_serve(env: dict[str, str], *, want_ready: bool = True,
                  timeout_s: float = 300, service: str = FRAUD.service) -> Iterator[str]:
    """`bentoml serve` a service (the fraud one unless told) on a free port; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(env["RTML_REPO_ROOT"]) / f"serve-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            serve_command(service, port=port),
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            assert proc.poll() is None, f"bentoml serve died:\n{log.read_text()[-3000:]}"
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"{url}/readyz", timeout=1)
                if r.status_code == 200 or (not want_ready and r.status_code == 503):
                    break
            assert time.monotonic() < deadline, f"no /readyz in {timeout_s}s:\n{log.read_text()}"
            time.sleep(0.3)
        yield url
    finally:
        stop_group(proc)


