"""Where the work queue lives: the ``AzureWebJobsStorage`` connection, resolved as the
Functions host resolves it (no Azure SDK import here)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

CONNECTION_SETTING = "AzureWebJobsStorage"
_POISON_SUFFIX = "-poison"


def poison_queue_name(queue_name: str) -> str:
    """The Functions host's poison queue for ``queue_name``."""
    return queue_name + _POISON_SUFFIX


class QueueConnection(NamedTuple):
    """A connection string, or an account URL with an optional managed identity client id."""

    connection_string: str | None = None
    account_url: str | None = None
    client_id: str | None = None


def queue_connection(environ: Mapping[str, str] | None = None) -> QueueConnection | None:
    """The work queue's account from ``AzureWebJobsStorage`` (a connection string) or
    ``AzureWebJobsStorage__queueServiceUri`` / ``__accountName`` (identity-based, with
    ``__clientId``); None when the environment names no account."""
    env = os.environ if environ is None else environ
    connection_string = env.get(CONNECTION_SETTING, "").strip()
    if connection_string:
        return QueueConnection(connection_string=connection_string)
    account_url = env.get(f"{CONNECTION_SETTING}__queueServiceUri", "").strip()
    account_name = env.get(f"{CONNECTION_SETTING}__accountName", "").strip()
    if not account_url and account_name:
        account_url = f"https://{account_name}.queue.core.windows.net"
    if not account_url:
        return None
    client_id = env.get(f"{CONNECTION_SETTING}__clientId") or env.get("AZURE_CLIENT_ID") or None
    return QueueConnection(account_url=account_url, client_id=client_id)
