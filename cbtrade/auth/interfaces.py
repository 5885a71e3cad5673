"""The authentication interface: bearer tokens in, a principal or an AuthenticationError out.

Admins: a principal is an admin if its token is one of ``CBTRADE_ADMIN_API_KEYS``, or a JWT
whose ``roles`` claim (a list, as Microsoft Entra ID app roles appear) contains
:data:`ADMIN_ROLE`. Routes reserved to operators call :func:`require_admin` on the principal
that :meth:`IAuthenticationModule.validate_token` returns. With ``CBTRADE_AUTH_DISABLED=true``
(local development) no token is checked at all, so admin routes are open too: like every
route's check, the admin check is then skipped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Literal, NamedTuple

from cbtrade.errors import AuthenticationError, ForbiddenError

REALM = "cbtrade"
ADMIN_ROLE = "cbtrade.admin"
"""The app role (JWT ``roles`` claim) that makes a principal an admin."""


class Principal(NamedTuple):
    """Who a valid token speaks for."""

    subject: str
    kind: Literal["api_key", "jwt"]
    claims: Mapping[str, object]
    is_admin: bool = False
    """An admin key, or a JWT with the :data:`ADMIN_ROLE` role: may use the admin routes."""


class IAuthenticationModule(ABC):
    """Validates bearer tokens."""

    @abstractmethod
    async def validate_token(self, token: str) -> Principal:
        """The principal of ``token``; raises AuthenticationError saying what is wrong."""


def require_admin(principal: Principal) -> None:
    """Return if ``principal`` is an admin; raise ForbiddenError (403) otherwise."""
    if not principal.is_admin:
        raise ForbiddenError(
            "this operation needs an admin key (CBTRADE_ADMIN_API_KEYS) "
            f"or a JWT with the role {ADMIN_ROLE}"
        )


def parse_authorization_header(value: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; AuthenticationError otherwise."""
    if value is None or not value.strip():
        raise AuthenticationError("missing Authorization header: send 'Bearer <API key or JWT>'")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthenticationError("the Authorization scheme must be Bearer")
    token = token.strip()
    if not token or any(char.isspace() for char in token):
        raise AuthenticationError("the Authorization header must be 'Bearer <token>'")
    return token


def bearer_challenge(*, token_given: bool) -> str:
    """The ``WWW-Authenticate`` value of a 401 (RFC 6750): ``invalid_token`` if one was sent."""
    challenge = f'Bearer realm="{REALM}"'
    return f'{challenge}, error="invalid_token"' if token_given else challenge
