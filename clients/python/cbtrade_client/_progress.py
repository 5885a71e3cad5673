"""The optional progress bar of long reads (tqdm, the extra ``[progress]``)."""

from __future__ import annotations

from typing import Any

from cbtrade_client._decode import require


class Progress:
    """Counts the candles and pages of one read on a tqdm bar; does nothing when off."""

    def __init__(self, enabled: bool, description: str) -> None:
        self._bar: Any = None
        self._pages = 0
        if enabled:
            require("progress=True")
            from tqdm.auto import tqdm

            self._bar = tqdm(desc=description, unit=" candles", unit_scale=True)

    def page(self, candles: int) -> None:
        """One more page of ``candles`` candles."""
        if self._bar is not None:
            self._pages += 1
            self._bar.set_postfix(pages=self._pages, refresh=False)
            self._bar.update(candles)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
