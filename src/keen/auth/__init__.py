"""Accounts and auth (SPEC 8.1): passwords, tokens, API keys, MFA, lockout and the services
that use them. Services take the caller's database session and never commit."""

from keen.auth.admin import AdminUsers, UserChange, UserFilter
from keen.auth.bootstrap import ensure_first_admin
from keen.auth.credentials import authenticate
from keen.auth.keys import ApiKeys, KeyRequest
from keen.auth.policy import AuthPolicy
from keen.auth.principal import Principal
from keen.auth.service import AccountDisabledError, AuthService, MfaRequiredError
from keen.auth.signins import SignIn
from keen.auth.twofactor import TwoFactor

__all__ = [
    "AccountDisabledError",
    "AdminUsers",
    "ApiKeys",
    "AuthPolicy",
    "AuthService",
    "KeyRequest",
    "MfaRequiredError",
    "Principal",
    "SignIn",
    "TwoFactor",
    "UserChange",
    "UserFilter",
    "authenticate",
    "ensure_first_admin",
]
