"""The lazy ccxt import: only the exchanges in use are imported, and ccxt's names are the
real ones. Each check runs in a fresh interpreter (this one may hold all of ccxt)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _run(code: str) -> dict:
    prelude = (
        "import json, sys\nfrom cbtrade.exchange_source.ccxt_import import import_ccxt_async\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_only_the_exchanges_asked_for_are_imported() -> None:
    found = _run(
        "ccxt = import_ccxt_async()\n"
        "exchange = ccxt.cryptocom({'enableRateLimit': False})\n"
        "loaded = sorted(m.split('.')[-1] for m in sys.modules "
        "if m.startswith('ccxt.async_support.') and m.count('.') == 2)\n"
        "print(json.dumps({'id': exchange.id, 'loaded': loaded}))\n"
    )
    assert found["id"] == "cryptocom"
    assert found["loaded"] == ["base", "cryptocom"]


def test_the_names_are_ccxts_own() -> None:
    found = _run(
        "ccxt = import_ccxt_async()\n"
        "import ccxt.base.errors as errors\n"
        "import ccxt.async_support.base.exchange as base\n"
        "same = [ccxt.NetworkError is errors.NetworkError, ccxt.BadSymbol is errors.BadSymbol,\n"
        "        ccxt.BaseError is errors.BaseError, ccxt.Exchange is base.Exchange,\n"
        "        issubclass(ccxt.binance, base.Exchange)]\n"
        "lazy = {'exchanges': ccxt.exchanges, 'version': ccxt.__version__}\n"
        "del sys.modules['ccxt'], sys.modules['ccxt.async_support']\n"
        "import importlib; real = importlib.import_module('ccxt.async_support')\n"
        "print(json.dumps({'same': same, 'lazy': lazy,\n"
        "                  'real': {'exchanges': real.exchanges, 'version': real.__version__}}))\n"
    )
    assert all(found["same"])
    assert found["lazy"] == found["real"]
    assert "binance" in found["lazy"]["exchanges"]


def test_any_other_name_loads_the_whole_package() -> None:
    found = _run(
        "ccxt = import_ccxt_async()\n"
        "ccxt.cryptocom\n"
        "before = len([m for m in sys.modules if m.startswith('ccxt.')])\n"
        "try:\n"
        "    ccxt.no_such_name\n"
        "    missing = False\n"
        "except AttributeError:\n"
        "    missing = True\n"
        "after = len([m for m in sys.modules if m.startswith('ccxt.')])\n"
        "print(json.dumps({'missing': missing, 'before': before, 'after': after,\n"
        "                  'decimal': ccxt.decimal_to_precision.__name__}))\n"
    )
    assert found["missing"]
    assert found["after"] > found["before"] + 100  # every exchange, as ccxt's own file does
    assert found["decimal"] == "decimal_to_precision"


def test_a_full_import_made_before_is_used_as_it_is() -> None:
    found = _run(
        "import ccxt\n"
        "lazy = import_ccxt_async()\n"
        "import ccxt.async_support as real\n"
        "print(json.dumps({'same': lazy is real, 'type': type(lazy).__name__}))\n"
    )
    assert found == {"same": True, "type": "module"}


def test_an_exchange_imported_by_another_is_still_its_class() -> None:
    """binanceus's module imports binance's, which sets ``binance`` on the package to the
    module; the name must still give the class."""
    found = _run(
        "ccxt = import_ccxt_async()\n"
        "ccxt.binanceus\n"
        "print(json.dumps({'type': type(ccxt.binance).__name__, 'id': ccxt.binance({}).id}))\n"
    )
    assert found == {"type": "type", "id": "binance"}
