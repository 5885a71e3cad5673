"""The API docs over real HTTP: served whole by the service (no CDN), and public like the
spec."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from cbtrade.api import create_app
from cbtrade.config import load_settings
from tests.fixtures.http_server import serve_app

KEY = "docs-test-key"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = load_settings(
        local_storage_root=tmp_path_factory.mktemp("data"),
        api_keys=KEY,
        continuation_token_secret="docs-test-token-secret",
    )
    with serve_app(create_app(settings)) as url:
        yield url


def _spec(base_url: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/api/openapi.json")  # no token: the spec is public
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def test_docs_page_names_no_other_host_and_its_assets_are_served(base_url: str) -> None:
    page = httpx.get(f"{base_url}/api/docs")  # no token: the docs are public
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    # Any absolute or scheme-relative URL would be another host's (this one's is never
    # written out: the page's links are paths).
    assert not re.findall(r"(?:https?:)?//[\w.-]+", html), html

    referenced = re.findall(r'(?:src|href)="([^"]+)"', html)
    spec_url = re.search(r"url: '([^']+)'", html)
    assert spec_url is not None
    assert {urlsplit(url).path for url in referenced} == {
        "/api/docs/assets/swagger-ui-bundle.js",
        "/api/docs/assets/swagger-ui.css",
        "/api/docs/assets/favicon.png",
    }
    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    for url in referenced:
        asset = httpx.get(urljoin(f"{base_url}/api/docs", url))
        assert asset.status_code == 200, url
        assert kinds[url[url.rindex(".") :]] in asset.headers["content-type"], url
        assert len(asset.content) > 1_000, url
    assert "SwaggerUIBundle" in httpx.get(f"{base_url}/api/docs/assets/swagger-ui-bundle.js").text
    assert httpx.get(urljoin(base_url, spec_url.group(1))).status_code == 200


def test_only_health_docs_and_spec_are_public(base_url: str) -> None:
    assert httpx.get(f"{base_url}/api/health").status_code == 200
    assert httpx.get(f"{base_url}/api/docs/assets/swagger-ui.css").status_code == 200
    assert httpx.get(f"{base_url}/api/v1/exchanges").status_code == 401
    spec = _spec(base_url)
    public = {
        f"{method.upper()} {path}"
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if not operation.get("security")
    }
    assert public == {"GET /api/health"}  # every /api/v1 operation says it needs the bearer
