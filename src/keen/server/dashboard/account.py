"""The account page: API keys (a new key is shown once, in the answer to the form that made
it; listed; revoked) and MFA enrolment (the provisioning URI as a QR code rendered on the server,
then the recovery codes, shown once)."""

from __future__ import annotations

import base64
import io
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from keen.auth import ApiKeys, KeyRequest, Principal, TwoFactor
from keen.errors import KeenError, NotFoundError
from keen.server.dashboard.render import form, not_found, page, redirect
from keen.server.dashboard.session import browser_principal
from keen.server.dashboard.units import acting, origin_of
from keen.server.deps import get_auth_policy
from keen.store.models import UserRow

router = APIRouter(prefix="/account", include_in_schema=False)
Browser = Annotated[Principal, Depends(browser_principal)]
KeyId = Annotated[str, Path(min_length=1, max_length=64)]


def qr_data_uri(text: str) -> str:
    """`text` as a QR code: an SVG in a data: URI (an <img>, which the CSP allows)."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


async def account_view(request: Request, me: Principal, status: int = 200, **shown: Any) -> Response:
    async with acting(request, me) as session:
        keys = list(await ApiKeys(session, get_auth_policy(request)).all(me))
        user = await session.get(UserRow, me.user_id)
    mfa_enabled = bool(user and user.mfa_enabled)
    values: dict[str, Any] = {"new_key": None, "enrolment": None, "recovery_codes": None, "error": None}
    return page(
        request,
        "account.html",
        me,
        keys=keys,
        mfa_enabled=mfa_enabled,
        status_code=status,
        **{**values, **shown},
    )


@router.get("")
async def account_page(request: Request, me: Browser) -> Response:
    return await account_view(request, me)


@router.post("/keys")
async def create_key(request: Request, me: Browser) -> Response:
    fields = await form(request)
    try:
        name = fields.get("name", "").strip()
        async with acting(request, me) as session:
            keys = ApiKeys(session, get_auth_policy(request))
            created = await keys.create(me, KeyRequest(name=name, scopes=None), origin_of(request))
    except KeenError as exc:
        return await account_view(request, me, exc.http_status, error=str(exc))
    return await account_view(request, me, new_key=created.key)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, me: Browser, key_id: KeyId) -> Response:
    await form(request)
    try:
        async with acting(request, me) as session:
            await ApiKeys(session, get_auth_policy(request)).revoke(me, key_id, origin_of(request))
    except NotFoundError:
        return not_found(request, me)
    return redirect("/account")


@router.post("/mfa/setup")
async def mfa_setup(request: Request, me: Browser) -> Response:
    await form(request)
    try:
        async with acting(request, me) as session:
            enrolment = await TwoFactor(session, get_auth_policy(request)).setup(me, origin_of(request))
    except KeenError as exc:
        return await account_view(request, me, exc.http_status, error=str(exc))
    shown = {"secret": enrolment.secret, "qr": qr_data_uri(enrolment.provisioning_uri)}
    return await account_view(request, me, enrolment=shown)


@router.post("/mfa/enable")
async def mfa_enable(request: Request, me: Browser) -> Response:
    fields = await form(request)
    try:
        async with acting(request, me) as session:
            two_factor = TwoFactor(session, get_auth_policy(request))
            codes = await two_factor.enable(me, fields.get("code", ""), origin_of(request))
    except KeenError as exc:
        return await account_view(request, me, exc.http_status, error=str(exc))
    return await account_view(request, me, recovery_codes=codes)
