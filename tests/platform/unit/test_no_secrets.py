"""No secret in the repository or in the benchmark results, and the scanner finds planted ones.

The served run's logs and outputs are scanned for the configured password and API keys in
`tests/platform/integration/test_production_profile.py`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rtml.redis.embedded import acl_lines
from rtml.settings import REPO_ROOT, Settings
from tests.support.secret_scan import scan_bytes, scan_files


def _repo_files() -> list[Path]:
    """Tracked files plus new ones git would add (what a commit would publish)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                         cwd=REPO_ROOT, capture_output=True, check=True, timeout=60).stdout
    return [REPO_ROOT / p for p in out.decode().split("\0") if p]


def test_no_tracked_file_and_no_benchmark_result_holds_a_secret():
    files = _repo_files()
    results = sorted((REPO_ROOT / "benchmarks" / "results").glob("**/*"))
    assert len(files) > 100 and results  # the scan saw the repository, not an empty list
    found = scan_files(sorted(set(files) | set(results)), root=REPO_ROOT)
    assert found == []


# Built at run time, so that this file itself holds none of them.
PLANTED = {
    "private key": b"-----BEGIN " + b"RSA PRIVATE KEY-----\nMIIE\n",
    "AWS access key id": b"aws_id = " + b"AKIA" + b"Q2WX3EC4RV5TB6YN" + b"\n",
    "GitHub token": b"token: gh" + b"p_" + b"a1" * 18 + b"\n",
    "credentials in a URL": b"RTML_REDIS_ADDRESS=redis" + b"://svc:" + b"hunter22@cache:6379\n",
    "secret assignment": b'redis_' + b'password = "' + b'Tr0ub4dor&3xyz' + b'"\n',
}


@pytest.mark.parametrize("what", sorted(PLANTED))
def test_a_planted_secret_is_found_with_its_line(what):
    data = b"first line\n" + PLANTED[what]
    assert [(f.what, f.line) for f in scan_bytes(data, path="f")] == [(what, 2)]


@pytest.mark.parametrize("text", [
    b'password: "${REDIS_PASSWORD}"', b'api_key = "<your key here>"',
    b'RTML_API_KEYS: "change-me-0123456789"', b"redis://host:6379/0",
    b'password = "short"', b'--from-literal=redis-password="$REDIS_PASSWORD"',
])
def test_placeholders_and_plain_addresses_are_not_secrets(text):
    assert scan_bytes(text, path="f") == []


def test_a_configured_value_is_found_anywhere_even_in_binary_data():
    value = "Zq8-configured-value-77"
    data = b"\x00\x01PAR1" + value.encode() + b"\xff"
    assert [f.what for f in scan_bytes(data, path="p", values=[value])] == [
        "configured secret #1"]


def test_the_embedded_server_config_holds_a_hash_of_the_password_not_the_password():
    from pydantic import SecretStr

    password = "pw-" + "x7" * 10
    lines = acl_lines(Settings(redis_username="svc", redis_password=SecretStr(password)))
    assert lines[1] == "user default off"
    assert scan_bytes("\n".join(lines).encode(), path="conf", values=[password]) == []
    assert acl_lines(Settings(redis_password=None)) == []
