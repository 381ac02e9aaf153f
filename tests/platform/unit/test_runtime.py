"""Process groups and readiness waits: no worker outlives a stop, a failed start says why."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from rtml.runtime import process, serve_command, start_group, stop_group, wait_ready
from tests.support.procs import free_port

# A /readyz that answers `CODE` with `BODY`, as a service's would.
SERVER = """
import http.server, sys
code, body = int(sys.argv[2]), sys.argv[3].encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(code if self.path == "/readyz" else 404)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stop_group_stops_the_child_and_its_workers(tmp_path):
    pids = tmp_path / "pids"
    proc = start_group(["sh", "-c", f"sleep 60 & echo $! > {pids}; wait"], log=tmp_path / "l",
                       cwd=tmp_path)
    deadline = time.monotonic() + 10
    while not (pids.exists() and pids.read_text().strip()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    worker = int(pids.read_text())
    assert _alive(worker)
    stop_group(proc, timeout_s=5)
    assert proc.returncode is not None
    deadline = time.monotonic() + 5
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(worker)


def test_a_child_that_exits_before_answering_fails_with_its_log_tail(tmp_path):
    log = tmp_path / "svc.log"
    proc = start_group([sys.executable, "-c", "print('no model here'); raise SystemExit(3)"],
                       log=log, cwd=tmp_path)
    with pytest.raises(LookupError, match=r"(?s)svc exited \(3\) before answering.*no model here"):
        wait_ready(proc, f"http://127.0.0.1:{free_port()}/readyz", timeout_s=30, name="svc",
                   log=log, error=LookupError)


def test_ready_yields_once_answering_and_a_refusal_with_a_reason_is_final(tmp_path):
    port = free_port()
    cmd = [sys.executable, "-c", SERVER, str(port), "200", "ok"]
    with process("ok", cmd, ready_url=f"http://127.0.0.1:{port}/readyz", log=tmp_path / "a",
                 cwd=tmp_path, timeout_s=30) as url:
        assert url.endswith("/readyz")
    port = free_port()
    cmd = [sys.executable, "-c", SERVER, str(port), "503", '{"reason": "no model"}']
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="svc not ready: no model"), \
            process("svc", cmd, ready_url=f"http://127.0.0.1:{port}/readyz", log=tmp_path / "b",
                    cwd=tmp_path, timeout_s=60, refused=True):
        pass
    assert time.monotonic() - t0 < 30  # said at once, not after the timeout


def test_serve_command_names_the_service_it_is_given():
    assert serve_command("bentos.toy.service:Toy", port=3100)[1:] == [
        "serve", "bentos.toy.service:Toy", "--port", "3100", "--host", "127.0.0.1"]
    assert Path(serve_command("a:B", port=1)[0]).name == "bentoml"
    assert serve_command("a:B", port=1, host=None, bentoml="bentoml") == [
        "bentoml", "serve", "a:B", "--port", "1"]
