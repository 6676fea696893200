"""The Coder templates under real Terraform and the real providers, driven through python-terraform.

python-terraform (0.10.1) is a thin wrapper that builds the command line as a list and runs it; it works
with today's Terraform for what the tests need (init, validate, plan, show). It reads the environment
from os.environ, so the tests set the Coder provider's workspace variables there (monkeypatch), and it
has no timeout of its own: pytest-timeout bounds each test.

Providers come from the filesystem mirror tests/env/terraform-providers.sh builds (the Terraform registry
is not reachable here). Each template is copied into a temporary folder first, so `.terraform` and plan
files never land in the repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_terraform import IsFlagged, IsNotFlagged, Terraform

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "template"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "devcontainer-builder"
CLI_CONFIG = CACHE / "terraform" / "terraformrc"
CHECKOV = CACHE / "checkov" / "bin" / "checkov"

# what Coder sets when it runs a template for a workspace build (the coder provider reads these)
WORKSPACE_ENV = {
    "CODER_WORKSPACE_ID": "4f0c8f3e-2a5b-4c1d-9e7f-0a1b2c3d4e5f",
    "CODER_WORKSPACE_NAME": "dev",
    "CODER_WORKSPACE_TRANSITION": "start",
    "CODER_WORKSPACE_TEMPLATE_ID": "7d6e5f4a-3b2c-4d1e-8f9a-0b1c2d3e4f5a",
    "CODER_WORKSPACE_TEMPLATE_NAME": "devcontainer",
    "CODER_WORKSPACE_TEMPLATE_VERSION": "v1",
    "CODER_WORKSPACE_OWNER": "alice",
    "CODER_WORKSPACE_OWNER_ID": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
    "CODER_WORKSPACE_OWNER_EMAIL": "alice@example.com",
    "CODER_WORKSPACE_OWNER_NAME": "Alice",
    "CODER_AGENT_SCRIPT_linux_amd64": "#!/bin/sh\n# the init script Coder renders for linux/amd64\n",
}


def terraform_bin() -> str:
    found = shutil.which("terraform") or str(CACHE / "bin" / "terraform")
    if not os.access(found, os.X_OK):
        raise AssertionError("terraform is not installed: run tests/env/provision.sh test")
    return found


def parameter_env(name: str) -> str:
    """The variable the coder provider reads a parameter's value from."""
    return "CODER_PARAMETER_" + hashlib.sha256(name.encode()).hexdigest()


