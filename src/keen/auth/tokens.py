"""Access tokens (JWT, HS256 pinned) and refresh tokens (random, stored as a keyed hash).

An access token names the login it belongs to (`fam`, its refresh-token family), so ending that
login (logout, or a refresh token presented twice) ends its access tokens too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from keen.errors import AuthenticationError

ALGORITHM = "HS256"
ACCESS_TTL_USER = timedelta(minutes=15)
ACCESS_TTL_ADMIN = timedelta(minutes=60)
REFRESH_TTL = timedelta(days=7)
REFRESH_PREFIX = "krt_"
# How far ahead of ours another replica's clock may be when it issues a token.
CLOCK_SKEW = timedelta(seconds=30)
_REQUIRED_CLAIMS = ("sub", "role", "scopes", "exp", "iat", "jti", "fam")


@dataclass(frozen=True)
class AccessClaims:
    sub: str
    role: str
    scopes: tuple[str, ...]
    exp: datetime
    iat: datetime
    jti: str
    fam: str


def issue_access_token(
    secret: str,
    *,
    user_id: str,
    role: str,
    scopes: tuple[str, ...],
    family_id: str,
    ttl: timedelta,
    now: datetime,
) -> tuple[str, AccessClaims]:
    claims = AccessClaims(
        sub=user_id,
        role=role,
        scopes=scopes,
        exp=now + ttl,
        iat=now,
        jti=uuid.uuid4().hex,
        fam=family_id,
    )
    payload = {
        "sub": claims.sub,
        "role": claims.role,
        "scopes": list(claims.scopes),
        "exp": int(claims.exp.timestamp()),
        "iat": int(claims.iat.timestamp()),
        "jti": claims.jti,
        "fam": claims.fam,
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM), claims


def decode_access_token(secret: str, token: str, *, now: datetime) -> AccessClaims:
    """The claims of a token this server signed and that has not expired at `now`; anything
    else (another algorithm, `none`, another key, a missing claim) is refused.

    The times are checked here against the services' clock rather than by PyJWT against the
    system's, so that every check of a request (tokens, TOTP steps, lockout) sees one `now`.
    """
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": list(_REQUIRED_CLAIMS), "verify_exp": False, "verify_iat": False},
        )
    except jwt.InvalidTokenError:
        raise AuthenticationError("the access token is not valid") from None
    scopes = payload["scopes"]
    well_formed = (
        isinstance(scopes, list)
        and all(isinstance(s, str) for s in scopes)
        and all(isinstance(payload[c], str) for c in ("sub", "role", "jti", "fam"))
        and all(isinstance(payload[c], int) for c in ("exp", "iat"))
    )
    if not well_formed:
        raise AuthenticationError("the access token is not valid")
    exp, iat = datetime.fromtimestamp(payload["exp"], UTC), datetime.fromtimestamp(payload["iat"], UTC)
    if exp <= now:
        raise AuthenticationError("the access token has expired")
    if iat > now + CLOCK_SKEW:
        raise AuthenticationError("the access token is not valid yet")
    return AccessClaims(
        sub=payload["sub"],
        role=payload["role"],
        scopes=tuple(scopes),
        exp=exp,
        iat=iat,
        jti=payload["jti"],
        fam=payload["fam"],
    )


def new_refresh_token() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def keyed_digest(secret: str, value: str) -> str:
    """How refresh tokens, API keys and recovery codes are stored: an HMAC keyed with the server
    secret (they are random enough that no slow hash is needed, and a copy of the database
    alone cannot be used to check guesses)."""
    return hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()
