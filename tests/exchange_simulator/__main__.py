"""Run the exchange simulator on its own: ``python -m tests.exchange_simulator --port 9000``."""

from __future__ import annotations

import argparse
import signal
import threading

from tests.exchange_simulator import ExchangeSimulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    simulator = ExchangeSimulator()
    simulator.start(host=args.host, port=args.port)
    print(
        f"exchange simulator on {simulator.origin} (cryptocom, binance, kraken, coinbase)",
        flush=True,
    )
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    simulator.stop()


if __name__ == "__main__":
    main()
