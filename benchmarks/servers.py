"""Start and stop the servers a benchmark needs: each in its own process group, ready or an error.

Every server is a real process answering real HTTP (`bentoml serve`, `feast serve`, our naive and
stock apps); a context manager stops the whole group, workers included, whatever happens.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from benchmarks.stock_odfv import feast_yaml_for
from rtml import runtime
from rtml.settings import REPO_ROOT, Settings

BIN = Path(sys.executable).parent


class ServerError(RuntimeError):
    """A server that did not come up: which one, and where its log is."""


class Ports:
    """Ports for the servers: consecutive from `base`, or free ephemeral ones for base 0."""

    def __init__(self, base: int = 0) -> None:
        self.next = base

    def take(self) -> int:
        """The next port."""
        if not self.next:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                return s.getsockname()[1]
        self.next += 1
        return self.next - 1


def answers(url: str) -> bool:
    """True when `url` + /readyz answers 200."""
    try:
        return httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def process(name: str, cmd: list[str], *, ready_url: str, log: Path,
            env: dict[str, str] | None = None, timeout_s: float = 120.0) -> Iterator[str]:
    """Run `cmd` until `ready_url` answers 200; yield; stop the group."""
    with runtime.process(name, cmd, ready_url=ready_url, log=log, cwd=REPO_ROOT, env=env,
                         timeout_s=timeout_s, error=ServerError):
        yield ready_url


@contextlib.contextmanager
def rtml_server(settings: Settings, *, service: str, port: int,
                env: dict[str, str] | None = None) -> Iterator[str]:
    """`bentoml serve` a scenario's service on `port` (`env` overrides, e.g. RTML_FRAUD__BATCHING).

    `service` is the registry's `Scenario.service` (the fraud service for every benchmark here).
    """
    url = f"http://127.0.0.1:{port}"
    cmd = runtime.serve_command(service, port=port)
    tag = "-".join(f"{k}={v}" for k, v in (env or {}).items())
    with process("rtml (bentoml serve)", cmd, ready_url=f"{url}/readyz", env=env,
                 log=settings.state_dir / "bench" / f"rtml-{port}{tag and '-' + tag}.log"):
        yield url


@contextlib.contextmanager
def stock_server(settings: Settings, *, feast_port: int, port: int, mode: str = "pandas"
                 ) -> Iterator[str]:
    """`feast serve` against the same Redis, and our thin model service in front of it.

    `mode`: the on-demand view's mode inside `feast serve` (`benchmarks.stock_odfv`).
    """
    log_dir = settings.state_dir / "bench"
    feast_url = f"http://127.0.0.1:{feast_port}"
    feast_cmd = [str(BIN / "feast"), "-c", str(settings.repo_root), "-f",
                 str(feast_yaml_for(settings, mode)), "serve", "--host", "127.0.0.1", "-p",
                 str(feast_port), "--no-access-log", "--max-requests", "0"]
    stock_cmd = [sys.executable, "-m", "benchmarks.stock_server", "--port", str(port),
                 "--feast-url", feast_url]
    with (process("feast serve", feast_cmd, ready_url=f"{feast_url}/health",
                  log=log_dir / f"feast-{mode}-{feast_port}.log"),
          process("stock model service", stock_cmd, ready_url=f"http://127.0.0.1:{port}/readyz",
                  log=log_dir / f"stock-{port}.log")):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def naive_server(settings: Settings, *, dsn: str, table: str, port: int,
                 env: dict[str, str] | None = None) -> Iterator[str]:
    """Our per-request-SQL service over the loaded Postgres table (`env`: e.g. its model store)."""
    cmd = [sys.executable, "-m", "benchmarks.naive_server", "--port", str(port), "--dsn", dsn,
           "--table", table]
    with process("naive (Postgres) service", cmd, ready_url=f"http://127.0.0.1:{port}/readyz",
                 env=env, log=settings.state_dir / "bench" / f"naive-{port}.log"):
        yield f"http://127.0.0.1:{port}"
