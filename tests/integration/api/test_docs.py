"""The API docs over real HTTP: served whole by the service (no CDN), public like the spec,
and the spec declares the parameters' real constraints."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from cbtrade.derived_timeframes import TIMEFRAME_PATTERN
from cbtrade.timeframes import TIMEFRAME_MS
from tests.fixtures.http_server import serve_service

KEY = "docs-test-key"
PAGE_MAX_LIMIT = 50_000  # not the default, so the spec is seen to say this deployment's


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_service(
        local_storage_root=tmp_path_factory.mktemp("data"),
        api_keys=KEY,
        page_default_limit=1_000,
        page_max_limit=PAGE_MAX_LIMIT,
    ) as url:
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


def _parameters(spec: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    operation = spec["paths"][path][method]
    return {parameter["name"]: parameter for parameter in operation["parameters"]}


def test_spec_declares_the_real_constraints(base_url: str) -> None:
    spec = _spec(base_url)
    ohlcv = _parameters(spec, "/api/v1/ohlcv")
    assert ohlcv["timeframe"]["schema"]["pattern"] == TIMEFRAME_PATTERN
    assert "calendar months" in ohlcv["timeframe"]["schema"]["description"]
    latest = _parameters(spec, "/api/v1/ohlcv/latest")
    assert latest["timeframe"]["schema"]["enum"] == list(TIMEFRAME_MS)
    limit = ohlcv["limit"]["schema"]
    assert (limit["type"], limit["minimum"], limit["maximum"]) == ("integer", 1, PAGE_MAX_LIMIT)
    assert f"1 to {PAGE_MAX_LIMIT}" in ohlcv["limit"]["description"]
    assert ohlcv["format"]["schema"]["enum"] == ["json", "csv", "arrow"]
    for path in ("/api/v1/ohlcv", "/api/v1/ohlcv/latest"):
        price = _parameters(spec, path)["price"]
        assert price["schema"]["enum"] == ["trade", "mark", "index", "premium_index"]
        assert price["schema"]["default"] == "trade"
    assert {"price", "timeframe"}.isdisjoint(_parameters(spec, "/api/v1/funding"))
    symbol_pattern = re.compile(ohlcv["symbol"]["schema"]["pattern"])
    assert symbol_pattern.match("BTC/USDT:USDT")
    assert not symbol_pattern.match("BTC/USDT:USDT@mark")  # a price is asked with price=
    assert ohlcv["exchange"]["schema"]["pattern"] == "^[a-z0-9]{1,32}$"
    assert "required unless continuation_token" in ohlcv["start"]["description"]
    time_forms = ohlcv["start"]["schema"]["anyOf"]
    assert {"type": "integer", "minimum": 10**11, "maximum": 10**15 - 1}.items() <= (
        time_forms[2].items()
    )
    assert any(form.get("format") == "date-time" for form in time_forms)
    responses = spec["paths"]["/api/v1/ohlcv"]["get"]["responses"]
    assert set(responses["200"]["content"]) == {
        "application/json",
        "text/csv",
        "application/vnd.apache.arrow.stream",
    }
    assert {"200", "304", "400", "401", "404", "503"} <= set(responses)
    error = responses["400"]["content"]["application/json"]["schema"]["$ref"]
    assert error == "#/components/schemas/ErrorOut"
    coins = _parameters(spec, "/api/v1/exchanges/{exchange}/coins")
    assert coins["exchange"]["schema"]["pattern"] == "^[a-z0-9]{1,32}$"
    # Each route declares the errors it can give, not one list for all.
    listed = spec["paths"]["/api/v1/exchanges"]["get"]["responses"]
    assert set(listed) == {"200", "401", "503"}
