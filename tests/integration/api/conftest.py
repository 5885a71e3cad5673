"""Fixtures shared by the HTTP tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.azurite import AzuriteInstance


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
