"""A TCP proxy between a service and the tests' Valkey that makes Redis slow or broken for real.

The service talks RESP to the proxy as to any Redis; the proxy can hold every reply back for
`delay_s` (a slow network or an overloaded Redis) or refuse connections and cut the open ones
(a Redis that went away). It counts the `HMGET` commands that pass through it: the service's
feature reads, so a test can tell whether a request tried Redis at all.
"""

from __future__ import annotations

import socket
import threading
import time

_HMGET = b"\r\nHMGET\r\n"  # a command name as RESP sends it: `$5\r\nHMGET\r\n`


class RedisProxy:
    """Forwards 127.0.0.1:`port` to `upstream`; see the module docstring."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.delay_s = 0.0
        self.broken = False
        self.hmgets = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.broken:
                client.close()
                continue
            upstream = socket.create_connection(self.upstream)
            with self._lock:
                self._open |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, to_redis: bool) -> None:
        tail = b""
        try:
            while data := src.recv(65536):
                if to_redis:
                    seen = tail + data  # a name split across reads is counted once
                    with self._lock:
                        self.hmgets += seen.count(_HMGET)
                    tail = seen[-(len(_HMGET) - 1):]
                elif self.delay_s:
                    time.sleep(self.delay_s)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                self._drop(s)

    def _drop(self, s: socket.socket) -> None:
        with self._lock:
            self._open.discard(s)
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

    def cut(self) -> None:
        """Redis goes away: refuse new connections, close the open ones."""
        self.broken = True
        with self._lock:
            open_now = list(self._open)
        for s in open_now:
            self._drop(s)

    def heal(self) -> None:
        """Redis is back: accept and forward again, with no delay."""
        self.broken = False
        self.delay_s = 0.0

    def close(self) -> None:
        """Stop listening and close every connection."""
        self._closed = True
        self._server.close()
        self.cut()
