"""Hard-coded secrets: credentials written into source and config files.

Key formats with a recognisable shape (cloud keys, provider API keys, tokens, private key
blocks) are flagged everywhere; `password = "..."`-style assignments only outside test code,
where fixtures legitimately carry made-up passwords. Placeholders ("changeme", "your-key",
"EXAMPLE", ...) are not secrets. A line marked `pragma: allowlist secret` (the detect-secrets
convention) is skipped. Matched values are masked in findings: a report must not leak them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from keen.config import mask
from keen.validation.detect import is_test_file
from keen.validation.report import Finding

MAX_FILE_BYTES = 1024 * 1024
ALLOW_MARKER = "pragma: allowlist secret"
PLACEHOLDER_MARKERS = (
    "example",
    "changeme",
    "change-me",
    "change_me",
    "your",
    "xxxx",
    "placeholder",
    "dummy",
    "fake",
    "redacted",
    "sample",
    "test",
    "<",
    "${",
    "{{",
    "****",
    "...",
)
BINARY_SUFFIXES = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".ico",
        ".pdf",
        ".zip",
        ".gz",
        ".tar",
        ".whl",
        ".so",
        ".pyc",
        ".woff",
        ".woff2",
        ".ttf",
        ".eot",
        ".mp4",
        ".mp3",
        ".sqlite",
        ".db",
        ".lock",
    }
)


@dataclass(frozen=True)
class SecretPattern:
    rule: str
    description: str
    regex: re.Pattern[str]
    in_tests: bool = True  # also flagged inside test code


PATTERNS: tuple[SecretPattern, ...] = (
    SecretPattern("aws-access-key-id", "AWS access key id", re.compile(r"\b((?:AKIA|ASIA)[0-9A-Z]{16})\b")),
    SecretPattern(
        "aws-secret-access-key",
        "AWS secret access key",
        re.compile(r"(?i)aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+=]{40})\b"),
    ),
    SecretPattern("anthropic-api-key", "Anthropic API key", re.compile(r"\b(sk-ant-[A-Za-z0-9_\-]{20,})")),
    SecretPattern(
        "openai-api-key",
        "OpenAI-style API key",
        re.compile(r"\b(sk-(?!ant-)(?:proj-|svcacct-)?[A-Za-z0-9_\-]{20,})"),
    ),
    SecretPattern(
        "github-token",
        "GitHub token",
        re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    ),
    SecretPattern("slack-token", "Slack token", re.compile(r"\b(xox[abprs]-[A-Za-z0-9-]{10,})")),
    SecretPattern("google-api-key", "Google API key", re.compile(r"\b(AIza[0-9A-Za-z_\-]{35})")),
    SecretPattern(
        "private-key",
        "private key",
        re.compile(r"(-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----)"),
    ),
    SecretPattern(
        "hardcoded-password",
        "hard-coded password or secret",
        re.compile(
            r"(?i)[\w.-]*(?:password|passwd|secret_?key|client_?secret|api_?key|access_?token|auth_?token)[\w-]*"
            r"[\"']?\s*(?::\s*[\w\[\]., |]+?\s*)?[:=]\s*[\"']([^\"'\s]{8,})[\"']"
        ),
        in_tests=False,
    ),
)


def scan_file(root: Path, rel: str) -> list[Finding]:
    """Secret findings in one file (binary and very large files are not read)."""
    path = root / rel
    if path.suffix.lower() in BINARY_SUFFIXES:
        return []
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return []
        data = path.read_bytes()
    except OSError:
        return []
    if b"\0" in data[:8192]:
        return []
    text = data.decode("utf-8", errors="replace")
    test_code = is_test_file(rel)
    findings = []
    for number, line in enumerate(text.splitlines(), start=1):
        if ALLOW_MARKER in line:
            continue
        for pattern in PATTERNS:
            if test_code and not pattern.in_tests:
                continue
            match = pattern.regex.search(line)
            if match is None or _placeholder(match.group(1), pattern):
                continue
            findings.append(
                Finding(
                    f"{pattern.description} in source ({mask(match.group(1))}); move it to the environment "
                    f"or a secret store and rotate it",
                    file=rel,
                    line=number,
                    rule=pattern.rule,
                    severity="critical",
                    tool="secrets",
                )
            )
            break  # one finding per line is enough
    return findings


# Values that name a secret rather than hold one: "ANTHROPIC_API_KEY", "auth.password_field".
_NAME_LIKE = re.compile(r"^(?:[A-Z][A-Z0-9_]*|[a-z][a-z0-9]*(?:[._][a-z0-9]+)+)$")


def _placeholder(value: str, pattern: SecretPattern) -> bool:
    if pattern.rule == "private-key":
        return False
    if pattern.rule == "hardcoded-password" and _NAME_LIKE.match(value):
        return True
    lowered = value.lower()
    return any(marker in lowered for marker in PLACEHOLDER_MARKERS)
