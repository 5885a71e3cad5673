"""AuthenticationModuleImpl: API keys and JWTs (HS256 secret, RS256 via JWKS)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

import jwt

from cbtrade.auth.interfaces import ADMIN_ROLE, IAuthenticationModule, Principal
from cbtrade.config import Settings
from cbtrade.errors import AuthenticationError, AuthenticationUnavailableError, ConfigurationError

# RFC 7518 3.2: an HS256 key must be at least as long as the hash output.
_MIN_HS256_SECRET_BYTES = 32


class AuthenticationModuleImpl(IAuthenticationModule):
    """Accepts the configured API keys and JWTs; with nothing configured, accepts nothing.

    API keys are compared in constant time against every key, admin keys included. JWTs are
    accepted only with the algorithm pinned to their key source: HS256 with the shared
    secret, RS256 with a key from the JWKS URL (as Microsoft Entra ID issues them, so issuer
    and audience are then required); ``exp`` is required, and ``iss`` and ``aud`` are checked
    when configured. Admins: ``admin_api_keys`` (accepted everywhere, need not be repeated in
    ``api_keys``) and JWTs whose ``roles`` list contains
    :data:`~cbtrade.auth.interfaces.ADMIN_ROLE`.
    """

    def __init__(
        self,
        *,
        api_keys: Sequence[str] = (),
        admin_api_keys: Sequence[str] = (),
        hs256_secret: str | None = None,
        jwks_url: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        leeway_seconds: int = 30,
        jwks_refresh_cooldown_seconds: float = 30.0,
        jwks_cache_seconds: int = 300,
    ) -> None:
        if hs256_secret and len(hs256_secret.encode()) < _MIN_HS256_SECRET_BYTES:
            raise ConfigurationError(
                f"the HS256 secret (CBTRADE_JWT_HS256_SECRET) must be at least "
                f"{_MIN_HS256_SECRET_BYTES} bytes long"
            )
        if jwks_url and not (issuer and audience):
            # Identity providers sign every tenant's and every API's tokens with the same keys.
            raise ConfigurationError(
                "a JWKS URL (CBTRADE_JWT_JWKS_URL) needs the JWT issuer and audience "
                "(CBTRADE_JWT_ISSUER, CBTRADE_JWT_AUDIENCE) set too"
            )
        self._api_keys = [(key.encode(), False) for key in api_keys if key]
        self._api_keys += [(key.encode(), True) for key in admin_api_keys if key]
        self._hs256_secret = hs256_secret or None
        # The key set is cached for jwks_cache_seconds (so a revoked key leaves within that
        # time); an unknown kid refetches it (key rotation), at most once per cooldown.
        self._jwks = (
            jwt.PyJWKClient(
                jwks_url,
                cache_keys=False,
                lifespan=jwks_cache_seconds,
                timeout=10,
                cooldown_duration=jwks_refresh_cooldown_seconds,
            )
            if jwks_url
            else None
        )
        self._issuer = issuer or None
        self._audience = audience or None
        self._leeway_seconds = leeway_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthenticationModuleImpl:
        """The module the settings describe."""
        return cls(
            api_keys=[key.get_secret_value() for key in settings.api_keys],
            admin_api_keys=[key.get_secret_value() for key in settings.admin_api_keys],
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
        candidate = token.encode()
        matched = admin = False
        for key, is_admin in self._api_keys:  # every key: the time tells nothing of which matched
            equal = hmac.compare_digest(candidate, key)
            matched |= equal
            admin |= equal & is_admin
        if matched:
            fingerprint = hashlib.sha256(candidate).hexdigest()[:8]
            return Principal(f"api-key:{fingerprint}", "api_key", {}, is_admin=admin)
        if token.count(".") == 2:
            return await self._validate_jwt(token)
        raise AuthenticationError("unknown API key")

    async def _validate_jwt(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError("malformed JWT") from None
        algorithm = header.get("alg")
        key: Any
        if algorithm == "HS256" and self._hs256_secret is not None:
            key = self._hs256_secret
        elif algorithm == "RS256" and self._jwks is not None:
            key = await self._signing_key(header.get("kid"))
        else:
            shown = algorithm if isinstance(algorithm, str) and len(algorithm) <= 10 else "?"
            raise AuthenticationError(f"JWT algorithm {shown!r} is not accepted")
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
        roles = claims.get("roles")
        is_admin = isinstance(roles, list) and ADMIN_ROLE in roles
        return Principal(subject, "jwt", claims, is_admin=is_admin)

    async def _signing_key(self, kid: object) -> Any:
        """The JWKS key named ``kid``; the fetch is blocking I/O, so it runs in a thread."""
        assert self._jwks is not None
        if not isinstance(kid, str) or not kid:
            raise AuthenticationError("JWT has no 'kid' header")
        try:
            signing_key = await asyncio.to_thread(self._jwks.get_signing_key, kid)
        except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError, ValueError) as exc:
            # Unreachable, not JSON, or no usable keys: the JWKS cannot be used right now.
            raise AuthenticationUnavailableError(
                f"cannot use the JWKS: {type(exc).__name__}"
            ) from None
        except jwt.PyJWKClientError:
            raise AuthenticationError("JWT is signed by an unknown key") from None
        return signing_key.key
