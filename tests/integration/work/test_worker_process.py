"""``python -m cbtrade.work``: the worker process without the Functions host."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from azure.storage.queue.aio import QueueClient

from cbtrade.work.connection import QueueConnection
from cbtrade.work.queue import WorkQueueClient
from tests.fixtures.azurite import AzuriteInstance

pytestmark = pytest.mark.azurite

REPO = Path(__file__).resolve().parents[3]
PROCESS_LIMIT_SECONDS = 90


def worker_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CBTRADE_", "AzureWebJobsStorage", "AZURE_"))
    }
    env.update(
        CBTRADE_STORAGE_BACKEND="local",
        CBTRADE_LOCAL_STORAGE_ROOT=str(tmp_path / "data"),
        CBTRADE_API_KEYS="x",
        CBTRADE_CONTINUATION_TOKEN_SECRET="worker-test-secret-0123456789",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def run_worker(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cbtrade.work", "--until-idle"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=PROCESS_LIMIT_SECONDS,
        check=False,
    )


async def test_drains_the_queue_and_exits_0(azurite: AzuriteInstance, tmp_path: Path) -> None:
    name = f"q-{uuid.uuid4().hex[:12]}"
    # One message no work item is: the worker logs it and lets it go.
    async with QueueClient.from_connection_string(azurite.connection_string, name) as raw:
        await raw.create_queue()
        await raw.send_message("bm90IGEgd29yayBpdGVt")  # base64 of "not a work item"
    env = worker_env(
        tmp_path, AzureWebJobsStorage=azurite.connection_string, CBTRADE_WORK_QUEUE=name
    )
    result = await asyncio.to_thread(run_worker, env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    output = result.stdout + result.stderr
    assert "work.invalid_item" in output
    assert "not a work item" in output
    queue = WorkQueueClient(name, QueueConnection(connection_string=azurite.connection_string))
    poison = queue.poison_queue()
    try:
        assert await queue.approximate_count() == 0
        assert await poison.approximate_count() == 0
    finally:
        await poison.close()
        await queue.close()


def test_without_azure_web_jobs_storage_it_says_so(tmp_path: Path) -> None:
    result = run_worker(worker_env(tmp_path, CBTRADE_WORK_QUEUE="q-unused"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len([line for line in lines if "AzureWebJobsStorage" in line]) == 1
    assert lines[-1].startswith("cbtrade.work:")
    assert "AzureWebJobsStorage" in lines[-1]
