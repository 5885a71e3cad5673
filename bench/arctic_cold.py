"""ArcticDB's cold read of a series (runs in .venv-bench), for bench/throughput.py.

Usage:
  arctic_cold.py write CONNECTION_STRING CONTAINER CANDLES_JSON   stores the series once
  arctic_cold.py read CONNECTION_STRING CONTAINER ROWS            in a fresh process: prints
      JSON seconds {"open": Arctic() + get_library, "first": the first read on the open
      library, "second": a second read}

Each ``read`` is a new process, so nothing of the series is in ArcticDB's memory: the first
read is the cold read, as the service's first read after it starts.
"""

from __future__ import annotations

import json
import sys
import time

import arcticdb
import pandas as pd


def _library(connection_string: str, container: str) -> arcticdb.library.Library:
    uri = f"azure://{connection_string.rstrip(';')};Container={container}"
    return arcticdb.Arctic(uri).get_library("bench", create_if_missing=True)


def main() -> None:
    mode, connection_string, container, argument = sys.argv[1:5]
    if mode == "write":
        with open(argument, encoding="utf-8") as handle:
            rows = json.load(handle)
        columns = ["timestamp", "open", "high", "low", "close", "volume"]
        frame = pd.DataFrame(rows, columns=columns)
        frame.index = pd.to_datetime(frame.pop("timestamp"), unit="ms", utc=True)
        _library(connection_string, container).write("series", frame)
        return
    began = time.perf_counter()
    library = _library(connection_string, container)
    opened = time.perf_counter()
    first = library.read("series").data
    read = time.perf_counter()
    second = library.read("series").data
    again = time.perf_counter()
    assert len(first) == len(second) == int(argument)
    print(json.dumps({"open": opened - began, "first": read - opened, "second": again - read}))


if __name__ == "__main__":
    main()
