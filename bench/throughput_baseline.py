"""The floor of bench/throughput.py: a FastAPI app whose routes return fixed bytes.

``BENCH_FIXED_SIZES="day=60000,week=420000"`` makes ``GET /fixed/day`` and ``GET /fixed/week``
return that many bytes of ``application/json`` each, the same size as the service's median
page of that kind. It runs under the same uvicorn flags as the service, in its own process:
``python -m bench.serve_as_deployed --factory bench.throughput_baseline:create_app ...``.
Whatever the service costs beyond this is its own work (auth, query parsing, the cache,
encoding), not uvicorn's, FastAPI's routing or the bytes on the socket.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.responses import Response


def create_app() -> FastAPI:
    app = FastAPI()
    for item in os.environ.get("BENCH_FIXED_SIZES", "day=1000").split(","):
        name, size = item.split("=")
        app.add_api_route(f"/fixed/{name}", _fixed(b"[" + b"0" * (int(size) - 2) + b"]"))
    return app


def _fixed(body: bytes) -> Callable[[], Awaitable[Response]]:
    async def fixed() -> Response:
        return Response(body, media_type="application/json")

    return fixed