@dataclass
class Workdir:
    """A template copied into a folder of its own, initialised from the provider mirror."""

    name: str
    path: Path

    @property
    def tf(self) -> Terraform:
        return Terraform(working_dir=str(self.path), terraform_bin_path=terraform_bin())

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """A terraform command python-terraform has no method for, with a bound."""
        return subprocess.run(
            [terraform_bin(), *args], cwd=self.path, capture_output=True, text=True, timeout=timeout, check=False
        )

    def init(self) -> None:
        code, out, err = self.tf.init(capture_output=True, input=False, no_color=IsFlagged, backend=False)
        assert code == 0, f"terraform init failed for {self.name}:\n{out}\n{err}"

    def plan(self, variables: dict[str, Any], parameters: dict[str, str], **workspace: str) -> dict[str, Any]:
        """`terraform plan` with these admin variables and user parameters (and workspace variables over
        WORKSPACE_ENV's, e.g. CODER_WORKSPACE_TRANSITION="stop"), as `terraform show -json`."""
        saved = {key: os.environ.get(key) for key in (*WORKSPACE_ENV, *map(parameter_env, parameters))}
        os.environ.update(WORKSPACE_ENV, **workspace)
        os.environ.update({parameter_env(name): value for name, value in parameters.items()})
        try:
            code, out, err = self.tf.plan(
                capture_output=True,
                out="plan.bin",
                input=False,
                no_color=IsFlagged,
                detailed_exitcode=IsNotFlagged,
                var=variables or None,
            )
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        assert code == 0, f"terraform plan failed for {self.name}:\n{out}\n{err}"
        shown = self.run("show", "-json", "plan.bin")
        assert shown.returncode == 0, shown.stderr
        return json.loads(shown.stdout)

    def apply(
        self, variables: dict[str, Any], parameters: dict[str, str], destroy: bool = False, **workspace: str
    ) -> dict[str, Any]:
        """A workspace build as Coder's provisioner runs it: `terraform apply` (or `destroy`) with these
        admin variables, user parameters and workspace variables over WORKSPACE_ENV's (the transition,
        CODER_AGENT_URL, the init script, KUBE_CONFIG_PATH...); the state afterwards, with its values
        (`terraform show -json`), where Coder reads the agents' new tokens."""
        env = {**WORKSPACE_ENV, **workspace, **{parameter_env(name): value for name, value in parameters.items()}}
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        try:
            if destroy:
                code, out, err = self.tf.destroy(capture_output=True, input=False, no_color=IsFlagged,
                                                 force=IsNotFlagged, auto_approve=IsFlagged, var=variables or None)  # fmt: skip
            else:
                code, out, err = self.tf.apply(capture_output=True, input=False, no_color=IsFlagged, skip_plan=True,
                                               var=variables or None)  # fmt: skip
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        assert code == 0, f"terraform {'destroy' if destroy else 'apply'} failed for {self.name}:\n{out}\n{err}"
        shown = self.run("show", "-json")
        assert shown.returncode == 0, shown.stderr
        return json.loads(shown.stdout)

    def evaluate(self, expression: str, variables: dict[str, Any], parameters: dict[str, str], **workspace: str) -> Any:
        """An expression of the configuration (a local, say) as `terraform console -plan` evaluates it for
        these inputs - for what a plan cannot show because part of it is known only after apply. The
        expression must be known and free of sensitive values (wrap values in try(nonsensitive(v), v))."""
        env = {**os.environ, **WORKSPACE_ENV, **workspace, **{parameter_env(k): v for k, v in parameters.items()}}
        (self.path / "test.auto.tfvars.json").write_text(json.dumps(variables))
        try:
            result = subprocess.run(
                [terraform_bin(), "console", "-plan"], input=f"jsonencode({expression})\n", cwd=self.path, env=env,
                capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
        finally:
            (self.path / "test.auto.tfvars.json").unlink()
        assert result.returncode == 0, result.stderr
        return json.loads(json.loads(result.stdout))


def workdir(name: str, into: Path) -> Workdir:
    target = into / name
    shutil.copytree(TEMPLATES / name, target, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*", "plan.bin"))
    os.environ["TF_CLI_CONFIG_FILE"] = str(CLI_CONFIG)
    return Workdir(name, target)


# -- reading a plan --------------------------------------------------------------------------------------


def planned(plan: dict[str, Any], address: str) -> dict[str, Any]:
    """The planned values ("after") of one resource instance."""
    for change in plan["resource_changes"]:
        if change["address"] == address:
            return change["change"]["after"]
    raise AssertionError(f"{address} is not in the plan: {[c['address'] for c in plan['resource_changes']]}")


def in_state(state: dict[str, Any], address: str) -> dict[str, Any]:
    """The values of one resource instance in a state (`terraform show -json`)."""
    for resource in state.get("values", {}).get("root_module", {}).get("resources", []):
        if resource["address"] == address:
            return resource["values"]
    raise AssertionError(f"{address} is not in the state")


def addresses(plan: dict[str, Any]) -> list[str]:
    return [change["address"] for change in plan["resource_changes"]]


def configured(plan: dict[str, Any], address: str) -> dict[str, Any]:
    """A resource's configuration (its expressions, with the references each makes)."""
    for resource in plan["configuration"]["root_module"]["resources"]:
        if resource["address"] == address:
            return resource
    raise AssertionError(f"{address} is not configured")


# -- checks both templates share ---------------------------------------------------------------------------


def assert_formatted_and_valid(work: Workdir) -> None:
    fmt = work.run("fmt", "-check", "-diff", "-recursive")
    assert fmt.returncode == 0, f"terraform fmt would change:\n{fmt.stdout}"
    report = json.loads(work.run("validate", "-json", "-no-color").stdout)
    assert report["valid"], report
    assert (report["error_count"], report["warning_count"]) == (0, 0), report["diagnostics"]


def assert_checkov_clean(template: str) -> None:
    """checkov on the template: no failed check, and every skip carries its reason next to the resource."""
    result = subprocess.run(
        [str(CHECKOV), "-d", str(TEMPLATES / template), "--framework", "terraform", "--compact", "-o", "json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    if "results" not in report:  # nothing it has checks for (kreuzwerker/docker): it still had to parse it all
        assert report["parsing_errors"] == 0 and report["failed"] == 0, report
        return
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == [], failed
    for skipped in report["results"].get("skipped_checks", []):
        reason = skipped["check_result"].get("suppress_comment", "").strip()
        assert len(reason) > 10, f"{skipped['check_id']} is skipped without a reason"


def data_sources(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The plan's data sources by address, with their values."""
    resources = plan["prior_state"]["values"]["root_module"]["resources"]
    return {r["address"]: r["values"] for r in resources if r["mode"] == "data"}
