"""Find secrets in files: the values a test configured, and the shapes common secrets take.

Used on the repository's tracked files and benchmark results (tests/platform/unit) and on a
served run's logs and outputs (tests/platform/integration/test_production_profile.py). The
patterns are the usual leak shapes (private keys, cloud and forge tokens, credentials inside a
URL, a `password = "…"`-style assignment of a literal); a placeholder (`<…>`, `${…}`,
`change-me`, `example`) is not a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PATTERNS: dict[str, re.Pattern[bytes]] = {
    "private key": re.compile(rb"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY"),
    "AWS access key id": re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(rb"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(rb"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(rb"\bAIza[0-9A-Za-z_-]{35}\b"),
    "credentials in a URL": re.compile(
        rb"\b(?:rediss?|postgres(?:ql)?|mysql|https?|amqp)://[^\s:/@'\"]+:([^\s@/'\"]{4,})@"),
    "secret assignment": re.compile(
        rb"(?i)\b[\w-]*(?:password|passwd|secret|api[_-]?key|token)[\w-]*\b[\"']?\s*[:=]\s*"
        rb"[\"']([^\"'\s]{8,})[\"']"),
}
PLACEHOLDER = re.compile(
    rb"(?i)^(?:<.*>|\$\{.*\}|\$[A-Z_]+|.*(?:change[-_]?me|example|placeholder|redacted|xxxx|"
    rb"\*\*\*).*)$")


@dataclass(frozen=True)
class Finding:
    """Where a secret was seen (never the secret itself: this goes into a test failure)."""

    path: str
    line: int
    what: str


def scan_bytes(data: bytes, *, path: str, values: Iterable[str] = ()) -> list[Finding]:
    """Every configured value and every secret pattern in `data`."""
    found: list[Finding] = []

    def line_of(pos: int) -> int:
        return data.count(b"\n", 0, pos) + 1

    for i, value in enumerate(values):
        raw = value.encode()
        start = data.find(raw)
        if raw and start >= 0:
            found.append(Finding(path, line_of(start), f"configured secret #{i + 1}"))
    for what, pattern in PATTERNS.items():
        for m in pattern.finditer(data):
            secret = m.group(m.lastindex or 0)
            if not PLACEHOLDER.match(secret):
                found.append(Finding(path, line_of(m.start()), what))
    return found


def scan_files(paths: Iterable[Path], *, root: Path, values: Iterable[str] = ()
               ) -> list[Finding]:
    """`scan_bytes` over files (binary ones too: a secret in a parquet file is still a leak)."""
    values = list(values)
    found: list[Finding] = []
    for path in paths:
        if path.is_file():
            found += scan_bytes(path.read_bytes(), path=str(path.relative_to(root)),
                                values=values)
    return found
