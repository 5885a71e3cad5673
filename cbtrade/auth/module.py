"""AuthenticationModuleImpl: API keys and JWTs (HS256 secret, RS256 via JWKS)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

import jwt

from cbtrade.auth.interfaces import IAuthenticationModule, Principal
from cbtrade.config import Settings
from cbtrade.errors import AuthenticationError, AuthenticationUnavailableError


class AuthenticationModuleImpl(IAuthenticationModule):
    """Accepts the configured API keys and JWTs; with nothing configured, accepts nothing.

    API keys are compared in constant time against every key. JWTs are accepted only with
    the algorithm pinned to their key source: HS256 with the shared secret, RS256 with a key
    from the JWKS URL (as Microsoft Entra ID issues them); ``exp`` is required, and ``iss``
    and ``aud`` are checked when configured.
    """

    def __init__(
        self,
        *,
        api_keys: Sequence[str] = (),
        hs256_secret: str | None = None,
        jwks_url: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        leeway_seconds: int = 30,
        jwks_refresh_cooldown_seconds: float = 30.0,
    ) -> None:
        self._api_keys = [key.encode() for key in api_keys if key]
        self._hs256_secret = hs256_secret or None
        # An unknown kid refetches the JWKS (key rotation), at most once per cooldown.
        self._jwks = (
            jwt.PyJWKClient(
                jwks_url,
                cache_keys=True,
                timeout=10,
                cooldown_duration=jwks_refresh_cooldown_seconds,
            )
            if jwks_url
            else None
        )
        self._issuer = issuer
        self._audience = audience
        self._leeway_seconds = leeway_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthenticationModuleImpl:
        """The module the settings describe."""
        return cls(
            api_keys=[key.get_secret_value() for key in settings.api_keys],
            hs256_secret=(
                settings.jwt_hs256_secret.get_secret_value() if settings.jwt_hs256_secret else None
            ),
            jwks_url=settings.jwt_jwks_url,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )

    async def validate_token(self, token: str) -> Principal:
        """The principal of ``token``; raises AuthenticationError saying what is wrong."""
        if not token:
            raise AuthenticationError("empty bearer token")
        if token.count(".") == 2:
            return await self._validate_jwt(token)
        candidate = token.encode()
        matched = False
        for key in self._api_keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            raise AuthenticationError("unknown API key")
        fingerprint = hashlib.sha256(candidate).hexdigest()[:8]
        return Principal(f"api-key:{fingerprint}", "api_key", {})

    async def _validate_jwt(self, token: str) -> Principal:
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise AuthenticationError("malformed JWT") from None
        key: Any
        if algorithm == "HS256" and self._hs256_secret is not None:
            key = self._hs256_secret
        elif algorithm == "RS256" and self._jwks is not None:
            key = await self._signing_key(token)
        else:
            raise AuthenticationError(f"JWT algorithm {algorithm!r} is not accepted")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_seconds,
                options={"require": ["exp"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("JWT has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthenticationError("JWT is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise AuthenticationError("JWT has the wrong audience") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationError("JWT has the wrong issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"JWT lacks the {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthenticationError("JWT signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"invalid JWT: {type(exc).__name__}") from None
        subject = str(claims.get("sub") or claims.get("oid") or "unknown")
        return Principal(subject, "jwt", claims)

    async def _signing_key(self, token: str) -> Any:
        assert self._jwks is not None
        try:
            signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError as exc:
            raise AuthenticationUnavailableError(f"cannot fetch the JWKS: {exc}") from None
        except jwt.PyJWKClientError:
            raise AuthenticationError("JWT is signed by an unknown key") from None
        except jwt.PyJWTError:
            raise AuthenticationError("malformed JWT") from None
        return signing_key.key
