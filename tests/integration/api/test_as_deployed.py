"""The service as deployed: only requirements.txt is installed, so no pandas (a dev-only
dependency that pyarrow imports on first use when it is there)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fixtures.imports import REPO

SERVE_EVERY_FORMAT = """
import asyncio, os, sys
from tests.fixtures.imports import NotInstalled
sys.meta_path.insert(0, NotInstalled("pandas"))
import httpx
import pyarrow as pa
from cbtrade.api import create_app
from cbtrade.models import Candle, TimeRange
from cbtrade.storage.implementations.local_file_storage import LocalFileStorage
from tests.fixtures.http_server import serve_app

first, end = 1_704_067_200_000, 1_704_067_200_000 + 1000 * 300_000
candles = [Candle(t, 1.0, 2.0, 0.5, 1.5, 3.0) for t in range(first, end, 300_000)]
storage = LocalFileStorage(os.environ["CBTRADE_LOCAL_STORAGE_ROOT"])
asyncio.run(storage.save_bulk_entries(
    "binance", "BTC/USDT", "5m", candles, covered=[TimeRange(first, end)]
))
query = {"exchange": "binance", "symbol": "BTC/USDT", "start": first, "end": end}
with serve_app(create_app()) as url, httpx.Client(
    base_url=url, headers={"Authorization": "Bearer deployed-key"}
) as http:
    json_page = http.get("/api/v1/ohlcv", params=query).raise_for_status().json()
    csv_page = http.get("/api/v1/ohlcv", params=query | {"format": "csv"}).raise_for_status()
    arrow_page = http.get("/api/v1/ohlcv", params=query | {"format": "arrow"}).raise_for_status()
print(len(json_page["candles"]), len(csv_page.text.splitlines()) - 1,
      pa.ipc.open_stream(arrow_page.content).read_all().num_rows)
"""


def test_every_page_format_is_served_without_pandas(tmp_path: Path) -> None:
    env = {
        "CBTRADE_STORAGE_BACKEND": "local",
        "CBTRADE_LOCAL_STORAGE_ROOT": str(tmp_path / "data"),
        "CBTRADE_API_KEYS": "deployed-key",
        "CBTRADE_CONTINUATION_TOKEN_SECRET": "deployed-token-secret-0123456789",
        "CBTRADE_EXCHANGE_URL_OVERRIDES": '{"binance": "http://127.0.0.1:9"}',
    }
    result = subprocess.run(
        [sys.executable, "-c", SERVE_EVERY_FORMAT],
        capture_output=True, text=True, cwd=REPO, env={"PATH": "/usr/bin:/bin", **env},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["1000", "1000", "1000"]
