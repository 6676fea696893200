"""template/docker and template/kubernetes are pushed alone, so each keeps its own copy of what they share
(the admin's variables, the user's parameters, the agents and apps, the builder's settings) - and the
copies must not drift. What they share is compared as python-hcl2 parses it (comments and layout aside)
and as Terraform evaluates it; every difference is named below with its reason, and a difference that is
gone must leave the list too. template/modules/vm-host is compared where it shares a block."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from devcontainer_builder.settings import options
from support import hcl
from support.defaults import not_the_tables
from support.terraform import TEMPLATES, Workdir, planned, workdir

DOCKER, KUBERNETES, VM = "docker", "kubernetes", "modules/vm-host"

# (kind, name, attribute) -> why template/docker and template/kubernetes say it differently
DIFFERENCES = {
    ("variable", "arch", "description"): "the CPU of the Docker host, of the cluster's nodes",
    ("variable", "owner_engine_access", "description"): "what the privileged engine reaches: the host, the node",
    ("variable", "engine_bridge", "default"): "on a Docker host Docker's default bridge, 172.17.0.0/16, is the "
    "host's own, where Coder and git often are: the nested engine takes another; a pod's network is elsewhere",
    ("variable", "engine_bridge", "description"): "the default's reason, said",
    ("variable", "engine_bridge", "validation"): "empty (Docker's default bridge) is allowed in a pod only",
}
# (kind, name, attribute) -> why template/modules/vm-host says it differently from both templates
VM_DIFFERENCES = {
    ("variable", "fallback_image", "default"): "Podman guesses no registry for a short name: docker.io/ in front",
    ("variable", "fallback_image", "description"): "the default's reason, said",
    ("variable", "fallback_image", "validation"): "the module writes the value into a file systemd reads",
    ("variable", "fallback_image", "nullable"): "a module's input: null from a caller is its default",
}
# settings the builder gets from one template only -> why
ENV_DIFFERENCES = {
    (KUBERNETES, "DOCKER_CONFIG"): "registry credentials for the cache (cache_registry_auth) come from a "
    "Kubernetes Secret; template/docker takes none",
}
# (template, container, setting) whose value at the template's defaults is not the options table's -> why
DEFAULT_DIFFERENCES = {
    (DOCKER, "builder", "DEVCONTAINER_BUILDER_MODE"): "one container runs up, then serve",
    (KUBERNETES, "supervisor", "DEVCONTAINER_BUILDER_MODE"): "the pod's main container is serve",
    (DOCKER, "builder", "DEVCONTAINER_ENGINE_TIMEOUT"): "the engine's container is created after the builder's, "
    "its image maybe pulled first: 60 s is not enough on a first start",
    (KUBERNETES, "builder", "DEVCONTAINER_ENGINE_TIMEOUT"): "the sidecar the kubelet restarts after a crash "
    "comes back after a back-off of up to 5 minutes",
    (KUBERNETES, "supervisor", "DEVCONTAINER_ENGINE_TIMEOUT"): "the same sidecar, for serve's rebuilds",
}

REPOSITORY = "https://github.com/acme/widgets.git"
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
# every optional setting on, so that every key the builder can get is there
EVERYTHING = {
    "builder_image": "ghcr.io/acme/devcontainer-builder:0.1.0", "cache_repository": "registry.example.com/t/cache",
    "external_auth_id": "github", "extra_ca_bundle": PEM, "ide": "code-server", "ide_sha256": "0" * 64,
    "ide_source": "https://mirror.example.com/code-server.tar.gz", "extensions_gallery": "none",
    "owner_engine_access": True,
}  # fmt: skip
KUBERNETES_ONLY = {"cache_registry_auth": '{"auths": {}}'}
EVERY_PARAMETER = {
    "repository": REPOSITORY, "branch": "main", "rebuild": "true", "rebuild_full": "true",
    "dotfiles_repository": "acme/dotfiles", "dotfiles_install_command": "install.sh",
    "cpu": "4", "memory": "8", "disk_size": "20",
}  # fmt: skip
DOCKER_PARAMETERS = {k: v for k, v in EVERY_PARAMETER.items() if k not in ("cpu", "memory", "disk_size")}
DEFAULT_PARAMETERS = {"repository": REPOSITORY}


def differences(ours: dict[hcl.Address, dict[str, Any]], theirs: dict[hcl.Address, dict[str, Any]]) -> set:
    """(kind, name, attribute) of every attribute the blocks both define say differently (or only one has)."""
    found = set()
    for address in ours.keys() & theirs.keys():
        a, b = ours[address], theirs[address]
        found |= {(*address, attribute) for attribute in a.keys() | b.keys() if a.get(attribute) != b.get(attribute)}
    return found


def test_the_shared_variables_parameters_agents_and_apps_agree_but_for_the_named_differences() -> None:
    docker, kubernetes = hcl.blocks(TEMPLATES / DOCKER), hcl.blocks(TEMPLATES / KUBERNETES)
    shared = docker.keys() & kubernetes.keys()
    kinds = {kind for kind, _ in shared}
    assert {"variable", "data.coder_parameter", "resource.coder_agent", "resource.coder_app"} <= kinds
    assert len(shared) >= 25, sorted(shared)  # a parse that found little would compare little
    assert differences(docker, kubernetes) == set(DIFFERENCES)


def test_the_vm_module_says_what_it_shares_with_the_templates_as_they_do() -> None:
    vm = hcl.blocks(TEMPLATES / VM)
    for template in (DOCKER, KUBERNETES):
        theirs = hcl.blocks(TEMPLATES / template)
        assert ("variable", "fallback_image") in vm.keys() & theirs.keys()
        assert differences(vm, theirs) == set(VM_DIFFERENCES), template


def test_every_template_variable_named_after_a_setting_defaults_to_the_tables_or_is_named() -> None:
    """A variable that is one setting (build_timeout: DEVCONTAINER_BUILD_TIMEOUT) starts from the table's
    default, and its validation admits no value the builder refuses."""
    by_name = {option.name: option for option in options.OPTIONS}
    for template in (DOCKER, KUBERNETES):
        variables = {
            name: body for (kind, name), body in hcl.blocks(TEMPLATES / template).items() if kind == "variable"
        }
        same = sorted(variables.keys() & by_name.keys())
        assert "build_timeout" in same and "fallback_image" in same, same
        for name in same:
            default = hcl.literal(variables[name]["default"])
            option = by_name[name]
            assert default == "" or option.type.convert(str(default), None, None) == option.default, (template, name)
        (validation,) = variables["build_timeout"]["validation"]
        bounds = re.fullmatch(
            r"\$\{var.build_timeout >= (\d+) && var.build_timeout <= (\d+)\}", validation["condition"]
        )
        assert bounds, validation["condition"]
        number = by_name["build_timeout"].type
        assert number.min <= int(bounds[1]) <= int(bounds[2]) <= number.max, (template, bounds.groups())


@pytest.fixture(scope="module")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workdir]:
    work = workdir(DOCKER, tmp_path_factory.mktemp("tf"))
    work.init()
    yield work


@pytest.fixture(scope="module")
def kubernetes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workdir]:
    work = workdir(KUBERNETES, tmp_path_factory.mktemp("tf"))
    work.init()
    yield work


# known only after apply (the agents' tokens and what is derived from them), or secret
HIDDEN = sorted(
    options.SECRET_ENV | {"CODER_INIT_SCRIPT", "DEVCONTAINER_REBUILD_ID", "DEVCONTAINER_SERVE_AGENT_INIT_SCRIPT"}
)


def docker_env(work: Workdir, expression: str, variables: dict[str, Any], parameters: dict[str, str]) -> dict:
    """A map of the template's locals, every name, with the values of all but HIDDEN's."""
    hidden = ", ".join(f'"{name}"' for name in HIDDEN)
    return work.evaluate(
        f'{{for k, v in {expression} : k => contains([{hidden}], k) ? "(secret)" : try(nonsensitive(v), v)}}',
        variables,
        parameters,
    )


def pod_env(plan: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each container's environment in the planned pod: names, with the values set in the Deployment
    (those from the Secret as "(secret)")."""
    spec = planned(plan, "kubernetes_deployment_v1.workspace[0]")["spec"][0]["template"][0]["spec"][0]
    return {
        container["name"]: {
            entry["name"]: "(secret)" if entry.get("value_from") else entry.get("value", "")
            for entry in container.get("env", [])
        }
        for container in [*spec["init_container"], *spec["container"]]
    }


