"""A bad setting ends start-up with one line naming the variable and the problem, not a
traceback with the message at its end: under uvicorn (``scripts/serve.sh`` runs
``uvicorn --factory cbtrade.api:create_app``), for ``python -m cbtrade.work``, and for the
Functions host's ``import function_app`` (which logs the exception it gets)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.imports import REPO

UVICORN = ["-m", "uvicorn", "--factory", "cbtrade.api:create_app", "--host", "127.0.0.1"]
UVICORN += ["--port", "0"]
WORKER = ["-m", "cbtrade.work", "--until-idle"]
NOT_AN_INTEGER = (
    "invalid settings: CBTRADE_PAGE_MAX_LIMIT='abc': Input should be a valid integer, "
    "unable to parse string as an integer"
)
NOT_JSON = (
    "invalid settings: CBTRADE_EXCHANGE_URL_OVERRIDES: not valid JSON (a JSON object is expected)"
)


def _start(args: list[str], tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CBTRADE_", "AzureWebJobsStorage"))
    }
    env |= {
        "CBTRADE_LOCAL_STORAGE_ROOT": str(tmp_path / "data"),
        "CBTRADE_CONTINUATION_TOKEN_SECRET": "startup-test-token-secret",
        **settings,
    }
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("args", "settings", "line"),
    [
        (UVICORN, {"CBTRADE_PAGE_MAX_LIMIT": "abc"}, f"cbtrade: {NOT_AN_INTEGER}"),
        (UVICORN, {"CBTRADE_EXCHANGE_URL_OVERRIDES": "{bad"}, f"cbtrade: {NOT_JSON}"),
        (
            UVICORN,
            {"CBTRADE_WORK_QUEUE_LOCAL_HOST": "true"},
            "cbtrade: no work queue: set AzureWebJobsStorage",
        ),
        (
            UVICORN,
            {"CBTRADE_JWT_JWKS_URL": "https://login.example/keys"},
            "cbtrade: a JWKS URL (CBTRADE_JWT_JWKS_URL) needs the JWT issuer and audience "
            "(CBTRADE_JWT_ISSUER, CBTRADE_JWT_AUDIENCE) set too",
        ),
        (WORKER, {"CBTRADE_PAGE_MAX_LIMIT": "abc"}, f"cbtrade.work: {NOT_AN_INTEGER}"),
        (WORKER, {"CBTRADE_EXCHANGE_URL_OVERRIDES": "{bad"}, f"cbtrade.work: {NOT_JSON}"),
    ],
    ids=[
        "uvicorn-integer",
        "uvicorn-json",
        "uvicorn-queue",
        "uvicorn-jwks",
        "work-integer",
        "work-json",
    ],
)
def test_a_bad_setting_ends_the_process_with_one_line(
    tmp_path: Path, args: list[str], settings: dict[str, str], line: str
) -> None:
    result = _start(args, tmp_path, **settings)
    assert result.returncode == 1, result.stderr
    assert _lines(result.stderr) == [line]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"CBTRADE_PAGE_MAX_LIMIT": "abc"}, NOT_AN_INTEGER),
        ({"CBTRADE_EXCHANGE_URL_OVERRIDES": "{bad"}, NOT_JSON),
    ],
)
def test_importing_function_app_raises_a_one_line_error(
    tmp_path: Path, settings: dict[str, str], message: str
) -> None:
    # The Functions host logs the exception that the import raises: its message is the line.
    probe = (
        "import sys\n"
        "try:\n"
        "    import function_app\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, repr(str(exc)), file=sys.stderr)\n"
        "    sys.exit(3)\n"
    )
    result = _start(["-c", probe], tmp_path, **settings)
    assert result.returncode == 3, result.stderr
    assert _lines(result.stderr) == [f"ConfigurationError {message!r}"]
    plain = _start(["-c", "import function_app"], tmp_path, **settings)
    assert _lines(plain.stderr)[-1] == f"cbtrade.errors.ConfigurationError: {message}"
