"""infra/: every .bicep file parses (pycep-parser), and the deployment keeps its promises.

The Bicep CLI is not available here, so these tests read the templates as data: they check
what the deployment must do (Flex Consumption, identity-based storage, no secrets in app
settings, HTTPS only, TLS 1.2, the role assignments, the health check path, the outputs), not
that Azure accepts them. checkov (scripts/check-infra.sh) scans the same files for misconfig.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[3]
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

# Built-in role definition ids.
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"

# App settings that Flex Consumption rejects or that would carry a secret.
FORBIDDEN_SETTINGS = {
    "AzureWebJobsStorage",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "CBTRADE_AZURE_CONNECTION_STRING",
    "APPINSIGHTS_INSTRUMENTATIONKEY",
}
SECRET_SETTINGS = {
    "CBTRADE_API_KEYS",
    "CBTRADE_CONTINUATION_TOKEN_SECRET",
    "CBTRADE_JWT_HS256_SECRET",
}


@cache
def parser() -> BicepParser:
    return BicepParser()


@cache
def parse(relative: str) -> dict[str, Any]:
    result: Any = parser().parse(file_path=INFRA / relative)
    assert isinstance(result, dict), f"{relative} did not parse"
    return result


def resource(relative: str, name: str) -> tuple[str, dict[str, Any]]:
    """(type, body) of a resource, unwrapping `if (...)` and `for` wrappers."""
    entry = parse(relative)["resources"][name]
    body = entry["config"]
    while "config" in body and ("condition" in body or "loop_type" in body):
        body = body["config"]
    return entry["type"], body


def resources_of_type(relative: str, kind: str) -> dict[str, dict[str, Any]]:
    found = {}
    for name in parse(relative)["resources"]:
        rtype, body = resource(relative, name)
        if rtype == kind:
            found[name] = body
    return found


def variable(relative: str, name: str) -> Any:
    return parse(relative)["variables"][name]["value"]


def param_default(relative: str, name: str) -> Any:
    return parse(relative)["parameters"][name]["default"]


def decorators(relative: str, param: str) -> dict[str, Any]:
    return {
        item["type"]: item.get("argument")
        for item in parse(relative)["parameters"][param]["decorators"]
    }


def app_settings() -> dict[str, Any]:
    _, site = resource("app/api.bicep", "functionApp")
    settings = site["properties"]["siteConfig"]["appSettings"]
    names = [item["name"] for item in settings]
    assert len(names) == len(set(names)), "duplicate app settings"
    return {item["name"]: item["value"] for item in settings}


def test_every_bicep_file_parses() -> None:
    names = {path.relative_to(INFRA).as_posix() for path in BICEP_FILES}
    assert {
        "main.bicep",
        "app/api.bicep",
        "app/identity.bicep",
        "app/keyvault.bicep",
        "app/monitoring.bicep",
        "app/rbac.bicep",
        "app/storage.bicep",
    } <= names
    failures = []
    for path in BICEP_FILES:
        try:
            parsed = parse(path.relative_to(INFRA).as_posix())
        except Exception as exc:  # pragma: no cover - the message is the point
            failures.append(f"{path.relative_to(ROOT)}: {type(exc).__name__}: {exc}")
            continue
        if not isinstance(parsed, dict) or not (parsed.get("resources") or parsed.get("modules")):
            failures.append(f"{path.relative_to(ROOT)}: no resources or modules")
    assert not failures, "\n".join(failures)


def test_plain_resources_only_so_checkov_scans_everything() -> None:
    for path in BICEP_FILES:
        text = path.read_text()
        assert "br/public:" not in text, f"{path.name}: registry modules cannot be scanned here"


def test_main_modules_exist_and_scope_is_subscription() -> None:
    main = parse("main.bicep")
    assert main["globals"]["scope"]["value"] == "subscription"
    for name, module in main["modules"].items():
        assert (INFRA / module["detail"]["path"]).is_file(), name
    assert set(main["modules"]) >= {
        "identity",
        "monitoring",
        "hostStorage",
        "dataStorage",
        "keyVault",
        "rbac",
        "api",
    }


def test_main_parameters_and_outputs() -> None:
    main = parse("main.bicep")
    params = main["parameters"]
    assert {"environmentName", "location", "watchlist", "apiKeys", "principalId"} <= set(params)
    assert decorators("main.bicep", "location")["metadata"] == {"azd": {"type": "location"}}
    for secret in ("apiKeys", "continuationTokenSecret", "jwtHs256Secret"):
        assert "secure" in decorators("main.bicep", secret), secret
    outputs = main["outputs"]
    assert outputs["API_HEALTH_URL"]["value"] == "${api.outputs.uri}/api/health"
    assert outputs["API_BASE_URL"]["value"] == "${api.outputs.uri}/api/v1"
    assert {"SERVICE_API_URI", "CBTRADE_AZURE_ACCOUNT_URL", "AZURE_FUNCTION_NAME"} <= set(outputs)
    assert outputs["CBTRADE_TOPUP_QUEUE"]["value"] == "topupQueueName"
    assert outputs["CBTRADE_WORK_QUEUE"]["value"] == "workQueueName"
    # No output hands out a secret.
    for name, output in outputs.items():
        assert "Secret" not in json.dumps(output), name


def test_main_parameters_file_maps_the_azd_environment() -> None:
    data = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert data["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert data["location"]["value"] == "${AZURE_LOCATION}"
    assert data["watchlist"]["value"].startswith("${CBTRADE_WATCHLIST")
    assert data["workQueueName"]["value"] == "${CBTRADE_WORK_QUEUE=cbtrade-work}"
    assert data["topupQueueName"]["value"] == "${CBTRADE_TOPUP_QUEUE=cbtrade-topup}"
    # Empty when unset (a "{}" default would end the ${...} early); main.bicep maps '' to '{}'.
    assert data["exchangeRateLimits"]["value"] == "${CBTRADE_EXCHANGE_RATE_LIMITS=}"
    main_params = set(parse("main.bicep")["parameters"])
    assert set(data) <= main_params


def test_flex_consumption_plan_and_python_runtime() -> None:
    rtype, plan = resource("app/api.bicep", "plan")
    assert rtype == "Microsoft.Web/serverfarms"
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True
    _, site = resource("app/api.bicep", "functionApp")
    assert site["kind"] == "functionapp,linux"
    runtime = site["properties"]["functionAppConfig"]["runtime"]
    assert (runtime["name"], runtime["version"]) == ("runtimeName", "runtimeVersion")
    assert param_default("app/api.bicep", "runtimeName") == "python"
    assert param_default("app/api.bicep", "runtimeVersion") == "3.11"


def test_function_app_transport_security_and_health_check() -> None:
    _, site = resource("app/api.bicep", "functionApp")
    props = site["properties"]
    assert props["httpsOnly"] is True
    config = props["siteConfig"]
    assert config["minTlsVersion"] == "1.2"
    assert config["scmMinTlsVersion"] == "1.2"
    assert config["ftpsState"] == "Disabled"
    assert config["healthCheckPath"] == "/api/health"
    assert config["remoteDebuggingEnabled"] is False
    policies = resources_of_type(
        "app/api.bicep", "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    )
    assert {body["name"]: body["properties"]["allow"] for body in policies.values()} == {
        "ftp": False,
        "scm": False,
    }


def test_function_app_uses_the_user_assigned_identity_everywhere() -> None:
    _, site = resource("app/api.bicep", "functionApp")
    assert site["identity"]["type"] == "UserAssigned"
    assert site["properties"]["keyVaultReferenceIdentity"] == "identityId"
    storage = site["properties"]["functionAppConfig"]["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }
    assert site["tags"]["function"]["type"] == "union"  # keeps the azd-service-name tag
    assert "azd-service-name" in json.dumps(site["tags"])


def test_app_settings_identity_based_storage_and_cbtrade_settings() -> None:
    settings = app_settings()
    assert "hostStorage" in json.dumps(settings["AzureWebJobsStorage__accountName"])
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert settings["AZURE_CLIENT_ID"] == "identityClientId"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "ClientId=${identityClientId};Authorization=AAD"
    )
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in settings
    assert settings["CBTRADE_STORAGE_BACKEND"] == "azure"
    assert settings["CBTRADE_AZURE_ACCOUNT_URL"] == "dataAccountUrl"
    assert settings["CBTRADE_AZURE_CONTAINER"] == "dataContainerName"
    assert settings["CBTRADE_WATCHLIST"] == "watchlist"
    assert settings["CBTRADE_AUTH_DISABLED"] == "false"
    assert not FORBIDDEN_SETTINGS & set(settings)


def test_app_settings_of_the_two_queues_and_the_shared_rate_budget() -> None:
    settings = app_settings()
    assert settings["CBTRADE_TOPUP_QUEUE"] == "topupQueueName"
    assert settings["CBTRADE_WORK_QUEUE"] == "workQueueName"
    assert settings["CBTRADE_RATE_BUDGET_SCOPE"] == "shared"
    assert settings["CBTRADE_EXCHANGE_RATE_LIMITS"] == "exchangeRateLimits"
    assert param_default("app/api.bicep", "topupQueueName") == "cbtrade-topup"
    assert param_default("app/api.bicep", "workQueueName") == "cbtrade-work"
    assert param_default("app/api.bicep", "exchangeRateLimits") == "{}"
    # main.bicep: the parameters, their defaults, and the wiring into the app module.
    assert param_default("main.bicep", "workQueueName") == "cbtrade-work"
    assert param_default("main.bicep", "exchangeRateLimits") == "{}"
    # The app appends "-poison" and Azure queue names have 63 characters at most.
    limits = decorators("main.bicep", "workQueueName")
    assert (limits["min_length"], limits["max_length"]) == (3, 56)
    api = parse("main.bicep")["modules"]["api"]["config"]["params"]
    assert api["topupQueueName"] == "topupQueueName"
    assert api["workQueueName"] == "workQueueName"
    assert api["exchangeRateLimits"] == {
        "operator": {
            "type": "conditional",
            "operands": {
                "condition": {
                    "function": {
                        "type": "empty",
                        "parameters": {"item_to_test": "exchangeRateLimits"},
                    }
                },
                "true_value": "{}",
                "false_value": "exchangeRateLimits",
            },
        }
    }
    # The scale-out bound stays a parameter (the README derives in-flight work items from it).
    assert param_default("main.bicep", "maximumInstanceCount") == 100
    assert api["maximumInstanceCount"] == "maximumInstanceCount"
    _, site = resource("app/api.bicep", "functionApp")
    scale = site["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    assert scale["maximumInstanceCount"] == "maximumInstanceCount"


def test_secrets_are_key_vault_references_only() -> None:
    settings = app_settings()
    assert set(settings) >= SECRET_SETTINGS
    for name in SECRET_SETTINGS:
        text = json.dumps(settings[name])
        assert "@Microsoft.KeyVault(SecretUri=${" in text, name
        for plain in ("apiKeys", "continuationTokenSecret", "jwtHs256Secret"):
            assert f'"{plain}"' not in text, name
    # The function app module never receives a secret value, only secret URIs.
    api_params = parse("app/api.bicep")["parameters"]
    assert not any("secure" in decorators("app/api.bicep", name) for name in api_params)
    api_module = parse("main.bicep")["modules"]["api"]["config"]["params"]
    assert not {"apiKeys", "continuationTokenSecret", "jwtHs256Secret"} & set(api_module)
    # The data account URL has the documented form.
    storage_outputs = parse("app/storage.bicep")["outputs"]
    assert storage_outputs["blobEndpoint"]["value"].startswith("https://${storage.name}.blob.")


def test_storage_accounts_disable_shared_key_and_public_access() -> None:
    _, storage = resource("app/storage.bicep", "storage")
    props = storage["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["defaultToOAuthAuthentication"] is True
    _, containers = resource("app/storage.bicep", "containers")
    assert containers["properties"]["publicAccess"] == "None"


def test_host_and_data_storage_with_their_containers() -> None:
    main = parse("main.bicep")
    assert variable("main.bicep", "dataContainerName") == "cbtrade"
    data = main["modules"]["dataStorage"]["config"]["params"]
    host = main["modules"]["hostStorage"]["config"]["params"]
    assert data["containerNames"] == ["dataContainerName"]
    assert host["containerNames"] == ["deploymentContainerName"]
    assert host["skuName"] == "Standard_LRS"
    api = main["modules"]["api"]["config"]["params"]
    assert api["dataContainerName"] == "dataContainerName"
    assert api["deploymentContainerName"] == "deploymentContainerName"


def test_topup_and_work_queues_and_their_poison_queues_exist_in_the_host_account_only() -> None:
    main = parse("main.bicep")
    assert variable("main.bicep", "poisonQueueName") == "${workQueueName}-poison"
    assert variable("main.bicep", "topupPoisonQueueName") == "${topupQueueName}-poison"
    host = main["modules"]["hostStorage"]["config"]["params"]
    data = main["modules"]["dataStorage"]["config"]["params"]
    # Two queues, so a backfill's items never queue ahead of the watchlist's top-up.
    assert host["queueNames"] == [
        "topupQueueName",
        "topupPoisonQueueName",
        "workQueueName",
        "poisonQueueName",
    ]
    assert "queueNames" not in data
    assert "queueNamesDistinct" not in data
    assert param_default("app/storage.bicep", "queueNames") == []
    # One queue per name, under the account's queue service.
    rtype, service = resource("app/storage.bicep", "queueService")
    assert rtype == "Microsoft.Storage/storageAccounts/queueServices"
    assert (service["parent"], service["name"]) == ("storage", "default")
    entry = parse("app/storage.bicep")["resources"]["queues"]
    assert entry["type"] == "Microsoft.Storage/storageAccounts/queueServices/queues"
    assert entry["config"]["loop_type"]["detail"] == {
        "item_name": "queueName",
        "array_name": "queueNames",
    }
    _, queue = resource("app/storage.bicep", "queues")
    assert (queue["parent"], queue["name"]) == ("queueService", "queueName")


def _operands(expression: dict[str, Any], kind: str) -> list[Any]:
    """The leaves of a chain of one binary operator, e.g. a && b && c."""
    operator = expression["operator"] if isinstance(expression, dict) else None
    if not operator or operator["type"] != kind:
        return [expression]
    operands = operator["operands"]
    return _operands(operands["operand_1"], kind) + _operands(operands["operand_2"], kind)


def test_the_deployment_stops_when_the_queue_names_collide() -> None:
    # Defaults: different names, each 3-56 characters (63 with "-poison").
    assert param_default("main.bicep", "topupQueueName") == "cbtrade-topup"
    limits = decorators("main.bicep", "topupQueueName")
    assert (limits["min_length"], limits["max_length"]) == (3, 56)
    assert param_default("main.bicep", "topupQueueName") != param_default(
        "main.bicep", "workQueueName"
    )
    # main.bicep: no queue may be another's name or its poison queue...
    checks = _operands(variable("main.bicep", "hostQueueNamesDistinct"), "and")
    pairs = set()
    for check in checks:
        operator = check["operator"]
        assert operator["type"] == "not_equals"
        pairs.add(frozenset(operator["operands"].values()))
    assert pairs == {
        frozenset({"topupQueueName", "workQueueName"}),
        frozenset({"topupQueueName", "poisonQueueName"}),
        frozenset({"workQueueName", "topupPoisonQueueName"}),
    }
    host = parse("main.bicep")["modules"]["hostStorage"]["config"]["params"]
    assert host["queueNamesDistinct"] == "hostQueueNamesDistinct"
    # ...and storage.bicep accepts only true (allowedValues), so a collision fails the deployment.
    assert decorators("app/storage.bicep", "queueNamesDistinct")["allowed"] == [True]
    assert param_default("app/storage.bicep", "queueNamesDistinct") is True


def test_storage_services_log_to_the_workspace() -> None:
    categories = [
        {"category": name, "enabled": True}
        for name in ("StorageRead", "StorageWrite", "StorageDelete")
    ]
    settings = resources_of_type("app/storage.bicep", "Microsoft.Insights/diagnosticSettings")
    scopes = {body["scope"]: body["properties"] for body in settings.values()}
    assert set(scopes) == {"blobService", "queueService"}
    for props in scopes.values():
        assert props["workspaceId"] == "logAnalyticsWorkspaceId"
        assert props["logs"] == categories
    # Queue logs only where queues exist (the host account), and only with a workspace.
    condition = json.dumps(parse("app/storage.bicep")["resources"]["queueDiagnostics"])
    assert '"item_to_test": "queueNames"' in condition
    assert '"item_to_test": "logAnalyticsWorkspaceId"' in condition
    main = parse("main.bicep")["modules"]
    for name in ("hostStorage", "dataStorage"):
        workspace = main[name]["config"]["params"]["logAnalyticsWorkspaceId"]
        assert "logAnalyticsWorkspaceId" in json.dumps(workspace), name


def test_role_assignments_of_the_managed_identity() -> None:
    assignments = resources_of_type("app/rbac.bicep", "Microsoft.Authorization/roleAssignments")
    granted = set()
    for body in assignments.values():
        props = body["properties"]
        if props["principalId"] != "managedIdentityPrincipalId":
            continue
        assert props["principalType"] == "ServicePrincipal"
        role_var = props["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
        granted.add((body["scope"], variable("app/rbac.bicep", role_var)))
    assert granted == {
        ("hostStorage", STORAGE_BLOB_DATA_OWNER),
        # The queue trigger (with the poison move) and the app's sender, identity-based.
        ("hostStorage", STORAGE_QUEUE_DATA_CONTRIBUTOR),
        ("dataStorage", STORAGE_BLOB_DATA_CONTRIBUTOR),
        ("vault", KEY_VAULT_SECRETS_USER),
        ("applicationInsights", MONITORING_METRICS_PUBLISHER),
    }
    # The app starts only once its identity holds these roles.
    assert "rbac" in json.dumps(parse("main.bicep")["modules"]["api"]["config"]["dependsOn"])


def test_key_vault_is_rbac_only_and_recoverable() -> None:
    _, vault = resource("app/keyvault.bicep", "vault")
    props = vault["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True
    assert props["enabledForTemplateDeployment"] is False
    secrets = resources_of_type("app/keyvault.bicep", "Microsoft.KeyVault/vaults/secrets")
    assert len(secrets) == 3
    for body in secrets.values():
        assert body["properties"]["contentType"]


def test_monitoring_uses_entra_auth_and_a_workspace() -> None:
    _, insights = resource("app/monitoring.bicep", "applicationInsights")
    assert insights["properties"]["DisableLocalAuth"] is True
    assert "logAnalytics" in json.dumps(insights["properties"]["WorkspaceResourceId"])


def test_every_checkov_skip_is_inline_with_a_reason() -> None:
    skip = re.compile(r"checkov:skip=(CKV2?_[A-Z]+_\d+)(.*)")
    for path in BICEP_FILES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = skip.search(line)
            if match:
                reason = match.group(2).lstrip(":").strip()
                assert len(reason) >= 20, f"{path.name}:{number}: {match.group(1)} needs a reason"


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_no_secret_literals(path: Path) -> None:
    text = path.read_text()
    assert not re.search(r"AccountKey=|SharedAccessSignature=|InstrumentationKey=", text)
