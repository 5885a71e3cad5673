"""ccxt's async API with only the exchanges in use imported.

``import ccxt.async_support`` runs ccxt's two package files, and each imports every one of
ccxt's ~100 exchanges, sync and async: about 95 MB and 0.8 s here, for a service that talks
to a handful (upstream: ccxt/ccxt#29573). :func:`import_ccxt_async` installs both packages as lazy
modules instead, before anything imports them. Their names resolve on first use, each from
where ccxt's own package file takes it: the errors, the precision constants, ``Exchange``,
``exchanges`` (read from the package file's own list) and each exchange class, whose module
alone is imported. Any other name makes the module run its real package file once, so
nothing ccxt offers is missing, only loaded later. If ccxt was imported in full before (a
test's simulator does), that is used as it is.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import threading
import types
from pathlib import Path
from typing import Any

_SOURCES = ("ccxt.base.errors", "ccxt.base.decimal_to_precision")
_lock = threading.RLock()


def import_ccxt_async() -> Any:
    """The ``ccxt.async_support`` module; lazy unless ccxt was imported in full already."""
    with _lock:
        if "ccxt.async_support" not in sys.modules:
            if "ccxt" in sys.modules:  # the full sync package, imported elsewhere
                return importlib.import_module("ccxt.async_support")
            # In order: finding the subpackage imports its parent, which must be lazy by then.
            package = sys.modules["ccxt"] = _LazyPackage("ccxt")
            subpackage = sys.modules["ccxt.async_support"] = _LazyPackage("ccxt.async_support")
            vars(package)["async_support"] = subpackage
    return sys.modules["ccxt.async_support"]


class _LazyPackage(types.ModuleType):
    """A ccxt package whose names are imported on first use (see the module's docstring)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        self.__file__ = spec.origin
        self.__path__ = list(spec.submodule_search_locations or [])
        self.__package__ = name
        self.__spec__ = spec
        self._source = Path(spec.origin).read_text(encoding="utf-8")
        listed = _literals(self._source)
        self.exchanges: list[str] = list(listed.get("exchanges", []))
        self.__version__: str = listed.get("__version__", "")
        self._completed = False

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = self._resolve(name)
        setattr(self, name, value)
        self._classes_for_modules()
        return value

    def _classes_for_modules(self) -> None:
        """Importing an exchange's module sets its name here to the module (binanceus's
        imports binance's): put the class there instead, as ccxt's own package file does."""
        for name, value in list(vars(self).items()):
            if isinstance(value, types.ModuleType) and name in self.exchanges:
                setattr(self, name, getattr(value, name))

    def _resolve(self, name: str) -> Any:
        if name in self.exchanges:
            return getattr(importlib.import_module(f"{self.__name__}.{name}"), name)
        if name == "Exchange":
            return importlib.import_module(f"{self.__name__}.base.exchange").Exchange
        if name == "Precise":
            return importlib.import_module("ccxt.base.precise").Precise
        if name == "errors":
            return importlib.import_module("ccxt.base.errors")
        for source in _SOURCES:
            module = importlib.import_module(source)
            if name in module.__all__:
                return getattr(module, name)
        with _lock:
            if not self._completed:
                self._completed = True
                exec(compile(self._source, self.__file__ or self.__name__, "exec"), vars(self))  # noqa: S102
        if name in vars(self):
            return vars(self)[name]
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")


def _literals(source: str) -> dict[str, Any]:
    """The package file's top-level ``exchanges`` list and ``__version__``."""
    found: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in {"exchanges", "__version__"}:
                found[target.id] = ast.literal_eval(node.value)
    return found
