"""template/kubernetes under real Terraform and real providers: formatted, valid with no warning, and a
plan whose objects Kubernetes accepts and whose wiring keeps every promise of the README."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
from devcontainer_builder.settings import options
from support import k8s
from support.terraform import (
    Workdir,
    addresses,
    assert_checkov_clean,
    assert_formatted_and_valid,
    configured,
    data_sources,
    planned,
    workdir,
)

PARAMETERS = {"repository": "https://github.com/acme/widgets.git", "branch": "main", "cpu": "4", "memory": "8",
              "disk_size": "20", "rebuild": "false", "rebuild_full": "false"}  # fmt: skip
VARIABLES = {"namespace": "dev-workspaces", "builder_image": "ghcr.io/acme/devcontainer-builder:0.1.0",
             "cache_repository": "registry.example.com/team/cache", "external_auth_id": "github"}  # fmt: skip
SECRET_NAMES = {"CODER_AGENT_TOKEN", "CODER_INIT_SCRIPT", "GH_TOKEN", "DEVCONTAINER_SSH_PRIVATE_KEY"}
# read by the docker client in the builder's containers, not by the builder: not in its options table
DOCKER_CLIENT = {"DOCKER_HOST", "DOCKER_CONFIG"}
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
DEPLOYMENT = "kubernetes_deployment_v1.workspace[0]"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workdir]:
    work = workdir("kubernetes", tmp_path_factory.mktemp("tf"))
    work.init()
    yield work


@pytest.fixture(scope="module")
def plan(template: Workdir) -> dict[str, Any]:
    return template.plan(VARIABLES, PARAMETERS)


def pod(plan: dict[str, Any]) -> dict[str, Any]:
    return planned(plan, DEPLOYMENT)["spec"][0]["template"][0]["spec"][0]


def containers(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = pod(plan)
    return {c["name"]: c for c in [*spec["init_container"], *spec["container"]]}


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def test_the_template_is_formatted_and_valid_with_no_warning(template: Workdir) -> None:
    assert_formatted_and_valid(template)


def test_the_planned_objects_are_valid_kubernetes(plan: dict[str, Any]) -> None:
    objects = [
        k8s.deployment(planned(plan, DEPLOYMENT)),
        k8s.persistent_volume_claim(planned(plan, "kubernetes_persistent_volume_claim_v1.workspaces")),
        k8s.persistent_volume_claim(planned(plan, "kubernetes_persistent_volume_claim_v1.engine[0]")),
        k8s.config_map(planned(plan, "kubernetes_config_map_v1.engine[0]")),
        k8s.secret(planned(plan, "kubernetes_secret_v1.agent[0]"), ["main-agent-token"]),
    ]
    for version in KUBERNETES_VERSIONS:
        for obj in objects:
            kubernetes_validate.validate(obj, version, strict=True)  # raises with the path of what is wrong
    deployment = objects[0]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert [c["name"] for c in deployment["spec"]["template"]["spec"]["initContainers"]] == ["engine", "builder"]


def test_the_engine_is_a_native_sidecar_and_the_only_privileged_container(plan: dict[str, Any]) -> None:
    found = containers(plan)
    engine = found["engine"]
    assert engine["restart_policy"] == "Always", "a native sidecar: it keeps running beside the builder"
    probe = engine["startup_probe"][0]["exec"][0]["command"]
    assert probe[0] == "docker" and probe[-1] == "version", "the builder starts once the engine answers"
    assert engine["security_context"][0]["privileged"] is True
    assert "--group=2375" in engine["args"]
    for name in ("builder", "supervisor", "terminal"):
        context = found[name]["security_context"][0]
        assert context["privileged"] is not True and context["allow_privilege_escalation"] is False
        assert context["run_as_non_root"] is True and context["run_as_user"] == "1000"
        assert context["capabilities"][0]["drop"] == ["ALL"]
        assert context["seccomp_profile"][0]["type"] == "RuntimeDefault"
    assert pod(plan)["security_context"][0]["supplemental_groups"] == [2375], "the socket's group, not root"


def test_secrets_reach_the_containers_only_through_secret_key_refs(plan: dict[str, Any]) -> None:
    for name, container in containers(plan).items():
        for var, entry in env_of(container).items():
            if var in SECRET_NAMES:
                assert not entry.get("value"), f"{var} is a literal value in {name}"
                ref = entry["value_from"][0]["secret_key_ref"][0]
                assert ref["name"] == "coder-4f0c8f3e-2a5b-4c1d-9e7f-0a1b2c3d4e5f-agent"
    secret = configured(plan, "kubernetes_secret_v1.agent")["expressions"]["data"]["references"]
    for reference in ("coder_agent.main.token", "coder_agent.main.init_script", "coder_agent.builder.token",
                      "coder_agent.builder.init_script", "data.coder_external_auth.git"):  # fmt: skip
        assert reference in secret, f"the Secret does not take {reference}"
    builder = env_of(containers(plan)["builder"])
    assert builder["CODER_INIT_SCRIPT"]["value_from"][0]["secret_key_ref"][0]["key"] == "main-agent-init-script"
    terminal = env_of(containers(plan)["terminal"])
    assert terminal["CODER_AGENT_TOKEN"]["value_from"][0]["secret_key_ref"][0]["key"] == "builder-agent-token"
    assert terminal["CODER_INIT_SCRIPT"]["value_from"][0]["secret_key_ref"][0]["key"] == "builder-agent-init-script"
    assert not {"GH_TOKEN", "DEVCONTAINER_SSH_PRIVATE_KEY"} & set(terminal), "the owner's terminal gets no other secret"
    assert "DEVCONTAINER_SERVE_AGENT_TOKEN" not in env_of(containers(plan)["supervisor"]), "serve runs no agent here"


def test_every_variable_the_template_sets_is_a_builder_setting(plan: dict[str, Any]) -> None:
    known = {option.env for option in options.OPTIONS}
    required = {option.env for option in options.OPTIONS if option.required}
    for name in ("builder", "supervisor"):
        names = set(env_of(containers(plan)[name]))
        assert names - known - DOCKER_CLIENT == set(), f"{name} sets variables the builder does not know"
        assert required <= names
    assert env_of(containers(plan)["builder"])["DEVCONTAINER_BUILDER_MODE"]["value"] == "up"
    assert env_of(containers(plan)["supervisor"])["DEVCONTAINER_BUILDER_MODE"]["value"] == "serve"
    builder = env_of(containers(plan)["builder"])
    assert builder["DEVCONTAINER_REPOSITORY"]["value"] == PARAMETERS["repository"]
    assert builder["DEVCONTAINER_BRANCH"]["value"] == "main"
    assert builder["DEVCONTAINER_CACHE_TO"]["value"] == "type=registry,ref=registry.example.com/team/cache,mode=max"
    # the same settings in both, so `serve`'s rebuilds build what `up` built
    shared = {k: v for k, v in builder.items() if k not in ("DEVCONTAINER_BUILDER_MODE", "DEVCONTAINER_REBUILD",
                                                                "DEVCONTAINER_REBUILD_FULL", "DEVCONTAINER_REBUILD_ID")}  # fmt: skip
    supervisor = env_of(containers(plan)["supervisor"])
    assert all(supervisor.get(k) == v for k, v in shared.items())


def test_the_rebuild_parameters_make_that_start_rebuild(template: Workdir, plan: dict[str, Any]) -> None:
    builder = env_of(containers(plan)["builder"])
    assert (builder["DEVCONTAINER_REBUILD"]["value"], builder["DEVCONTAINER_REBUILD_FULL"]["value"]) == (
        "false",
        "false",
    )
    rebuilt = template.plan(VARIABLES, dict(PARAMETERS, rebuild="true", rebuild_full="true"))
    builder = env_of(containers(rebuilt)["builder"])
    assert (builder["DEVCONTAINER_REBUILD"]["value"], builder["DEVCONTAINER_REBUILD_FULL"]["value"]) == ("true", "true")
    assert "DEVCONTAINER_REBUILD" not in env_of(containers(rebuilt)["supervisor"]), "serve's rebuilds are asked for"
    parameters = {v["name"]: v for a, v in data_sources(plan).items() if a.startswith("data.coder_parameter.")}
    for name in ("rebuild", "rebuild_full"):
        assert parameters[name]["ephemeral"] is True and parameters[name]["mutable"] is True
    assert parameters["disk_size"]["mutable"] is False, "shrinking the volume would replace it: data loss"


def test_a_stopped_workspace_keeps_its_volumes_and_runs_nothing(template: Workdir) -> None:
    stopped = template.plan(VARIABLES, PARAMETERS, CODER_WORKSPACE_TRANSITION="stop")
    found = addresses(stopped)
    assert "kubernetes_persistent_volume_claim_v1.workspaces" in found, "no count: it survives a stop"
    assert "kubernetes_persistent_volume_claim_v1.engine[0]" in found
    assert not [address for address in found if address.startswith("kubernetes_deployment_v1")]
    assert not [address for address in found if address.startswith("kubernetes_secret_v1")], "no token kept"


def test_the_builder_agent_shows_the_devcontainer_and_its_page(plan: dict[str, Any]) -> None:
    builder = planned(plan, "coder_agent.builder")
    (metadata,) = builder["metadata"]
    assert metadata["script"].startswith("devcontainer-builder status --short")
    app = planned(plan, "coder_app.status")
    assert app["healthcheck"][0]["url"] == "http://127.0.0.1:7480/healthz"
    # the page's address holds its key, from the builder agent's token: known after apply (the formula is
    # checked against serve's own in test_vm_host.py)
    (change,) = [c["change"] for c in plan["resource_changes"] if c["address"] == "coder_app.status"]
    assert "url" not in app and change["after_unknown"]["url"] is True
    assert app["subdomain"] is False, "relative URLs: it works behind the path-based app proxy"
    main = planned(plan, "coder_agent.main")
    assert main["env"]["CODER_AGENT_DEVCONTAINERS_ENABLE"] == "false"
    build_timeout = plan["configuration"]["root_module"]["variables"]["build_timeout"]["default"]
    assert main["connection_timeout"] >= build_timeout + 600, "it waits out the longest build, and the clone before"


def test_the_owners_terminal_has_no_engine_and_reads_the_state_unless_the_admin_gives_it_the_engine(
    template: Workdir, plan: dict[str, Any]
) -> None:
    def mounts(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {m["mount_path"]: m for m in container["volume_mount"]}

    terminal = containers(plan)["terminal"]
    assert terminal["command"] == ["sh", "-c", 'eval "$CODER_INIT_SCRIPT"'], "Coder's builder agent runs here"
    found = mounts(terminal)
    assert "/run/engine" not in found and "DOCKER_HOST" not in env_of(terminal), "no engine"
    state = found["/workspaces/.devcontainer-builder"]
    assert (state["name"], state["sub_path"], state["read_only"]) == ("workspaces", ".devcontainer-builder", True)
    assert found["/workspaces"]["read_only"] is False, "the user's files"
    assert found["/tmp"]["name"] != mounts(containers(plan)["supervisor"])["/tmp"]["name"], "not the builder's /tmp"
    allowed = containers(template.plan(dict(VARIABLES, owner_engine_access="true"), PARAMETERS))["terminal"]
    assert mounts(allowed)["/run/engine"]["name"] == "socket"
    assert env_of(allowed)["DOCKER_HOST"]["value"] == "unix:///run/engine/docker.sock"


def test_main_is_the_agent_coder_puts_first(plan: dict[str, Any]) -> None:
    main, builder = planned(plan, "coder_agent.main"), planned(plan, "coder_agent.builder")
    assert main["order"] < builder["order"], "Coder orders agents by `order`: apps and AI tools go to main first"


def test_checkov_finds_nothing_and_every_skip_says_why() -> None:
    assert_checkov_clean("kubernetes")


CA = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n"


def test_an_extra_ca_and_a_bridge_reach_the_builder_and_the_engine(template: Workdir) -> None:
    plan = template.plan(dict(VARIABLES, extra_ca_bundle=CA), PARAMETERS)
    found = containers(plan)
    for name in ("builder", "supervisor"):
        assert env_of(found[name])["DEVCONTAINER_CA_BUNDLE"]["value"] == CA
    (mount,) = [m for m in found["engine"]["volume_mount"] if m["mount_path"].startswith("/etc/ssl/certs/")]
    assert mount["sub_path"] == "extra-ca.crt" and mount["read_only"] is True
    assert planned(plan, "kubernetes_config_map_v1.engine[0]")["data"]["extra-ca.crt"] == CA
    bridged = template.plan(dict(VARIABLES, engine_bridge="10.200.0.1/24"), PARAMETERS)
    daemon = json.loads(planned(bridged, "kubernetes_config_map_v1.engine[0]")["data"]["daemon.json"])
    assert daemon == {"bip": "10.200.0.1/24", "features": {"containerd-snapshotter": True}}
    kubernetes_validate.validate(k8s.deployment(planned(plan, DEPLOYMENT)), KUBERNETES_VERSIONS[-1], strict=True)


def test_the_pod_gets_no_api_token_and_no_service_links(plan: dict[str, Any]) -> None:
    spec = pod(plan)
    assert spec["automount_service_account_token"] is False and spec["enable_service_links"] is False


def test_a_url_without_a_repository_name_is_refused_before_anything_is_created(template: Workdir) -> None:
    with pytest.raises(AssertionError, match="must end in a repository name"):
        template.plan(VARIABLES, dict(PARAMETERS, repository="https://github.com/acme/.."))


def test_the_git_token_goes_only_to_the_host_it_is_for(template: Workdir) -> None:
    lookalike = "https://g\u0456thub.com/acme/widgets.git"  # a Cyrillic i
    plan = template.plan(VARIABLES, dict(PARAMETERS, repository=lookalike))
    for name in ("builder", "supervisor"):
        assert "GH_TOKEN" not in env_of(containers(plan)[name]), "no token for another host"
    ssh = template.plan(VARIABLES, dict(PARAMETERS, repository="git@github.com:acme/widgets.git"))
    assert "GH_TOKEN" in env_of(containers(ssh)["builder"]), "the same host, whatever the URL's form"


def test_the_editor_is_a_coder_app_on_the_main_agent_and_its_settings_reach_both_builder_containers(
    template: Workdir, plan: dict[str, Any]
) -> None:
    assert not [a for a in addresses(plan) if a.startswith("coder_app.code_server")], "off unless the admin turns it on"
    sha = "cd" * 32
    variables = dict(VARIABLES, ide="code-server", ide_sha256=sha, extensions_gallery="none")
    parameters = dict(PARAMETERS, dotfiles_repository="alice/dotfiles")
    with_ide = template.plan(variables, parameters)
    app = planned(with_ide, "coder_app.code_server[0]")
    assert app["url"] == "http://localhost:13337/?folder=/workspaces/widgets"
    assert app["healthcheck"][0]["url"] == "http://localhost:13337/healthz"
    (config,) = [
        r for r in with_ide["configuration"]["root_module"]["resources"] if r["address"] == "coder_app.code_server"
    ]
    assert "coder_agent.main.id" in config["expressions"]["agent_id"]["references"]
    for name, container in containers(with_ide).items():
        if name in ("builder", "supervisor"):
            env = {key: entry.get("value") for key, entry in env_of(container).items()}
            assert env["DEVCONTAINER_IDE"] == "code-server" and env["DEVCONTAINER_IDE_SHA256"] == sha, name
            assert env["DEVCONTAINER_EXTENSIONS_GALLERY"] == "none"
            assert env["DEVCONTAINER_DOTFILES_REPOSITORY"] == "alice/dotfiles"
            assert "DEVCONTAINER_IDE_SOURCE" not in env, "empty: the builder's pinned release"
    with pytest.raises(AssertionError, match="needs ide_sha256"):
        template.plan(dict(VARIABLES, ide="code-server"), PARAMETERS)
