"""Fixtures shared by the function-app tests: function_app.py imported, indexed and unloaded
as the Functions Python worker does it."""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from cbtrade.config import get_settings

KEY = "function-app-test-key"


@pytest.fixture
def function_app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "CBTRADE_STORAGE_BACKEND": "local",
        "CBTRADE_LOCAL_STORAGE_ROOT": str(tmp_path / "data"),
        "CBTRADE_API_KEYS": KEY,
        "CBTRADE_CONTINUATION_TOKEN_SECRET": "function-app-test-token-secret",
        "CBTRADE_TOPUP_SCHEDULE": "0 */10 * * * *",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AzureWebJobsStorage", "AzureWebJobsStorage__accountName"):
        monkeypatch.delenv(name, raising=False)  # no work queue unless a test names one
    return env


def load_function_app() -> ModuleType:
    """Import function_app.py afresh, as a worker process would on start."""
    get_settings.cache_clear()
    sys.modules.pop("function_app", None)
    return importlib.import_module("function_app")


async def unload_function_app(module: ModuleType) -> None:
    """Stop the app as the worker does at exit, but in this test's event loop."""
    if module.app.startup_task_done:
        await module.app.middleware.notify_shutdown()
        module.app.startup_task_done = False
    await module.services.aclose()
    get_settings.cache_clear()
    sys.modules.pop("function_app", None)


@pytest.fixture
async def function_app(function_app_env: dict[str, str]) -> AsyncIterator[ModuleType]:
    module = load_function_app()
    yield module
    await unload_function_app(module)


def functions_by_name(module: ModuleType) -> dict[str, Any]:
    """Index the functions once, as the worker does (indexing twice is refused)."""
    if not hasattr(module, "_indexed_for_tests"):
        module._indexed_for_tests = {
            fn.get_function_name(): fn for fn in module.app.get_functions()
        }
    return module._indexed_for_tests  # type: ignore[no-any-return]
