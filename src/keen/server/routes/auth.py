"""`/api/v1/auth`: register, login, refresh, logout, profile, API keys and MFA (SPEC 8.1).

Routes only translate HTTP to the auth services. The routes that check a secret (register,
login, refresh, MFA enable and disable) carry the auth rate limit (per IP), on top of the
lockout the login service keeps per account and per IP.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field

from keen.auth import ApiKeys, AuthService, KeyRequest, Principal, TwoFactor
from keen.auth.keys import DEFAULT_EXPIRY_DAYS, DEFAULT_HOURLY_LIMIT, MAX_EXPIRY_DAYS, MAX_HOURLY_LIMIT
from keen.auth.scopes import ACCOUNT_MANAGE, PROFILE_READ
from keen.auth.signins import SignIn
from keen.server.deps import AuthPolicyDep, CurrentUser, DbSession, OriginDep, require_scope
from keen.server.ratelimit import auth_rate_limit
from keen.server.schemas import ErrorEnvelope, StrictModel
from keen.store.models import AuthTokenRow, UserRow

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
LIMITED = [Depends(auth_rate_limit)]
ProfileReader = Annotated[Principal, Depends(require_scope(PROFILE_READ))]
AccountManager = Annotated[Principal, Depends(require_scope(ACCOUNT_MANAGE))]
KeyId = Annotated[str, Path(min_length=1, max_length=64)]


def _errors(**described: str) -> dict[int | str, dict[str, Any]]:
    return {int(code[1:]): {"model": ErrorEnvelope, "description": text} for code, text in described.items()}


class RegisterBody(StrictModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    username: str | None = Field(default=None, max_length=64)
    display_name: str | None = Field(default=None, max_length=200)


class LoginBody(StrictModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    mfa_code: str | None = Field(default=None, max_length=32, description="A TOTP code or a recovery code")


class RefreshBody(StrictModel):
    refresh_token: str = Field(max_length=200)


class Profile(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    username: str
    display_name: str
    role: str
    status: str
    privileges: list[str]
    mfa_enabled: bool
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, user: UserRow) -> Profile:
        return cls.model_validate(user)


class Tokens(BaseModel):
    access_token: str
    refresh_token: str = Field(description="Shown this once; each use replaces it")
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds the access token lasts")
    refresh_expires_in: int
    user: Profile

    @classmethod
    def of(cls, sign_in: SignIn) -> Tokens:
        return cls(
            access_token=sign_in.access_token,
            refresh_token=sign_in.refresh_token,
            token_type=sign_in.token_type,
            expires_in=sign_in.expires_in,
            refresh_expires_in=sign_in.refresh_expires_in,
            user=Profile.of(sign_in.user),
        )


class ApiKeyBody(StrictModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] | None = Field(default=None, max_length=20, description="Default: the user scopes")
    expires_in_days: int | None = Field(
        default=DEFAULT_EXPIRY_DAYS, ge=1, le=MAX_EXPIRY_DAYS, description="null: never expires"
    )
    rate_limit_per_hour: int = Field(default=DEFAULT_HOURLY_LIMIT, ge=1, le=MAX_HOURLY_LIMIT)


class ApiKeyInfo(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str
    scopes: list[str]
    rate_limit_per_hour: int
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, row: AuthTokenRow) -> ApiKeyInfo:
        return cls.model_validate(row)


class CreatedApiKey(ApiKeyInfo):
    key: str = Field(description="The key itself, shown this once")


class MfaSetup(BaseModel):
    secret: str
    provisioning_uri: str


class MfaCodeBody(StrictModel):
    code: str = Field(min_length=1, max_length=32)


class RecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(description="Ten single-use codes, shown this once")


class MfaDisableBody(StrictModel):
    password: str = Field(max_length=1024)
    code: str = Field(min_length=1, max_length=32, description="A TOTP code or a recovery code")


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=Profile,
    dependencies=LIMITED,
    responses=_errors(e409="An account with this email or username exists"),
)
async def register(
    body: RegisterBody, session: DbSession, policy: AuthPolicyDep, origin: OriginDep
) -> Profile:
    user = await AuthService(session, policy).register(
        body.email, body.password, origin, username=body.username, display_name=body.display_name
    )
    return Profile.of(user)


@router.post(
    "/login",
    response_model=Tokens,
    dependencies=LIMITED,
    responses=_errors(
        e401="Wrong email, password or MFA code; `mfa_required` when the account needs its code",
        e403="The account is suspended or banned",
    ),
)
async def login(body: LoginBody, session: DbSession, policy: AuthPolicyDep, origin: OriginDep) -> Tokens:
    return Tokens.of(
        await AuthService(session, policy).login(body.email, body.password, body.mfa_code, origin)
    )


@router.post(
    "/refresh",
    response_model=Tokens,
    dependencies=LIMITED,
    responses=_errors(e401="The refresh token is not valid, expired, revoked or already used"),
)
async def refresh(body: RefreshBody, session: DbSession, policy: AuthPolicyDep, origin: OriginDep) -> Tokens:
    return Tokens.of(await AuthService(session, policy).refresh(body.refresh_token, origin))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def logout(me: CurrentUser, session: DbSession, policy: AuthPolicyDep, origin: OriginDep) -> Response:
    await AuthService(session, policy).logout(me, origin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/profile", response_model=Profile)
async def profile(me: ProfileReader, session: DbSession) -> Profile:
    return Profile.of(await session.get_one(UserRow, me.user_id))


@router.post("/api-keys", status_code=status.HTTP_201_CREATED, response_model=CreatedApiKey)
async def create_api_key(
    body: ApiKeyBody, me: AccountManager, session: DbSession, policy: AuthPolicyDep, origin: OriginDep
) -> CreatedApiKey:
    request = KeyRequest(
        name=body.name,
        scopes=tuple(body.scopes) if body.scopes is not None else None,
        expires_in_days=body.expires_in_days,
        rate_limit_per_hour=body.rate_limit_per_hour,
    )
    created = await ApiKeys(session, policy).create(me, request, origin)
    return CreatedApiKey(**ApiKeyInfo.of(created.row).model_dump(), key=created.key)


@router.get("/api-keys", response_model=list[ApiKeyInfo])
async def list_api_keys(me: AccountManager, session: DbSession, policy: AuthPolicyDep) -> list[ApiKeyInfo]:
    return [ApiKeyInfo.of(row) for row in await ApiKeys(session, policy).all(me)]


@router.delete("/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def revoke_api_key(
    key_id: KeyId, me: AccountManager, session: DbSession, policy: AuthPolicyDep, origin: OriginDep
) -> Response:
    await ApiKeys(session, policy).revoke(me, key_id, origin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/mfa/setup", response_model=MfaSetup, responses=_errors(e409="MFA is already enabled"))
async def mfa_setup(
    me: AccountManager, session: DbSession, policy: AuthPolicyDep, origin: OriginDep
) -> MfaSetup:
    enrolment = await TwoFactor(session, policy).setup(me, origin)
    return MfaSetup(secret=enrolment.secret, provisioning_uri=enrolment.provisioning_uri)


@router.post(
    "/mfa/enable",
    response_model=RecoveryCodes,
    dependencies=LIMITED,
    responses=_errors(e409="MFA is enabled already, or no setup is pending"),
)
async def mfa_enable(
    body: MfaCodeBody, me: AccountManager, session: DbSession, policy: AuthPolicyDep, origin: OriginDep
) -> RecoveryCodes:
    return RecoveryCodes(recovery_codes=await TwoFactor(session, policy).enable(me, body.code, origin))


@router.post(
    "/mfa/disable",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    dependencies=LIMITED,
    responses=_errors(e409="MFA is not enabled"),
)
async def mfa_disable(
    body: MfaDisableBody, me: AccountManager, session: DbSession, policy: AuthPolicyDep, origin: OriginDep
) -> Response:
    await TwoFactor(session, policy).disable(me, body.password, body.code, origin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
