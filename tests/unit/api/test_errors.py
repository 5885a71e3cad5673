"""Error handlers: a typed service error becomes its status and ``{"error": {code, message}}``."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from cbtrade.api.errors import install_error_handlers
from cbtrade.auth.interfaces import Principal, require_admin
from cbtrade.errors import AuthenticationError, CbTradeError


def _app_raising(error: CbTradeError) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fail")
    async def fail() -> None:
        raise error

    return app


async def _get(app: FastAPI, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/fail", headers=headers)


async def test_a_non_admin_gets_403_forbidden_with_no_challenge() -> None:
    with pytest.raises(CbTradeError) as caught:
        require_admin(Principal("model-service", "api_key", {}))
    response = await _get(_app_raising(caught.value), authorization="Bearer key")
    assert response.status_code == 403
    assert response.json() == {"error": {"code": "forbidden", "message": str(caught.value)}}
    assert "CBTRADE_ADMIN_API_KEYS" in response.json()["error"]["message"]
    assert "www-authenticate" not in response.headers  # the token is valid; it is not enough


async def test_a_401_carries_the_bearer_challenge() -> None:
    response = await _get(_app_raising(AuthenticationError("unknown API key")))
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "unauthorized", "message": "unknown API key"}}
    assert response.headers["www-authenticate"] == 'Bearer realm="cbtrade"'
