"""Fixtures shared by the HTTP tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cbtrade.api import create_app
from tests.exchange_simulator import ExchangeSimulator
from tests.fixtures.azurite import AzuriteInstance
from tests.fixtures.http_server import serve_app
from tests.fixtures.service import KEY, service_settings


@pytest.fixture(params=["local", "azure"])
def storage_settings(
    request: pytest.FixtureRequest, tmp_path: Path, azurite_container: str
) -> dict[str, Any]:
    """The settings of each storage backend: local disk, and a fresh Azurite container."""
    if request.param == "local":
        return {"local_storage_root": tmp_path / "data"}
    azurite: AzuriteInstance = request.getfixturevalue("azurite")
    return {
        "storage_backend": "azure",
        "azure_connection_string": azurite.connection_string,
        "azure_container": azurite_container,
    }


@pytest.fixture
def base_url(simulator: ExchangeSimulator, storage_settings: dict[str, Any]) -> Iterator[str]:
    """The service over real HTTP (uvicorn on a free port) on each storage backend, reading
    from the exchange simulator; its API key is ``tests.fixtures.service.KEY``."""
    with serve_app(create_app(service_settings(simulator, **storage_settings))) as url:
        yield url


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    """An HTTP client of the service with its API key."""
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    ) as client:
        yield client
