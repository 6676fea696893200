"""template/docker under real Terraform and the real kreuzwerker/docker provider: formatted, valid with no
warning, and a plan wired as its README says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from devcontainer_builder.settings import options
from support.terraform import (
    Workdir,
    addresses,
    assert_checkov_clean,
    assert_formatted_and_valid,
    data_sources,
    planned,
    workdir,
)

PARAMETERS = {"repository": "git@github.com:acme/widgets.git", "branch": "", "rebuild": "false",
              "rebuild_full": "false"}  # fmt: skip
VARIABLES = {"builder_image": "ghcr.io/acme/devcontainer-builder:0.1.0", "external_auth_id": "github"}
BUILDER = "docker_container.builder[0]"
ENGINE = "docker_container.engine[0]"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workdir]:
    work = workdir("docker", tmp_path_factory.mktemp("tf"))
    work.init()
    yield work


@pytest.fixture(scope="module")
def plan(template: Workdir) -> dict[str, Any]:
    return template.plan(VARIABLES, PARAMETERS)


SECRETS = ("CODER_AGENT_TOKEN", "CODER_INIT_SCRIPT", "GH_TOKEN", "DEVCONTAINER_SSH_PRIVATE_KEY",
           "DEVCONTAINER_REBUILD_ID", "DEVCONTAINER_SERVE_PAGE_KEY")  # fmt: skip  # the last two: digests of tokens
TERMINAL = "docker_container.terminal[0]"


def env_of(template: Workdir, parameters: dict[str, str] = PARAMETERS) -> dict[str, str]:
    """The builder's environment (the container's `env` is known only after apply: it holds the agents'
    tokens): every name, with the values of all but the secrets."""
    secrets = ", ".join(f'"{name}"' for name in SECRETS)
    expression = (
        f'{{for k, v in local.builder_env : k => contains([{secrets}], k) ? "(secret)" : try(nonsensitive(v), v)}}'
    )
    return template.evaluate(expression, VARIABLES, parameters)


def test_the_template_is_formatted_and_valid_with_no_warning(template: Workdir) -> None:
    assert_formatted_and_valid(template)


def test_the_builder_runs_up_then_serve_with_settings_the_builder_knows(
    template: Workdir, plan: dict[str, Any]
) -> None:
    env = env_of(template)
    known = {option.env for option in options.OPTIONS} | {"DOCKER_HOST"}
    assert set(env) - known == set(), "the template sets variables the builder does not know"
    assert env["DEVCONTAINER_BUILDER_MODE"] == "up-serve"
    assert env["DEVCONTAINER_REPOSITORY"] == PARAMETERS["repository"]
    assert "DEVCONTAINER_BRANCH" not in env, "no branch: the repository's default"
    assert env["DEVCONTAINER_WORKSPACE_FOLDER"] == "/workspaces/widgets"
    assert {name for name, value in env.items() if value == "(secret)"} == set(SECRETS)


def test_only_the_engine_is_privileged_and_the_builder_is_locked_down(template: Workdir, plan: dict[str, Any]) -> None:
    engine, builder = planned(plan, ENGINE), planned(plan, BUILDER)
    assert engine["privileged"] is True and "--group=2375" in engine["command"]
    assert not builder["privileged"]
    assert builder["read_only"] is True and builder["group_add"] == ["2375"]
    assert builder["capabilities"][0]["drop"] == ["ALL"] and "no-new-privileges" in builder["security_opts"]
    (daemon,) = engine["upload"]
    assert json.loads(daemon["content"]) == {"bip": "10.200.0.1/24", "features": {"containerd-snapshotter": True}}
    assert builder["tmpfs"]["/tmp"].startswith("exec,"), "the agent's init script runs what it downloads there"
    sysbox = template.plan(dict(VARIABLES, engine_runtime="sysbox-runc"), PARAMETERS)
    assert planned(sysbox, ENGINE)["privileged"] is False and planned(sysbox, ENGINE)["runtime"] == "sysbox-runc"


def test_the_engine_and_builder_share_the_workspaces_at_one_path(plan: dict[str, Any]) -> None:
    def mounts(container: dict[str, Any]) -> dict[str, str]:
        return {v["container_path"]: v["volume_name"] for v in container["volumes"]}

    engine, builder = mounts(planned(plan, ENGINE)), mounts(planned(plan, BUILDER))
    assert engine["/workspaces"] == builder["/workspaces"], "bind mounts resolve inside the engine"
    assert engine["/run/engine"] == builder["/run/engine"], "the socket"
    assert "/var/lib/docker" in engine


def test_a_stopped_workspace_keeps_its_volumes_and_runs_nothing(template: Workdir) -> None:
    stopped = addresses(template.plan(VARIABLES, PARAMETERS, CODER_WORKSPACE_TRANSITION="stop"))
    for volume in ("workspaces", "engine", "socket", "state"):
        assert f"docker_volume.{volume}" in stopped, f"the {volume} volume has no count: it survives a stop"
    assert not [address for address in stopped if address.startswith("docker_container.")]


def test_the_rebuild_parameters_make_that_start_rebuild(template: Workdir, plan: dict[str, Any]) -> None:
    env = env_of(template)
    assert (env["DEVCONTAINER_REBUILD"], env["DEVCONTAINER_REBUILD_FULL"]) == ("false", "false")
    assert env_of(template, dict(PARAMETERS, rebuild="true"))["DEVCONTAINER_REBUILD"] == "true"
    parameters = {v["name"]: v for a, v in data_sources(plan).items() if a.startswith("data.coder_parameter.")}
    assert parameters["rebuild"]["ephemeral"] is True and parameters["rebuild_full"]["ephemeral"] is True


def test_coders_labels_are_on_every_container_and_volume(plan: dict[str, Any]) -> None:
    for address in (ENGINE, BUILDER, "docker_volume.workspaces", "docker_volume.engine"):
        labels = {label["label"]: label["value"] for label in planned(plan, address)["labels"]}
        assert labels["coder.workspace_id"] == "4f0c8f3e-2a5b-4c1d-9e7f-0a1b2c3d4e5f"
        assert labels["coder.owner"] == "alice"


def test_the_status_app_is_the_page_with_its_key_on_the_address_serve_holds(plan: dict[str, Any]) -> None:
    app = planned(plan, "coder_app.status")
    assert app["healthcheck"][0]["url"] == "http://127.0.0.1:7480/healthz", "127.0.0.1: never ::1 by resolution"
    # the page's key comes from the builder agent's token, known after apply (test_docker_rehearsal.py uses it)
    (change,) = [c["change"] for c in plan["resource_changes"] if c["address"] == "coder_app.status"]
    assert "url" not in app and change["after_unknown"]["url"] is True


def test_the_owners_terminal_has_no_engine_and_reads_the_state_unless_the_admin_gives_it_the_engine(
    template: Workdir, plan: dict[str, Any]
) -> None:
    def mounts(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {v["container_path"]: v for v in container["volumes"]}

    terminal, builder = planned(plan, TERMINAL), planned(plan, BUILDER)
    assert terminal["entrypoint"] == ["sh", "-c", 'eval "$CODER_INIT_SCRIPT"'], "Coder's builder agent runs here"
    found = mounts(terminal)
    assert "/run/engine" not in found and not terminal.get("group_add"), "no engine, not its group"
    state = found["/workspaces/.devcontainer-builder"]
    assert (
        state["read_only"] is True
        and state["volume_name"] == mounts(builder)["/workspaces/.devcontainer-builder"]["volume_name"]
    )
    assert not found["/workspaces"].get("read_only"), "the user's files"
    assert terminal["read_only"] is True and terminal["capabilities"][0]["drop"] == ["ALL"]
    assert "no-new-privileges" in terminal["security_opts"]
    known = 'if !contains(["CODER_AGENT_TOKEN", "CODER_INIT_SCRIPT"], k)'  # the others are known after apply
    expression = f"{{for k, v in local.terminal_env : k => try(nonsensitive(v), v) {known}}}"
    assert "DOCKER_HOST" not in template.evaluate(expression, VARIABLES, PARAMETERS)
    assert "DEVCONTAINER_SERVE_AGENT_TOKEN" not in env_of(template), "serve runs no agent here"
    allowed_variables = dict(VARIABLES, owner_engine_access="true")
    allowed = planned(template.plan(allowed_variables, PARAMETERS), TERMINAL)
    assert mounts(allowed)["/run/engine"]["volume_name"] == mounts(builder)["/run/engine"]["volume_name"]
    assert allowed["group_add"] == ["2375"]
    assert (
        template.evaluate(expression, allowed_variables, PARAMETERS)["DOCKER_HOST"] == "unix:///run/engine/docker.sock"
    )


def test_main_is_the_agent_coder_puts_first(plan: dict[str, Any]) -> None:
    main, builder = planned(plan, "coder_agent.main"), planned(plan, "coder_agent.builder")
    assert main["order"] < builder["order"], "Coder orders agents by `order`: apps and AI tools go to main first"


def test_checkov_finds_nothing_and_every_skip_says_why() -> None:
    assert_checkov_clean("docker")


def test_stops_are_graceful_and_the_engine_takes_dns_and_an_extra_ca(template: Workdir) -> None:
    ca = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n"
    plan = template.plan(dict(VARIABLES, extra_ca_bundle=ca, engine_dns=["10.0.0.53"]), PARAMETERS)
    engine, builder = planned(plan, ENGINE), planned(plan, BUILDER)
    assert engine["destroy_grace_seconds"] == 30 and builder["destroy_grace_seconds"] == 30
    uploads = {upload["file"]: upload["content"] for upload in engine["upload"]}
    assert uploads["/etc/ssl/certs/devcontainer-builder-extra-ca.crt"] == ca
    assert json.loads(uploads["/etc/docker/daemon.json"])["dns"] == ["10.0.0.53"]


def test_the_editor_is_a_coder_app_on_the_main_agent_with_a_health_check(
    template: Workdir, plan: dict[str, Any]
) -> None:
    assert not [a for a in addresses(plan) if a.startswith("coder_app.code_server")], "off unless the admin turns it on"
    assert "DEVCONTAINER_IDE" not in env_of(template)
    sha = "ab" * 32
    variables = dict(VARIABLES, ide="code-server", ide_sha256=sha, ide_source="https://mirror.example/cs.tar.gz",
                     extensions_gallery="https://vsx.example/vscode/gallery")  # fmt: skip
    with_ide = template.plan(variables, PARAMETERS)
    app = planned(with_ide, "coder_app.code_server[0]")
    assert app["url"] == "http://localhost:13337/?folder=/workspaces/widgets"
    assert app["healthcheck"][0]["url"] == "http://localhost:13337/healthz"
    assert app["subdomain"] is False and app["share"] == "owner"
    (config,) = [
        r for r in with_ide["configuration"]["root_module"]["resources"] if r["address"] == "coder_app.code_server"
    ]
    assert "coder_agent.main.id" in config["expressions"]["agent_id"]["references"]
    env = template.evaluate(
        '{for k, v in local.builder_env : k => try(nonsensitive(v), v) if startswith(k, "DEVCONTAINER_IDE") || '
        'startswith(k, "DEVCONTAINER_EXTENSIONS")}',
        variables,
        PARAMETERS,
    )
    assert env == {
        "DEVCONTAINER_IDE": "code-server",
        "DEVCONTAINER_IDE_SHA256": sha,
        "DEVCONTAINER_IDE_SOURCE": "https://mirror.example/cs.tar.gz",
        "DEVCONTAINER_EXTENSIONS_GALLERY": "https://vsx.example/vscode/gallery",
    }


def test_code_server_without_its_sha256_is_refused_by_the_plan(template: Workdir) -> None:
    with pytest.raises(AssertionError, match="needs ide_sha256"):
        template.plan(dict(VARIABLES, ide="code-server"), PARAMETERS)


def test_the_dotfiles_parameters_reach_the_builder(template: Workdir) -> None:
    assert "DEVCONTAINER_DOTFILES_REPOSITORY" not in env_of(template)
    parameters = dict(PARAMETERS, dotfiles_repository="https://github.com/alice/dotfiles.git",
                      dotfiles_install_command="setup/install.sh")  # fmt: skip
    env = env_of(template, parameters)
    assert env["DEVCONTAINER_DOTFILES_REPOSITORY"] == "https://github.com/alice/dotfiles.git"
    assert env["DEVCONTAINER_DOTFILES_INSTALL_COMMAND"] == "setup/install.sh"


@pytest.mark.parametrize("value", ["https://example.com/dots;id", "acme/dots$(id)", "acme/dots`id`"])
def test_a_dotfiles_repository_with_a_shell_character_is_refused_by_the_plan(template: Workdir, value: str) -> None:
    """The builder refuses such a value (exit 2, it would reach the CLI's script): Coder's form says so first."""
    with pytest.raises(AssertionError, match="percent-encode"):
        template.plan(VARIABLES, dict(PARAMETERS, dotfiles_repository=value))
