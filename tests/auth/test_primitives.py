"""The building blocks: password rules and hashing, access tokens, the API key format, TOTP."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from authkit import SECRET, cheap_passwords
from keen.auth.apikeys import KEY_LENGTH, display_prefix, is_api_key, new_api_key
from keen.auth.mfa import matching_step, new_recovery_codes, provisioning_uri, totp_code
from keen.auth.passwords import check_password_rules
from keen.auth.tokens import decode_access_token, issue_access_token, keyed_digest
from keen.errors import AuthenticationError, InputError

NOW = datetime.now(UTC)


@pytest.mark.parametrize(
    ("password", "says"),
    [
        ("Sh0rt", "at least 8 characters"),
        ("alllowercase1", "an upper-case letter"),
        ("ALLUPPERCASE1", "a lower-case letter"),
        ("NoDigitsHere", "a digit"),
        ("x" * 1025, "longer than 1024"),
    ],
)
def test_a_password_that_breaks_a_rule_is_refused_naming_the_rule(password: str, says: str) -> None:
    with pytest.raises(InputError, match=says) as caught:
        check_password_rules(password)
    assert caught.value.details == {"field": "password"}


def test_a_password_that_keeps_the_rules_passes() -> None:
    check_password_rules("Abcdefg1")


def test_hashes_are_argon2id_and_a_changed_cost_asks_for_a_rehash() -> None:
    cheap, dearer = cheap_passwords(1), cheap_passwords(2)
    stored = cheap.hash("Abcdefg1")
    assert stored.startswith("$argon2id$") and "t=1" in stored
    assert cheap.verify(stored, "Abcdefg1") and not cheap.verify(stored, "Abcdefg2")
    assert dearer.verify(stored, "Abcdefg1")  # an older cost still verifies...
    assert dearer.needs_rehash(stored) and not cheap.needs_rehash(stored)  # ...and is redone
    assert not cheap.verify("not a hash", "Abcdefg1")


def _token(now: datetime = NOW, secret: str = SECRET, ttl: timedelta = timedelta(minutes=15)) -> str:
    token, _claims = issue_access_token(
        secret, user_id="u1", role="user", scopes=("profile:read",), family_id="f1", ttl=ttl, now=now
    )
    return token


def test_an_access_token_carries_sub_role_scopes_exp_iat_jti() -> None:
    claims = decode_access_token(SECRET, _token(), now=NOW)
    assert (claims.sub, claims.role, claims.scopes, claims.fam) == ("u1", "user", ("profile:read",), "f1")
    assert claims.exp - claims.iat == timedelta(minutes=15) and len(claims.jti) == 32
    payload = jwt.decode(_token(), SECRET, algorithms=["HS256"])
    assert set(payload) == {"sub", "role", "scopes", "exp", "iat", "jti", "fam"}


def _unsigned(payload: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # HS512 made on purpose
def test_alg_none_another_key_another_algorithm_and_expiry_are_refused() -> None:
    payload = jwt.decode(_token(), SECRET, algorithms=["HS256"])
    forged = {
        "alg none": _unsigned(payload),
        "another key": _token(secret="another-secret-" + "y" * 40),
        "HS512": jwt.encode(payload, SECRET, algorithm="HS512"),
        "expired": _token(now=NOW - timedelta(minutes=16)),
        "issued in the future": _token(now=NOW + timedelta(minutes=5)),
        "missing claim": jwt.encode(
            {k: v for k, v in payload.items() if k != "jti"}, SECRET, algorithm="HS256"
        ),
        "garbage": "not.a.token",
    }
    for what, token in forged.items():
        with pytest.raises(AuthenticationError) as caught:
            decode_access_token(SECRET, token, now=NOW)
        assert ("expired" in caught.value.message) == (what == "expired"), what


def test_api_keys_have_the_prefix_a_checksum_and_a_short_display_prefix() -> None:
    key = new_api_key()
    assert key.startswith("keen_") and len(key) == KEY_LENGTH and is_api_key(key)
    assert display_prefix(key) == key[:13] and key != new_api_key()
    changed = key[:20] + ("A" if key[20] != "A" else "B") + key[21:]
    assert not is_api_key(changed)  # one character off: the checksum says so, no look-up needed
    assert not is_api_key(key[:-1]) and not is_api_key("keen_" + "!" * (KEY_LENGTH - 5))
    assert keyed_digest(SECRET, key) != keyed_digest("another-secret-" + "y" * 40, key)


def test_a_totp_code_is_accepted_in_its_step_once_and_never_after_a_newer_one() -> None:
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    now = datetime(2026, 12, 10, 12, 0, 10, tzinfo=UTC)
    code = totp_code(secret, now)
    step = matching_step(secret, code, now=now, last_step=None)
    assert step == int(now.timestamp()) // 30
    assert matching_step(secret, code, now=now, last_step=step) is None  # replay, same step
    assert matching_step(secret, code, now=now + timedelta(seconds=30), last_step=None) == step  # drift
    assert matching_step(secret, code, now=now + timedelta(seconds=90), last_step=None) is None  # too old
    later = totp_code(secret, now + timedelta(seconds=30))
    assert matching_step(secret, later, now=now + timedelta(seconds=30), last_step=step) == step + 1
    assert matching_step(secret, "12345", now=now, last_step=None) is None
    assert provisioning_uri(secret, "a@x.io").startswith(
        "otpauth://totp/keen:a%40x.io?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    )


def test_ten_distinct_recovery_codes() -> None:
    codes = new_recovery_codes()
    assert len(codes) == len(set(codes)) == 10 and all(len(c) == 11 and c[5] == "-" for c in codes)
