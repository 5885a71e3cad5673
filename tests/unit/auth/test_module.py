"""AuthenticationModuleImpl (plan 5.1): API keys, HS256 and RS256 JWTs (JWKS over real HTTP)."""

from __future__ import annotations

import base64
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

from cbtrade.auth.module import AuthenticationModuleImpl
from cbtrade.config import load_settings
from cbtrade.errors import AuthenticationError, AuthenticationUnavailableError

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


async def test_nothing_configured_rejects_everything() -> None:
    module = AuthenticationModuleImpl()
    for token in ("anything", hs256()):
        with pytest.raises(AuthenticationError):
            await module.validate_token(token)


async def test_hs256_valid(hs_module: AuthenticationModuleImpl) -> None:
    principal = await hs_module.validate_token(hs256())
    assert principal.kind == "jwt"
    assert principal.subject == "model-service"


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


def _unsigned(payload: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


class JwksServer:
    """Serves a JWKS document over real HTTP on a loopback port."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(outer.document()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/keys"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add_key(self, kid: str) -> rsa.RSAPrivateKey:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
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


@pytest.fixture
def rs_module(jwks: JwksServer) -> AuthenticationModuleImpl:
    return AuthenticationModuleImpl(
        jwks_url=jwks.url, issuer=ISSUER, audience=AUDIENCE, jwks_refresh_cooldown_seconds=0
    )


async def test_rs256_via_jwks_valid_and_rotated(
    jwks: JwksServer, rs_module: AuthenticationModuleImpl
) -> None:
    assert (await rs_module.validate_token(jwks.sign("k1"))).subject == "model-service"
    jwks.add_key("k2")  # the identity provider rotates: a new kid appears in the JWKS
    assert (await rs_module.validate_token(jwks.sign("k2", sub="rotated"))).subject == "rotated"


async def test_rs256_bad_tokens(jwks: JwksServer, rs_module: AuthenticationModuleImpl) -> None:
    with pytest.raises(AuthenticationError, match="expired"):
        await rs_module.validate_token(jwks.sign("k1", exp=int(time.time()) - 3600))
    with pytest.raises(AuthenticationError, match="audience"):
        await rs_module.validate_token(jwks.sign("k1", aud="api://other"))
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    unknown_kid = jwt.encode(claims(), stranger, algorithm="RS256", headers={"kid": "k9"})
    with pytest.raises(AuthenticationError, match="unknown key"):
        await rs_module.validate_token(unknown_kid)
    forged = jwt.encode(claims(), stranger, algorithm="RS256", headers={"kid": "k1"})
    with pytest.raises(AuthenticationError, match="signature"):
        await rs_module.validate_token(forged)


async def test_algorithm_confusion_is_rejected(
    jwks: JwksServer, rs_module: AuthenticationModuleImpl
) -> None:
    # An HS256 token whose "secret" is the RSA public key must not pass as RS256 or HS256.
    public_pem = (
        jwks.keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    payload = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    head = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=")
    import hashlib
    import hmac

    signature = hmac.new(public_pem, head + b"." + payload, hashlib.sha256).digest()
    token = b".".join([head, payload, base64.urlsafe_b64encode(signature).rstrip(b"=")]).decode()
    with pytest.raises(AuthenticationError, match="HS256"):
        await rs_module.validate_token(token)


async def test_jwks_down_is_auth_unavailable() -> None:
    module = AuthenticationModuleImpl(jwks_url="http://127.0.0.1:9/keys")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), key, algorithm="RS256", headers={"kid": "k1"})
    with pytest.raises(AuthenticationUnavailableError):
        await module.validate_token(token)


async def test_from_settings_wires_keys_and_jwt() -> None:
    settings = load_settings(api_keys="alpha,beta", jwt_hs256_secret=SECRET, jwt_audience=AUDIENCE)
    module = AuthenticationModuleImpl.from_settings(settings)
    assert (await module.validate_token("beta")).kind == "api_key"
    assert (await module.validate_token(hs256())).kind == "jwt"
