"""ArcticDB baseline (runs in .venv-bench): write a series once, then time full reads.

Usage: arctic_read.py CONNECTION_STRING CONTAINER CANDLES_JSON RUNS -> prints JSON seconds.
"""

from __future__ import annotations

import json
import sys
import time

import arcticdb
import pandas as pd


def main() -> None:
    connection_string, container, candles_path, runs = sys.argv[1:5]
    with open(candles_path, encoding="utf-8") as handle:
        rows = json.load(handle)
    frame = pd.DataFrame(rows, columns=["timestamp", "open", "high", "low", "close", "volume"])
    frame.index = pd.to_datetime(frame.pop("timestamp"), unit="ms", utc=True)
    uri = f"azure://{connection_string.rstrip(';')};Container={container}"
    library = arcticdb.Arctic(uri).get_library("bench", create_if_missing=True)
    library.write("series", frame)
    timings = []
    for _ in range(int(runs)):
        began = time.perf_counter()
        read = library.read("series").data
        timings.append(time.perf_counter() - began)
        assert len(read) == len(frame)
    print(json.dumps(timings))


if __name__ == "__main__":
    main()
