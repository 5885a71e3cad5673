"""The GitHub Actions workflows: pinned actions, least privilege, the README's test command."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

# PyYAML comes with uvicorn[standard] (requirements-dev.txt); it ships no type stubs.
yaml = pytest.importorskip("yaml")

WORKFLOWS = Path(__file__).resolve().parents[3] / ".github" / "workflows"
FULL_SHA = re.compile(r"^[^@\s]+@[0-9a-f]{40}$")


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(data, dict)
    return data


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_actions_are_pinned_to_full_commit_shas(name: str) -> None:
    uses = [step["uses"] for step in steps(load(name)) if "uses" in step]
    assert uses
    for ref in uses:
        assert FULL_SHA.match(ref), f"{name}: {ref} is not pinned to a commit SHA"


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_permissions_are_least_privilege(name: str) -> None:
    workflow = load(name)
    assert workflow["permissions"] == {}, "no default token rights at the top level"
    for job in workflow["jobs"].values():
        granted = job["permissions"]
        assert granted.get("contents") == "read"
        assert set(granted.values()) <= {"read", "write"}
        writes = {scope for scope, level in granted.items() if level == "write"}
        assert writes <= {"id-token"}


def test_ci_runs_the_readme_test_command_with_node_for_azurite() -> None:
    ci = load("ci.yml")
    runs = [step.get("run", "") for step in steps(ci)]
    assert any(run.startswith("scripts/test.sh") for run in runs)
    uses = " ".join(step.get("uses", "") for step in steps(ci))
    assert "actions/setup-python@" in uses
    assert "actions/setup-node@" in uses
    assert "id-token" not in str(ci["jobs"])


def test_deploy_uses_oidc_login_then_azd_deploy() -> None:
    deploy = load("deploy.yml")
    [job] = deploy["jobs"].values()
    assert job["permissions"]["id-token"] == "write"
    assert job["environment"] == "production"
    login = next(step for step in job["steps"] if "azure/login@" in step.get("uses", ""))
    assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}
    assert "creds" not in login["with"], "OIDC only, no stored credentials"
    assert any("azd deploy" in step.get("run", "") for step in job["steps"])
    assert "secrets." not in (WORKFLOWS / "deploy.yml").read_text()
