"""The authentication interface: bearer tokens in, a principal or an AuthenticationError out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Literal, NamedTuple


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
