"""QueueHostOptions.from_host_json: the queue trigger's settings, as host.json sets them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cbtrade.errors import ConfigurationError
from cbtrade.work.local_host import HOST_JSON, QueueHostOptions

REPO_HOST_JSON = Path(__file__).resolve().parents[3] / "host.json"


def _write(path: Path, queues: dict[str, object] | None) -> Path:
    document: dict[str, object] = {"version": "2.0"}
    if queues is not None:
        document["extensions"] = {"queues": queues}
    path.write_text(json.dumps(document))
    return path


def test_the_default_path_is_the_repos_host_json() -> None:
    assert HOST_JSON == REPO_HOST_JSON


def test_the_repos_host_json() -> None:
    queues = json.loads(REPO_HOST_JSON.read_text())["extensions"]["queues"]
    options = QueueHostOptions.from_host_json()
    assert options == QueueHostOptions.from_host_json(REPO_HOST_JSON)
    assert options.batch_size == queues["batchSize"]
    assert options.new_batch_threshold == queues["newBatchThreshold"]
    assert options.max_dequeue_count == queues["maxDequeueCount"]
    assert options.max_in_flight == queues["batchSize"] + queues["newBatchThreshold"]
    h, m, s = (int(part) for part in queues["visibilityTimeout"].split(":"))
    assert options.visibility_timeout_seconds == h * 3600 + m * 60 + s
    h, m, s = (int(part) for part in queues["maxPollingInterval"].split(":"))
    assert options.max_polling_interval_seconds == h * 3600 + m * 60 + s


def test_timespans_and_counts(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "host.json",
        {
            "batchSize": 4,
            "newBatchThreshold": 2,
            "maxDequeueCount": 3,
            "visibilityTimeout": "00:01:30",
            "maxPollingInterval": "01:02:03.5",
        },
    )
    assert QueueHostOptions.from_host_json(path) == QueueHostOptions(
        batch_size=4,
        new_batch_threshold=2,
        max_dequeue_count=3,
        visibility_timeout_seconds=90.0,
        max_polling_interval_seconds=3723.5,
    )
    assert QueueHostOptions.from_host_json(path).max_in_flight == 6


@pytest.mark.parametrize(
    "queues",
    [
        pytest.param(None, id="no-extensions"),
        pytest.param({}, id="empty-queues"),
    ],
)
def test_missing_settings_take_the_defaults(tmp_path: Path, queues: dict[str, object]) -> None:
    assert QueueHostOptions.from_host_json(_write(tmp_path / "host.json", queues)) == (
        QueueHostOptions()
    )


def test_some_settings_missing(tmp_path: Path) -> None:
    path = _write(tmp_path / "host.json", {"batchSize": 1, "visibilityTimeout": "00:00:00"})
    defaults = QueueHostOptions()
    assert QueueHostOptions.from_host_json(path) == defaults._replace(
        batch_size=1, visibility_timeout_seconds=0.0
    )


def test_extensions_without_queues(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    path.write_text(json.dumps({"version": "2.0", "extensions": {"http": {"routePrefix": ""}}}))
    assert QueueHostOptions.from_host_json(path) == QueueHostOptions()


def test_a_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "host.json"
    with pytest.raises(ConfigurationError) as raised:
        QueueHostOptions.from_host_json(path)
    message = str(raised.value)
    assert str(path) in message
    assert "\n" not in message  # one clear line
    assert raised.value.__cause__ is None  # no chained traceback to read through
    assert raised.value.__suppress_context__


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("{not json", id="not-json"),
        pytest.param('{"version": "2.0"', id="truncated"),
        pytest.param("[1, 2]", id="an-array"),
        pytest.param('{"extensions": []}', id="extensions-not-an-object"),
    ],
)
def test_a_file_that_is_not_a_json_object_is_a_configuration_error(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "host.json"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match="cannot read the queue settings") as raised:
        QueueHostOptions.from_host_json(path)
    assert str(path) in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "queues",
    [{"batchSize": "x"}, {"visibilityTimeout": "30"}, {"maxDequeueCount": None}, []],
    ids=["not-a-number", "not-a-timespan", "null", "not-an-object"],
)
def test_bad_values_are_one_configuration_error(tmp_path: Path, queues: object) -> None:
    path = tmp_path / "host.json"
    path.write_text(json.dumps({"extensions": {"queues": queues}}))
    with pytest.raises(ConfigurationError, match=r"host\.json"):
        QueueHostOptions.from_host_json(path)
