"""Admin work on accounts: lists with filters and pages, changes within the rules, each audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from authkit import HERE, Auth, make_user
from keen.auth import AdminUsers, UserChange, UserFilter
from keen.auth.scopes import ADMIN_SCOPES
from keen.errors import AuthenticationError, InputError, NotFoundError, PermissionDeniedError
from keen.store.db import set_acting_user
from keen.store.models import AuditLogRow


async def _bearer(auth: Auth, email: str) -> str:
    return f"Bearer {(await auth.login(email)).access_token}"


async def test_a_super_admin_lists_users_with_filters_and_pages(any_auth: Auth) -> None:
    await make_user(any_auth, "root@example.org", "super_admin")
    for n in range(5):
        await make_user(any_auth, f"user{n}@example.org")
    await make_user(any_auth, "helper@example.org", "admin", ("admin:users:read",))
    root = await _bearer(any_auth, "root@example.org")
    admin = lambda s: AdminUsers(s, any_auth.policy)  # noqa: E731
    page, total = await any_auth.acting(
        root, lambda s, me: admin(s).search(me, UserFilter(limit=2, offset=1), HERE)
    )
    assert total == 7 and [u.email for u in page] == ["user0@example.org", "user1@example.org"]
    admins, total = await any_auth.acting(
        root, lambda s, me: admin(s).search(me, UserFilter(role="admin"), HERE)
    )
    assert total == 1 and admins[0].privileges == ["admin:users:read"]
    found, total = await any_auth.acting(
        root, lambda s, me: admin(s).search(me, UserFilter(email_contains="USER3"), HERE)
    )
    assert [u.email for u in found] == ["user3@example.org"]
    none, total = await any_auth.acting(
        root, lambda s, me: admin(s).search(me, UserFilter(email_contains="%"), HERE)
    )
    assert (none, total) == ([], 0)  # a wildcard is a character here, not a pattern
    with pytest.raises(InputError, match="unknown status"):
        await any_auth.acting(root, lambda s, me: admin(s).search(me, UserFilter(status="gone"), HERE))


async def test_suspending_a_user_ends_their_sign_ins_and_is_audited(any_auth: Auth) -> None:
    await make_user(any_auth, "root@example.org", "super_admin")
    ada = await make_user(any_auth, "ada@example.org")
    ada_bearer = await _bearer(any_auth, "ada@example.org")
    root = await _bearer(any_auth, "root@example.org")
    changed = await any_auth.acting(
        root,
        lambda s, me: AdminUsers(s, any_auth.policy).change(me, ada.id, UserChange(status="suspended"), HERE),
    )
    assert changed.status == "suspended"
    with pytest.raises(AuthenticationError, match="suspended"):
        await any_auth.who(ada_bearer)
    await any_auth.acting(
        root,
        lambda s, me: AdminUsers(s, any_auth.policy).change(me, ada.id, UserChange(status="active"), HERE),
    )
    with pytest.raises(AuthenticationError, match="sign-in has ended"):  # a new login is needed
        await any_auth.who(ada_bearer)

    async def entries(session: AsyncSession) -> list[AuditLogRow]:
        await set_acting_user(session, None, True)
        query = (
            select(AuditLogRow).where(AuditLogRow.action == "admin.user.changed").order_by(AuditLogRow.seq)
        )
        return list((await session.execute(query)).scalars())

    changes = [(e.risk, e.target, e.details["changes"]) for e in await any_auth.unit(entries)]
    assert changes == [
        ("high", f"user:{ada.id}", {"status": ["active", "suspended"]}),
        ("high", f"user:{ada.id}", {"status": ["suspended", "active"]}),
    ]


async def test_roles_and_privileges_follow_the_rules(auth: Auth) -> None:
    await make_user(auth, "root@example.org", "super_admin")
    helper = await make_user(auth, "helper@example.org", "admin", ADMIN_SCOPES)
    ada = await make_user(auth, "ada@example.org")
    root, helper_bearer = await _bearer(auth, "root@example.org"), await _bearer(auth, "helper@example.org")
    change = lambda bearer, uid, c: auth.acting(  # noqa: E731
        bearer, lambda s, me: AdminUsers(s, auth.policy).change(me, uid, c, HERE)
    )
    promoted = await change(root, ada.id, UserChange(role="admin"))
    assert (promoted.role, promoted.privileges) == (
        "admin",
        ["admin:users:read", "admin:audit:read", "admin:system:read"],
    )
    with pytest.raises(PermissionDeniedError, match="super admin"):
        await change(helper_bearer, ada.id, UserChange(status="banned"))  # ada is an admin now
    demoted = await change(root, ada.id, UserChange(role="user"))
    assert (demoted.role, demoted.privileges) == ("user", [])
    assert (await change(helper_bearer, ada.id, UserChange(status="banned"))).status == "banned"
    with pytest.raises(PermissionDeniedError, match="super admin"):
        await change(helper_bearer, ada.id, UserChange(role="admin"))
    with pytest.raises(PermissionDeniedError, match="own"):
        await change(helper_bearer, helper.id, UserChange(status="active"))
    with pytest.raises(InputError, match="unknown privileges: admin:everything"):
        await change(root, helper.id, UserChange(privileges=("admin:everything",)))
    with pytest.raises(InputError, match="only the admin role"):
        await change(root, ada.id, UserChange(privileges=("admin:users:read",)))
    with pytest.raises(NotFoundError):
        await change(root, "0" * 32, UserChange(status="active"))


async def test_a_demoted_admin_loses_admin_scopes_with_tokens_from_before(auth: Auth) -> None:
    await make_user(auth, "root@example.org", "super_admin")
    helper = await make_user(auth, "helper@example.org", "admin", ADMIN_SCOPES)
    helper_bearer = await _bearer(auth, "helper@example.org")
    assert (await auth.who(helper_bearer)).is_admin
    root = await _bearer(auth, "root@example.org")
    await auth.acting(
        root, lambda s, me: AdminUsers(s, auth.policy).change(me, helper.id, UserChange(role="user"), HERE)
    )
    principal = await auth.who(helper_bearer)
    assert not principal.is_admin and not principal.scopes & set(ADMIN_SCOPES)
