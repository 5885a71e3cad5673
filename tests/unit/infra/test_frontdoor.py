"""infra/app/frontdoor.bicep: the optional Azure Front Door in front of the API.

Read as data with pycep (no Bicep CLI here): nothing of it is deployed by default; when enabled,
the origin is the app over HTTPS with its certificate name checked, only the candle route
caches (and only with frontDoorCaching), every query string is its own cache entry, and the
WAF policy (Prevention, custom rules only on Standard) is linked to the endpoint.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.unit.infra.test_bicep import INFRA, decorators, param_default, parse, resource

FRONT_DOOR = "app/frontdoor.bicep"


def _route(name: str) -> dict[str, Any]:
    rtype, body = resource(FRONT_DOOR, name)
    assert rtype == "Microsoft.Cdn/profiles/afdEndpoints/routes"
    return body


def test_nothing_front_door_related_is_deployed_by_default() -> None:
    main = parse("main.bicep")
    assert param_default("main.bicep", "enableFrontDoor") is False
    assert param_default("main.bicep", "frontDoorCaching") is False
    # The only way in is the conditional module; no Front Door resource sits in main.bicep itself.
    module = main["modules"]["frontDoor"]
    assert module["detail"]["path"] == FRONT_DOOR
    assert module["config"]["condition"] == "enableFrontDoor"
    for body in main["resources"].values():
        assert not body["type"].startswith(("Microsoft.Cdn/", "Microsoft.Network/FrontDoor"))
    # No other module pulls frontdoor.bicep in unconditionally.
    others = [m for n, m in main["modules"].items() if n != "frontDoor"]
    assert all(m["detail"]["path"] != FRONT_DOOR for m in others)
    # The output is empty unless enabled.
    output = main["outputs"]["CBTRADE_FRONT_DOOR_URL"]["value"]["operator"]
    assert output["type"] == "conditional"
    assert output["operands"]["condition"] == "enableFrontDoor"
    assert output["operands"]["false_value"] == ""
    assert "url" in json.dumps(output["operands"]["true_value"])


def test_the_azd_environment_switches_it_on() -> None:
    data = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert data["enableFrontDoor"]["value"] == "${CBTRADE_ENABLE_FRONT_DOOR=false}"
    assert data["frontDoorCaching"]["value"] == "${CBTRADE_FRONT_DOOR_CACHING=false}"
    params = parse("main.bicep")["modules"]["frontDoor"]["config"]["config"]["params"]
    assert params["cachingEnabled"] == "frontDoorCaching"
    assert params["rateLimitPerMinute"] == "frontDoorRateLimitPerMinute"
    assert "defaultHostName" in json.dumps(params["originHostName"])
    assert parse("app/api.bicep")["outputs"]["defaultHostName"]["value"] == {
        "operator": {
            "type": "property_accessor",
            "operands": {
                "operand_1": "functionApp",
                "operand_2": {
                    "operator": {
                        "type": "property_accessor",
                        "operands": {"operand_1": "properties", "operand_2": "defaultHostName"},
                    }
                },
            },
        }
    }
    # Caching is off inside the module too, whoever calls it.
    assert param_default(FRONT_DOOR, "cachingEnabled") is False


def test_standard_profile_and_https_only_origin_with_certificate_name_check() -> None:
    rtype, profile = resource(FRONT_DOOR, "profile")
    assert rtype == "Microsoft.Cdn/profiles"
    assert profile["sku"] == {"name": "Standard_AzureFrontDoor"}
    assert profile["location"] == "global"
    rtype, origin = resource(FRONT_DOOR, "origin")
    assert rtype == "Microsoft.Cdn/profiles/originGroups/origins"
    props = origin["properties"]
    assert props["hostName"] == "originHostName"
    assert props["originHostHeader"] == "originHostName"
    assert props["enforceCertificateNameCheck"] is True
    assert props["httpsPort"] == 443
    _, group = resource(FRONT_DOOR, "originGroup")
    probe = group["properties"]["healthProbeSettings"]
    assert probe["probePath"] == "/api/health"
    assert probe["probeProtocol"] == "Https"
    assert probe["probeRequestType"] in {"GET", "HEAD"}


def test_routes_forward_over_https_only_and_redirect_http() -> None:
    for name in ("apiRoute", "candleRoute"):
        props = _route(name)["properties"]
        assert props["forwardingProtocol"] == "HttpsOnly", name
        assert props["httpsRedirect"] == "Enabled", name
        assert "origin" in json.dumps(_route(name)["dependsOn"]), name


def test_only_the_candle_route_caches_and_only_when_asked() -> None:
    # /api/* (health, latest, exchanges, backfills, admin): never cached, whatever the switch.
    api = _route("apiRoute")["properties"]
    assert api["patternsToMatch"] == ["/api/*"]
    assert "cacheConfiguration" not in api
    assert "condition" not in parse(FRONT_DOOR)["resources"]["apiRoute"]["config"]
    # GET /api/v1/ohlcv: cached with the full query string as key, only with cachingEnabled.
    entry = parse(FRONT_DOOR)["resources"]["candleRoute"]["config"]
    assert entry["condition"] == "cachingEnabled"
    candles = _route("candleRoute")["properties"]
    assert candles["patternsToMatch"] == ["/api/v1/ohlcv"]
    cache = candles["cacheConfiguration"]
    assert cache["queryStringCachingBehavior"] == "UseQueryString"
    # No rule set overrides the origin's Cache-Control (route caching honours the origin).
    assert "ruleSets" not in candles
    compression = cache["compressionSettings"]
    if compression["isCompressionEnabled"]:
        assert set(compression["contentTypesToCompress"]) <= {"application/json", "text/csv"}


def test_waf_policy_in_prevention_mode_is_linked_to_the_endpoint() -> None:
    rtype, waf = resource(FRONT_DOOR, "wafPolicy")
    assert rtype == "Microsoft.Network/FrontDoorWebApplicationFirewallPolicies"
    assert waf["sku"] == {"name": "Standard_AzureFrontDoor"}
    assert waf["properties"]["policySettings"] == {"enabledState": "Enabled", "mode": "Prevention"}
    # Standard tier: custom rules only, no managed rule sets (Premium).
    assert "managedRules" not in waf["properties"]
    rules = {rule["name"]: rule for rule in waf["properties"]["customRules"]["rules"]}
    assert len({rule["priority"] for rule in rules.values()}) == len(rules)
    limit = rules["RateLimitPerClientIp"]
    assert (limit["ruleType"], limit["action"], limit["enabledState"]) == (
        "RateLimitRule",
        "Block",
        "Enabled",
    )
    assert limit["rateLimitThreshold"] == "rateLimitPerMinute"
    assert decorators(FRONT_DOOR, "rateLimitPerMinute")["min_value"] == 10
    rtype, policy = resource(FRONT_DOOR, "securityPolicy")
    assert rtype == "Microsoft.Cdn/profiles/securityPolicies"
    params = policy["properties"]["parameters"]
    assert params["type"] == "WebApplicationFirewall"
    assert "wafPolicy" in json.dumps(params["wafPolicy"]["id"])
    (association,) = params["associations"]
    assert "endpoint" in json.dumps(association["domains"])
    assert association["patternsToMatch"] == ["/*"]


def test_waf_requires_a_bearer_header_except_on_the_anonymous_paths() -> None:
    _, waf = resource(FRONT_DOOR, "wafPolicy")
    rules = {rule["name"]: rule for rule in waf["properties"]["customRules"]["rules"]}
    rule = rules["RequireBearerToken"]
    assert (rule["ruleType"], rule["action"], rule["enabledState"]) == (
        "MatchRule",
        "Block",
        "Enabled",
    )
    header, uri = rule["matchConditions"]
    assert (header["matchVariable"], header["selector"]) == ("RequestHeader", "Authorization")
    assert (header["operator"], header["negateCondition"]) == ("BeginsWith", True)
    assert header["transforms"] == ["Lowercase"]
    assert header["matchValue"] == ["bearer "]
    assert (uri["matchVariable"], uri["operator"], uri["negateCondition"]) == (
        "RequestUri",
        "RegEx",
        True,
    )
    pattern = re.compile(parse(FRONT_DOOR)["variables"]["anonymousPathsRegex"]["value"])
    for anonymous in (
        "/api/health",
        "https://fde-x.z01.azurefd.net/api/health",
        "/api/docs",
        "/api/docs/assets/swagger-ui-bundle.js",
        "/api/docs/assets/favicon.png",
        "/api/openapi.json",
    ):
        assert pattern.search(anonymous), anonymous
    for guarded in (
        "/api/v1/ohlcv?exchange=binance",
        "/api/v1/ohlcv?x=/api/health",
        "/api/healthz",
        "/api/openapixjson",
        "/api/docs/assets/../../v1/ohlcv",
        "/api/docs/assets/",
        "/api/docsx",
    ):
        assert not pattern.search(guarded), guarded


def test_front_door_logs_go_to_the_workspace() -> None:
    _, settings = resource(FRONT_DOOR, "profileDiagnostics")
    assert settings["scope"] == "profile"
    categories = {log["category"] for log in settings["properties"]["logs"]}
    assert categories == {
        "FrontDoorAccessLog",
        "FrontDoorHealthProbeLog",
        "FrontDoorWebApplicationFirewallLog",
    }
