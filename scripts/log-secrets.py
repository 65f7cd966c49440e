#!/usr/bin/env python3
"""Fails when a secret appears in the logs a test run kept (default: target/test-logs).

`scripts/test.sh` keeps the stderr of every `seadragon` process the suite starts, at debug
level, and the in-process gateways' logs (tests/support/logs.rs); `scripts/schemathesis.sh`
adds its gateway's. Each `NAME.log` may have a `NAME.secrets` beside it listing what that
process was given: `key VALUE` (an admin key) or `password VALUE` (of a database or broker
URL). The check looks for those values, and for the shapes of secrets whatever their value:
API keys (`sk-sd-` and at least 16 more characters), keys in a path (`/k/<key>/`), bearer
tokens and `Authorization` values, and URLs with a password in them.

Usage: scripts/log-secrets.py [DIR]. Exits 1 naming each file and line (secrets masked), 2
when there are no logs, so that a run that kept nothing cannot pass.
"""

import pathlib
import re
import sys

# Values that say a secret was hidden, not shown.
MASKS = {"***", "****", "[redacted]", "redacted", "sensitive", "%2A%2A%2A"}

SHAPES = [
    ("API key", re.compile(r"sk-sd-[A-Za-z0-9_-]{16,}")),
    ("key in a path", re.compile(r"/k/(?!<)[^/\s\"'?<>]+")),
    ("bearer token", re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/=-]{8,})")),
    (
        "Authorization value",
        re.compile(r"(?i)\bauthorization[\"']?\s*[:=]\s*[\"']?([^\s\"',}]{8,})"),
    ),
    ("password in a URL", re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@\"']+:([^@\s/\"']+)@")),
]


def read_secrets(directory):
    keys, passwords = set(), set()
    for path in directory.rglob("*.secrets"):
        for line in path.read_text(errors="replace").splitlines():
            kind, _, value = line.partition(" ")
            if len(value) < 4:
                continue
            (keys if kind == "key" else passwords).add(value)
    return keys, passwords


def password_patterns(passwords):
    """A password is found where it stands as one: in a URL, or after `password`. Alone it
    may be a common word (`guest`, also the broker's user name), so only long ones count
    anywhere."""
    patterns = []
    for password in passwords:
        escaped = re.escape(password)
        context = rf":{escaped}@|(?i:pass(?:word)?)\W{{1,6}}{escaped}(?![\w-])"
        patterns.append(re.compile(escaped if len(password) >= 16 else context))
    return patterns


def mask(text):
    return text[:6] + "…" if len(text) > 6 else "…"


def scan(directory):
    keys, passwords = read_secrets(directory)
    by_password = password_patterns(passwords)
    logs = sorted(directory.rglob("*.log"))
    findings, lines = [], 0
    for path in logs:
        with path.open(errors="replace") as log:
            for number, line in enumerate(log, 1):
                lines += 1
                where = f"{path}:{number}"
                for name, pattern in SHAPES:
                    for match in pattern.finditer(line):
                        value = match.group(match.lastindex or 0)
                        if value.strip("\"'").lower() not in MASKS:
                            findings.append(f"{where}: {name} {mask(match.group(0))}")
                for key in keys:
                    if key in line:
                        findings.append(f"{where}: admin key {mask(key)}")
                for pattern in by_password:
                    if pattern.search(line):
                        findings.append(f"{where}: a URL's password")
    return logs, lines, len(keys) + len(passwords), findings


def main():
    directory = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/test-logs")
    logs, lines, known, findings = scan(directory)
    if not logs:
        print(f"log-secrets: no logs in {directory}: nothing was kept, nothing checked")
        return 2
    print(f"log-secrets: {len(logs)} logs, {lines} lines, {known} known secrets, in {directory}")
    for finding in findings[:50]:
        print(f"log-secrets: {finding}")
    if findings:
        print(f"log-secrets: {len(findings)} secrets found in the logs")
        return 1
    print("log-secrets: no secret found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
