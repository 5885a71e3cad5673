"""WorkQueueClient without a queue service: what it is made from, and its poison queue's client."""

from __future__ import annotations

from typing import cast

import pytest
from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential

from cbtrade.errors import ConfigurationError
from cbtrade.work.connection import QueueConnection
from cbtrade.work.queue import MAX_PER_RECEIVE, WorkQueueClient

AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
)
ACCOUNT_URL = "https://acct.queue.core.windows.net"


class FakeCredential:
    """A credential that is never asked for a token here; records whether it was closed."""

    def __init__(self) -> None:
        self.closed = 0

    async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        raise AssertionError("no request is made in these tests")

    async def close(self) -> None:
        self.closed += 1

    async def __aenter__(self) -> FakeCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def test_at_most_32_messages_per_receive() -> None:
    assert MAX_PER_RECEIVE == 32


@pytest.mark.parametrize(
    "connection",
    [
        pytest.param(QueueConnection(), id="nothing"),
        pytest.param(QueueConnection(client_id="cid"), id="client-id-alone"),
        pytest.param(QueueConnection(connection_string="", account_url=""), id="blank"),
    ],
)
def test_no_connection_string_nor_account_url_is_a_configuration_error(
    connection: QueueConnection,
) -> None:
    with pytest.raises(ConfigurationError, match="connection string or an account URL"):
        WorkQueueClient("cbtrade-work", connection)


async def test_the_poison_queue_of_a_connection_string_client() -> None:
    queue = WorkQueueClient("cbtrade-work", QueueConnection(connection_string=AZURITE))
    poison = queue.poison_queue()
    poison_poison = poison.poison_queue()
    try:
        assert queue.queue_name == "cbtrade-work"
        assert poison.queue_name == "cbtrade-work-poison"
        assert poison_poison.queue_name == "cbtrade-work-poison-poison"
    finally:
        await poison_poison.close()
        await poison.close()
        await queue.close()


async def test_a_given_credential_is_shared_with_the_poison_queue_and_never_closed() -> None:
    credential = FakeCredential()
    queue = WorkQueueClient(
        "cbtrade-work",
        QueueConnection(account_url=ACCOUNT_URL),
        credential=cast(AsyncTokenCredential, credential),
    )
    poison = queue.poison_queue()
    assert poison.queue_name == "cbtrade-work-poison"
    await poison.close()
    await queue.close()
    assert credential.closed == 0  # the caller's to close


async def test_an_identity_client_has_a_poison_queue_too() -> None:
    """With no credential given, DefaultAzureCredential (made, not yet asked for a token)."""
    queue = WorkQueueClient(
        "cbtrade-work", QueueConnection(account_url=ACCOUNT_URL, client_id="cid")
    )
    poison = queue.poison_queue()
    try:
        assert poison.queue_name == "cbtrade-work-poison"
    finally:
        await poison.close()
        await queue.close()
