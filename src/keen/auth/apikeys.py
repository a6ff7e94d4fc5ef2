"""The API key format: `keen_` + 40 random base62 characters + a 6-character checksum.

The checksum lets a malformed or mistyped key be refused without a database look-up, and lets
secret scanners recognise a real key. Keys are stored as a keyed hash (tokens.keyed_digest).
"""

from __future__ import annotations

import secrets
import string
import zlib

KEY_PREFIX = "keen_"
_ALPHABET = string.digits + string.ascii_letters
BODY_LENGTH = 40  # ≈ 238 bits
CHECKSUM_LENGTH = 6
KEY_LENGTH = len(KEY_PREFIX) + BODY_LENGTH + CHECKSUM_LENGTH
# What a list of keys shows of each: enough to recognise it, nothing to use.
DISPLAY_PREFIX_LENGTH = len(KEY_PREFIX) + 8


def new_api_key() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(BODY_LENGTH))
    return KEY_PREFIX + body + _checksum(body)


def is_api_key(value: str) -> bool:
    """Whether `value` is shaped like a key of ours with a correct checksum."""
    if len(value) != KEY_LENGTH or not value.startswith(KEY_PREFIX):
        return False
    rest = value[len(KEY_PREFIX) :]
    if not all(c in _ALPHABET for c in rest):
        return False
    body, checksum = rest[:BODY_LENGTH], rest[BODY_LENGTH:]
    return secrets.compare_digest(_checksum(body), checksum)


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]


def _checksum(body: str) -> str:
    value = zlib.crc32(body.encode())
    digits = []
    for _ in range(CHECKSUM_LENGTH):
        value, digit = divmod(value, len(_ALPHABET))
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))
