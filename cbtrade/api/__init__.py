"""The HTTP API: ``create_app`` is the ASGI factory."""

from cbtrade.api.app import create_app

__all__ = ["create_app"]
