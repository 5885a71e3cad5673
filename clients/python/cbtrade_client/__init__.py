"""Python client of the cb-trade data service: historical crypto OHLCV candles over HTTP.

``CandleClient`` (sync) and ``AsyncCandleClient`` (async) follow the service's continuation
tokens, so a read returns exactly the closed candles of ``[start, end)``; they retry 429,
502, 503, 504 and transport errors with backoff (honouring ``Retry-After``) and raise
:class:`CbTradeClientError` or one of its subclasses for anything else.
"""

from cbtrade_client._async import AsyncCandleClient
from cbtrade_client._base import ClientOptions
from cbtrade_client._decode import Candle, SeriesInfo
from cbtrade_client._errors import (
    AuthenticationError,
    BadRequestError,
    CbTradeClientError,
    CbTradeConnectionError,
    NotFoundError,
    RateLimitedError,
    ServiceUnavailableError,
)
from cbtrade_client._requests import CandleQuery
from cbtrade_client._sync import CandleClient
from cbtrade_client._times import TimeArg
from cbtrade_client._version import __version__

__all__ = [
    "AsyncCandleClient",
    "AuthenticationError",
    "BadRequestError",
    "Candle",
    "CandleClient",
    "CandleQuery",
    "CbTradeClientError",
    "CbTradeConnectionError",
    "ClientOptions",
    "NotFoundError",
    "RateLimitedError",
    "SeriesInfo",
    "ServiceUnavailableError",
    "TimeArg",
    "__version__",
]
