"""CurrentDataFetcher: the newest stored candle of a series."""

from __future__ import annotations

from cbtrade.storage.interfaces import IStorageManager


class CurrentDataFetcher:
    """Reads the open time of the newest stored candle of a series from storage."""

    def __init__(self, storage: IStorageManager) -> None:
        self._storage = storage

    async def get_latest_timestamp(
        self, exchange_name: str, coin_symbol: str, timeframe: str
    ) -> int | None:
        """Epoch ms of the newest stored candle, or None when nothing is stored."""
        return await self._storage.get_latest_timestamp(exchange_name, coin_symbol, timeframe)
