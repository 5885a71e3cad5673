"""queue_connection: the AzureWebJobsStorage account, resolved as the Functions host does."""

from __future__ import annotations

import pytest

from cbtrade.work.connection import (
    CONNECTION_SETTING,
    QueueConnection,
    poison_queue_name,
    queue_connection,
)

AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
)


def test_the_setting_is_the_functions_hosts() -> None:
    assert CONNECTION_SETTING == "AzureWebJobsStorage"


def test_a_connection_string() -> None:
    assert queue_connection({"AzureWebJobsStorage": AZURITE}) == QueueConnection(
        connection_string=AZURITE
    )


def test_a_connection_string_is_stripped_and_wins_over_identity_settings() -> None:
    env = {
        "AzureWebJobsStorage": f"  {AZURITE}\n",
        "AzureWebJobsStorage__accountName": "other",
        "AzureWebJobsStorage__queueServiceUri": "https://other.queue.core.windows.net",
    }
    assert queue_connection(env) == QueueConnection(connection_string=AZURITE)


def test_a_queue_service_uri() -> None:
    env = {"AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net/"}
    assert queue_connection(env) == QueueConnection(
        account_url="https://acct.queue.core.windows.net/"
    )


def test_an_account_name() -> None:
    env = {"AzureWebJobsStorage__accountName": "myacct"}
    assert queue_connection(env) == QueueConnection(
        account_url="https://myacct.queue.core.windows.net"
    )


def test_the_queue_service_uri_wins_over_the_account_name() -> None:
    env = {
        "AzureWebJobsStorage__accountName": "myacct",
        "AzureWebJobsStorage__queueServiceUri": "http://127.0.0.1:10001/devstoreaccount1",
    }
    connection = queue_connection(env)
    assert connection is not None
    assert connection.account_url == "http://127.0.0.1:10001/devstoreaccount1"


def test_a_client_id_for_a_user_assigned_identity() -> None:
    env = {
        "AzureWebJobsStorage__accountName": "myacct",
        "AzureWebJobsStorage__clientId": "11111111-2222-3333-4444-555555555555",
        "AZURE_CLIENT_ID": "ignored-when-the-setting-names-one",
    }
    assert queue_connection(env) == QueueConnection(
        account_url="https://myacct.queue.core.windows.net",
        client_id="11111111-2222-3333-4444-555555555555",
    )


def test_azure_client_id_when_the_setting_names_none() -> None:
    env = {"AzureWebJobsStorage__accountName": "myacct", "AZURE_CLIENT_ID": "cid"}
    connection = queue_connection(env)
    assert connection is not None
    assert connection.client_id == "cid"


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({}, id="nothing"),
        pytest.param({"AzureWebJobsStorage": "   "}, id="blank-connection-string"),
        pytest.param({"AzureWebJobsStorage__accountName": ""}, id="blank-account-name"),
        pytest.param({"AzureWebJobsStorage__queueServiceUri": " "}, id="blank-uri"),
        pytest.param({"AzureWebJobsStorage__clientId": "cid"}, id="client-id-alone"),
        pytest.param({"AZURE_CLIENT_ID": "cid"}, id="azure-client-id-alone"),
        pytest.param({"AzureWebJobsStorage__blobServiceUri": "https://a.blob"}, id="blob-only"),
    ],
)
def test_none_when_no_account_is_named(env: dict[str, str]) -> None:
    assert queue_connection(env) is None


def test_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AzureWebJobsStorage",
        "AzureWebJobsStorage__queueServiceUri",
        "AzureWebJobsStorage__accountName",
        "AzureWebJobsStorage__clientId",
        "AZURE_CLIENT_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    assert queue_connection() is None
    monkeypatch.setenv("AzureWebJobsStorage", AZURITE)
    assert queue_connection() == QueueConnection(connection_string=AZURITE)


def test_poison_queue_name() -> None:
    assert poison_queue_name("cbtrade-work") == "cbtrade-work-poison"
    assert poison_queue_name("q-0123456789ab") == "q-0123456789ab-poison"
