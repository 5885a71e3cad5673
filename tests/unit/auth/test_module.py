"""AuthenticationModuleImpl (plan 5.1): API keys, HS256 and RS256 JWTs (JWKS over real HTTP)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from cbtrade.auth import module as auth_module
from cbtrade.auth.interfaces import (
    ADMIN_ROLE,
    Principal,
    bearer_challenge,
    parse_authorization_header,
    require_admin,
)
from cbtrade.auth.module import AuthenticationModuleImpl
from cbtrade.config import load_settings
from cbtrade.errors import (
    AuthenticationError,
    AuthenticationUnavailableError,
    ConfigurationError,
    ForbiddenError,
)

SECRET = "hs256-test-secret-that-is-long-enough-for-sha256"
ISSUER = "https://login.example.test/tenant/v2.0"
AUDIENCE = "api://cbtrade"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "model-service", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs256(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), SECRET, algorithm="HS256")


@pytest.fixture
def hs_module() -> AuthenticationModuleImpl:
    return AuthenticationModuleImpl(hs256_secret=SECRET, issuer=ISSUER, audience=AUDIENCE)


async def test_api_keys_valid_and_invalid() -> None:
    module = AuthenticationModuleImpl(api_keys=["key-one", "key-two"])
    principal = await module.validate_token("key-two")
    assert principal.kind == "api_key"
    assert principal.subject.startswith("api-key:")
    assert "key-two" not in principal.subject
    for bad in ("key-three", "key-one ", "KEY-ONE"):
        with pytest.raises(AuthenticationError, match="unknown API key"):
            await module.validate_token(bad)
    with pytest.raises(AuthenticationError, match="empty"):
        await module.validate_token("")


async def test_admin_api_keys_are_accepted_and_are_admins() -> None:
    module = AuthenticationModuleImpl(api_keys=["key-one", "both"], admin_api_keys=["op", "both"])
    assert (await module.validate_token("key-one")).is_admin is False
    admin = await module.validate_token("op")  # need not be repeated in api_keys
    assert admin.kind == "api_key"
    assert admin.is_admin is True
    assert "op" not in admin.subject
    assert (await module.validate_token("both")).is_admin is True
    for bad in ("op ", "OP", "key-two"):
        with pytest.raises(AuthenticationError, match="unknown API key"):
            await module.validate_token(bad)


async def test_every_api_key_is_compared_whichever_matches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compared: list[bytes] = []
    original = hmac.compare_digest

    def compare_digest(given: bytes, key: bytes) -> bool:
        compared.append(key)
        return original(given, key)

    monkeypatch.setattr(auth_module.hmac, "compare_digest", compare_digest)
    module = AuthenticationModuleImpl(api_keys=["a1", "a2"], admin_api_keys=["o1", "o2"])
    for token in ("a1", "o2", "unknown"):
        compared.clear()
        with contextlib.suppress(AuthenticationError):
            await module.validate_token(token)
        assert sorted(compared) == [b"a1", b"a2", b"o1", b"o2"]


async def test_api_keys_may_look_like_jwts() -> None:
    module = AuthenticationModuleImpl(api_keys=["a.b.c"])
    assert (await module.validate_token("a.b.c")).kind == "api_key"
    with pytest.raises(AuthenticationError, match="malformed JWT"):
        await module.validate_token("a.b.d")


async def test_jwt_is_rejected_when_only_api_keys_are_configured() -> None:
    module = AuthenticationModuleImpl(api_keys=["key-one"])
    for token in (hs256(), _unsigned(claims())):
        with pytest.raises(AuthenticationError, match="not accepted"):
            await module.validate_token(token)


async def test_nothing_configured_rejects_everything() -> None:
    module = AuthenticationModuleImpl()
    for token in ("anything", hs256()):
        with pytest.raises(AuthenticationError):
            await module.validate_token(token)


async def test_hs256_valid(hs_module: AuthenticationModuleImpl) -> None:
    principal = await hs_module.validate_token(hs256())
    assert principal.kind == "jwt"
    assert principal.subject == "model-service"
    assert principal.is_admin is False


@pytest.mark.parametrize(
    ("roles", "is_admin"),
    [
        ([ADMIN_ROLE], True),
        (["cbtrade.reader", ADMIN_ROLE], True),
        (["cbtrade.reader"], False),
        ([], False),
        (None, False),
        (ADMIN_ROLE, False),  # a string, not the list of app roles
        (["CBTRADE.ADMIN"], False),
        ([{"role": ADMIN_ROLE}], False),
    ],
)
async def test_jwts_with_the_admin_role_are_admins(
    hs_module: AuthenticationModuleImpl, roles: object, is_admin: bool
) -> None:
    principal = await hs_module.validate_token(hs256(roles=roles))
    assert principal.is_admin is is_admin
    assert principal.claims.get("roles") == roles


def test_require_admin() -> None:
    require_admin(Principal("op", "api_key", {}, is_admin=True))
    for principal in (Principal("m", "api_key", {}), Principal("m", "jwt", {"roles": []})):
        with pytest.raises(ForbiddenError, match="CBTRADE_ADMIN_API_KEYS") as caught:
            require_admin(principal)
        assert ADMIN_ROLE in str(caught.value)
        assert caught.value.status_code == 403
        assert caught.value.code == "forbidden"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (lambda: hs256(exp=int(time.time()) - 3600), "expired"),
        (lambda: hs256(nbf=int(time.time()) + 3600), "not valid yet"),
        (lambda: hs256(aud="api://someone-else"), "audience"),
        (lambda: hs256(iss="https://evil.example"), "issuer"),
        (lambda: hs256(exp=None), "'exp'"),
        (lambda: jwt.encode(claims(), SECRET + "x", algorithm="HS256"), "signature"),
        (lambda: jwt.encode(claims(), SECRET * 2, algorithm="HS512"), "HS512"),
        (lambda: _unsigned(claims()), "'none'"),
        (lambda: "a.b.c", "malformed"),
    ],
)
async def test_bad_hs256_tokens_are_rejected(
    hs_module: AuthenticationModuleImpl, token: Any, message: str
) -> None:
    with pytest.raises(AuthenticationError, match=message):
        await hs_module.validate_token(token())


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unsigned(payload: dict[str, Any]) -> str:
    """An ``alg: none`` token, built by hand."""
    header = {"alg": "none", "typ": "JWT"}
    return (
        _b64(json.dumps(header).encode()) + b"." + _b64(json.dumps(payload).encode())
    ).decode() + "."


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class JwksServer:
    """Serves a JWKS document over real HTTP on a loopback port."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.fetches = 0
        self.body: bytes | None = None  # when set, served instead of the key set
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = outer.body or json.dumps(outer.document()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

            def log_request(self, *args: Any) -> None:
                outer.fetches += 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/keys"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def add_key(self, kid: str) -> rsa.RSAPrivateKey:
        self.keys[kid] = new_rsa_key()
        return self.keys[kid]

    def document(self) -> dict[str, Any]:
        jwks = []
        for kid, key in self.keys.items():
            jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
            jwks.append(jwk | {"kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": jwks}

    def sign(self, kid: str, **overrides: Any) -> str:
        return jwt.encode(
            claims(**overrides), self.keys[kid], algorithm="RS256", headers={"kid": kid}
        )


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer()
    server.add_key("k1")
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def rs_module_for(jwks: JwksServer, **options: Any) -> AuthenticationModuleImpl:
    return AuthenticationModuleImpl(jwks_url=jwks.url, issuer=ISSUER, audience=AUDIENCE, **options)


@pytest.fixture
def rs_module(jwks: JwksServer) -> AuthenticationModuleImpl:
    return rs_module_for(jwks, jwks_refresh_cooldown_seconds=0)


async def test_rs256_via_jwks_valid_and_cached(
    jwks: JwksServer, rs_module: AuthenticationModuleImpl
) -> None:
    for _ in range(3):
        assert (await rs_module.validate_token(jwks.sign("k1"))).subject == "model-service"
    assert jwks.fetches == 1


async def test_rs256_app_roles_make_admins(
    jwks: JwksServer, rs_module: AuthenticationModuleImpl
) -> None:
    assert (await rs_module.validate_token(jwks.sign("k1", roles=[ADMIN_ROLE]))).is_admin is True
    assert (await rs_module.validate_token(jwks.sign("k1", roles=["other"]))).is_admin is False


async def test_rs256_key_rotation_refetches_the_jwks(
    jwks: JwksServer, rs_module: AuthenticationModuleImpl
) -> None:
    assert (await rs_module.validate_token(jwks.sign("k1"))).kind == "jwt"
    jwks.add_key("k2")  # the identity provider rotates: a new kid appears in the JWKS
    assert (await rs_module.validate_token(jwks.sign("k2", sub="rotated"))).subject == "rotated"
    assert jwks.fetches == 2


async def test_unknown_kid_refetches_at_most_once_per_cooldown(jwks: JwksServer) -> None:
    module = rs_module_for(jwks, jwks_refresh_cooldown_seconds=60)
    assert (await module.validate_token(jwks.sign("k1"))).kind == "jwt"
    stranger = new_rsa_key()
    for _ in range(3):
        token = jwt.encode(claims(), stranger, algorithm="RS256", headers={"kid": "k9"})
        with pytest.raises(AuthenticationError, match="unknown key"):
            await module.validate_token(token)
    assert jwks.fetches == 1  # a flood of unknown kids does not hammer the identity provider


async def test_rs256_bad_tokens(jwks: JwksServer, rs_module: AuthenticationModuleImpl) -> None:
    with pytest.raises(AuthenticationError, match="expired"):
        await rs_module.validate_token(jwks.sign("k1", exp=int(time.time()) - 3600))
    with pytest.raises(AuthenticationError, match="audience"):
        await rs_module.validate_token(jwks.sign("k1", aud="api://other"))
    with pytest.raises(AuthenticationError, match="issuer"):
        await rs_module.validate_token(jwks.sign("k1", iss="https://login.example.test/other"))
    with pytest.raises(AuthenticationError, match="'exp'"):
        await rs_module.validate_token(jwks.sign("k1", exp=None))
    stranger = new_rsa_key()
    unknown_kid = jwt.encode(claims(), stranger, algorithm="RS256", headers={"kid": "k9"})
    with pytest.raises(AuthenticationError, match="unknown key"):
        await rs_module.validate_token(unknown_kid)
    forged = jwt.encode(claims(), stranger, algorithm="RS256", headers={"kid": "k1"})
    with pytest.raises(AuthenticationError, match="signature"):
        await rs_module.validate_token(forged)
    no_kid = jwt.encode(claims(), jwks.keys["k1"], algorithm="RS256")
    with pytest.raises(AuthenticationError, match="'kid'"):
        await rs_module.validate_token(no_kid)
    with pytest.raises(AuthenticationError, match="'none'"):
        await rs_module.validate_token(_unsigned(claims()))


def _hs256_signed_with(secret: bytes, header: dict[str, Any]) -> str:
    """An HS256 token signed by hand, so PyJWT's own key checks cannot refuse to build it."""
    signing_input = _b64(json.dumps(header).encode()) + b"." + _b64(json.dumps(claims()).encode())
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + _b64(signature)).decode()


async def test_algorithm_confusion_is_rejected(jwks: JwksServer) -> None:
    # An HS256 token whose "secret" is the RSA public key must pass neither as RS256 nor
    # as HS256, whether or not an HS256 secret is configured beside the JWKS.
    public_pem = (
        jwks.keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    token = _hs256_signed_with(public_pem, {"alg": "HS256", "typ": "JWT", "kid": "k1"})
    with pytest.raises(AuthenticationError, match="'HS256' is not accepted"):
        await rs_module_for(jwks).validate_token(token)
    with pytest.raises(AuthenticationError, match="signature"):
        await rs_module_for(jwks, hs256_secret=SECRET).validate_token(token)


async def test_jwks_down_or_garbled_is_auth_unavailable(jwks: JwksServer) -> None:
    token = jwks.sign("k1")
    jwks.body = b"<html>gateway error</html>"
    with pytest.raises(AuthenticationUnavailableError, match="JWKS"):
        await rs_module_for(jwks).validate_token(token)
    down = AuthenticationModuleImpl(
        jwks_url="http://127.0.0.1:9/keys", issuer=ISSUER, audience=AUDIENCE
    )
    with pytest.raises(AuthenticationUnavailableError, match="JWKS") as caught:
        await down.validate_token(token)
    assert caught.value.status_code == 503
    assert "127.0.0.1" not in str(caught.value)


def test_unsafe_configurations_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="issuer and audience"):
        AuthenticationModuleImpl(jwks_url="https://login.example.test/keys", audience=AUDIENCE)
    with pytest.raises(ConfigurationError, match="issuer and audience"):
        AuthenticationModuleImpl(jwks_url="https://login.example.test/keys", issuer=ISSUER)
    with pytest.raises(ConfigurationError, match="32 bytes"):
        AuthenticationModuleImpl(hs256_secret="short")


async def test_from_settings_wires_keys_and_jwt() -> None:
    settings = load_settings(
        api_keys="alpha,beta",
        admin_api_keys="gamma",
        jwt_hs256_secret=SECRET,
        jwt_audience=AUDIENCE,
    )
    module = AuthenticationModuleImpl.from_settings(settings)
    assert (await module.validate_token("beta")).kind == "api_key"
    assert (await module.validate_token("beta")).is_admin is False
    assert (await module.validate_token("gamma")).is_admin is True
    assert (await module.validate_token(hs256())).kind == "jwt"
    with pytest.raises(AuthenticationError, match="audience"):
        await module.validate_token(hs256(aud="api://other"))


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer abc", "abc"), ("BEARER  a.b.c ", "a.b.c")],
)
def test_bearer_header_is_parsed(header: str, token: str) -> None:
    assert parse_authorization_header(header) == token


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing"),
        ("", "missing"),
        ("   ", "missing"),
        ("Basic dXNlcjpwYXNz", "scheme must be Bearer"),
        ("Token abc", "scheme must be Bearer"),
        ("Bearer", "Bearer <token>"),
        ("Bearer    ", "Bearer <token>"),
        ("Bearer abc def", "Bearer <token>"),
        ("abc", "scheme must be Bearer"),
    ],
)
def test_bad_authorization_headers_are_rejected(header: str | None, message: str) -> None:
    with pytest.raises(AuthenticationError, match=message):
        parse_authorization_header(header)


def test_bearer_challenge() -> None:
    assert bearer_challenge(token_given=False) == 'Bearer realm="cbtrade"'
    assert bearer_challenge(token_given=True) == 'Bearer realm="cbtrade", error="invalid_token"'