def test_the_builder_gets_the_same_settings_from_both_templates(docker: Workdir, kubernetes: Workdir) -> None:
    """With every option on: the names the builder's containers get, and the terminal's."""
    pod = pod_env(kubernetes.plan({**EVERYTHING, **KUBERNETES_ONLY}, EVERY_PARAMETER))
    on_docker = set(docker_env(docker, "local.builder_env", EVERYTHING, DOCKER_PARAMETERS))
    on_kubernetes = set(pod["builder"]) | set(pod["supervisor"])
    only = {(DOCKER, name) for name in on_docker - on_kubernetes} | {
        (KUBERNETES, name) for name in on_kubernetes - on_docker
    }
    assert len(on_docker & on_kubernetes) >= 30, sorted(on_docker & on_kubernetes)
    assert only == set(ENV_DIFFERENCES)
    terminal = set(docker_env(docker, "local.terminal_env", EVERYTHING, DOCKER_PARAMETERS))
    assert terminal == set(pod["terminal"]) == {
        "CODER_AGENT_TOKEN", "CODER_INIT_SCRIPT", "DEVCONTAINER_STATE_DIR", "DOCKER_HOST",
    }  # fmt: skip


def test_at_their_defaults_the_templates_give_the_builder_the_tables_defaults_or_a_named_difference(
    docker: Workdir, kubernetes: Workdir
) -> None:
    found = {
        (DOCKER, "builder", name)
        for name in not_the_tables(docker_env(docker, "local.builder_env", {}, DEFAULT_PARAMETERS), REPOSITORY)
    }
    for container, env in pod_env(kubernetes.plan({}, DEFAULT_PARAMETERS)).items():
        if container in ("builder", "supervisor"):
            found |= {(KUBERNETES, container, name) for name in not_the_tables(env, REPOSITORY)}
    assert found == set(DEFAULT_DIFFERENCES)
