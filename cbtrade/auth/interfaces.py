"""The authentication interface: bearer tokens in, a principal or an AuthenticationError out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Literal, NamedTuple

from cbtrade.errors import AuthenticationError

REALM = "cbtrade"


class Principal(NamedTuple):
    """Who a valid token speaks for."""

    subject: str
    kind: Literal["api_key", "jwt"]
    claims: Mapping[str, object]


class IAuthenticationModule(ABC):
    """Validates bearer tokens."""

    @abstractmethod
    async def validate_token(self, token: str) -> Principal:
        """The principal of ``token``; raises AuthenticationError saying what is wrong."""


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
