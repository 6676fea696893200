"""The admin's policy over compose projects: the merged model compose would run, service by service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from devcontainer_builder.engine import compose
from devcontainer_builder.policy import compose_guard, compose_rules
from devcontainer_builder.policy.rules import Policy


@pytest.fixture
def rules(tmp_path: Path) -> Policy:
    (tmp_path / "ws").mkdir()
    (tmp_path / "cli").mkdir()
    return Policy(
        workspace=str(tmp_path / "ws"),
        build_dirs=(str(tmp_path / "cli"),),
        project="ws-1234",
        service="app",
        labels=("devcontainer-builder.workspace=/w", "devcontainer-builder.role=service"),
        snapshot="/state/compose/snapshot.json",
    )


def model(rules: Policy, **app: Any) -> dict[str, Any]:
    """A project as `compose config` renders the usual devcontainer: app + db, the workspace bound in."""
    workspace = rules.workspace
    return {
        "name": "ws-1234",
        "services": {
            "app": {
                "build": {"context": workspace, "dockerfile": ".devcontainer/Dockerfile"},
                "volumes": [{"type": "bind", "source": workspace, "target": "/workspaces/ws"}],
                "network_mode": "service:db",
                **app,
            },
            "db": {"image": "postgres", "volumes": [{"type": "volume", "source": "data", "target": "/data"}]},
        },
        "volumes": {"data": {"name": "ws-1234_data"}},
        "networks": {"default": {"name": "ws-1234_default"}},
    }


def reasons(rules: Policy, project: dict[str, Any]) -> list[str]:
    return [item["reason"] for item in compose_rules.check_model(rules, project)]


def test_the_usual_devcontainer_project_is_allowed(rules: Policy) -> None:
    assert reasons(rules, model(rules)) == []


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ({"privileged": True}, "privileged: true"),
        ({"cap_add": ["SYS_ADMIN"]}, "capability SYS_ADMIN"),
        ({"security_opt": ["seccomp=unconfined"]}, "security option"),
        ({"network_mode": "host"}, "namespace outside"),
        ({"pid": "host"}, "namespace outside"),
        ({"ipc": "container:other"}, "namespace outside"),
        ({"userns_mode": "host"}, "namespace outside"),
        ({"devices": ["/dev/kvm:/dev/kvm"]}, "host devices"),
        ({"gpus": "all"}, "host devices"),
        ({"deploy": {"resources": {"reservations": {"devices": [{"capabilities": ["gpu"]}]}}}}, "host devices"),
        ({"volumes": [{"type": "bind", "source": "/", "target": "/host"}]}, "outside the workspace"),
        ({"volumes": [{"type": "bind", "source": "/var/run/docker.sock", "target": "/s"}]}, "outside the workspace"),
        ({"volumes": [{"type": "npipe", "source": "x", "target": "/x"}]}, "type npipe"),
        ({"volumes_from": ["other"]}, "volumes_from"),
        ({"env_file": [{"path": "/etc/shadow"}]}, "outside the workspace"),
        ({"cgroup_parent": "/"}, "cgroup_parent"),
        ({"runtime": "runc"}, "runtime"),
        ({"external_links": ["other"]}, "external_links"),
        ({"logging": {"driver": "json-file", "options": {"path": "/etc/x"}}}, "log file on the host"),
        ({"use_api_socket": True}, "not one the builder knows"),
        ({"credential_spec": {"file": "x"}}, "not one the builder knows"),
    ],
)
def test_a_service_may_not_reach_the_host(rules: Policy, setting: dict[str, Any], expected: str) -> None:
    found = reasons(rules, model(rules, **setting))
    assert any(expected in reason for reason in found), found


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        ({"context": "/"}, "build context / is outside"),
        ({"context": "https://example.com/x.git"}, "not a folder"),
        ({"dockerfile": "../../../etc/Dockerfile"}, "Dockerfile"),
        ({"additional_contexts": {"x": "/etc"}}, "build context /etc"),
        ({"ssh": ["default"]}, "SSH agent"),
        ({"network": "host"}, "namespace outside"),
        ({"privileged": True}, "privileged build"),
        ({"entitlements": ["security.insecure"]}, "entitlements"),
        ({"cache_from": ["type=local,src=/root"]}, "local cache"),
        ({"cache_to": ["type=registry,ref=evil/x"]}, "cache destination"),
        ({"secrets_from_host": True}, "not one the builder knows"),
        ({"tags": ["devcontainer-builder-test/enterprise-base:ubuntu"]}, "not one the builder knows"),
    ],
)
def test_a_build_may_not_reach_the_host(rules: Policy, build: dict[str, Any], expected: str) -> None:
    project = model(rules)
    project["services"]["app"]["build"].update(build)
    found = reasons(rules, project)
    assert any(expected in reason for reason in found), found


def test_builds_from_the_clis_own_folder_are_allowed(rules: Policy) -> None:
    """Features: the CLI writes Dockerfile-with-features and an empty context into its own folder."""
    cli = rules.build_dirs[0]
    project = model(rules, build={"context": cli, "dockerfile": f"{cli}/Dockerfile-with-features"})
    assert reasons(rules, project) == []


@pytest.mark.parametrize(
    ("key", "entry", "expected"),
    [
        ("networks", {"h": {"external": True, "name": "host"}}, "host's network"),
        ("networks", {"m": {"driver": "macvlan", "driver_opts": {"parent": "eth0"}}}, "network driver"),
        ("volumes", {"data": {"driver": "local", "driver_opts": {"type": "none", "o": "bind", "device": "/"}}}, "any"),
        ("secrets", {"s": {"file": "/var/run/secrets/kubernetes.io/serviceaccount/token"}}, "outside the workspace"),
        ("secrets", {"s": {"environment": "GH_TOKEN"}}, "builder's environment"),
        ("configs", {"c": {"file": "/etc/passwd"}}, "outside the workspace"),
        ("include", [{"path": "/x.yml"}], "not one the builder knows"),
        ("volumes", {"stolen": {"name": "ws-9999_pgdata"}}, "which is not this workspace's"),
        ("volumes", {"stolen": {"external": True, "name": "ws-9999_pgdata"}}, "which is not this workspace's"),
        ("networks", {"default": {"name": "ws-9999_default"}}, "which is not this workspace's"),
        ("networks", {"o": {"external": True, "name": "ws-9999_default"}}, "which is not this workspace's"),
        (
            "networks",
            {"default": {"name": "ws-1234_default", "ipam": {"config": [{"subnet": "10.0.0.0/8"}]}}},
            "chosen subnets",
        ),
    ],
)
def test_top_level_entries_may_not_reach_the_host(rules: Policy, key: str, entry: Any, expected: str) -> None:
    project = model(rules)
    project[key] = {**project.get(key, {}), **entry} if isinstance(entry, dict) else entry
    found = reasons(rules, project)
    assert any(expected in reason for reason in found), found


def test_the_admin_can_allow_what_a_project_asks_for(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    generous = Policy(
        workspace=str(tmp_path / "ws"),
        project="ws-1234",
        mounts=("/srv/data",),
        capabilities=("SYS_PTRACE",),
        privileges=("privileged", "host-namespaces", "devices"),
    )
    project = model(
        generous,
        privileged=True,
        cap_add=["SYS_PTRACE"],
        network_mode="host",
        devices=["/dev/fuse"],
        volumes=[{"type": "bind", "source": "/srv/data/x", "target": "/x"}],
    )
    assert reasons(generous, project) == []


def test_every_other_service_gets_the_workspace_labels_and_none_can_claim_the_devcontainers(rules: Policy) -> None:
    project = model(rules, labels={"devcontainer-builder.role": "devcontainer", "devcontainer-builder.x": "y"})
    project["services"]["db"]["labels"] = {
        "devcontainer.local_folder": "/w",
        "devcontainer-builder.role": "devcontainer",
        "app.tier": "db",
    }
    compose_guard.label(rules, project)
    assert project["services"]["db"]["labels"] == {
        "app.tier": "db",
        "devcontainer-builder.workspace": "/w",
        "devcontainer-builder.role": "service",
    }
    assert project["services"]["app"]["labels"] == {"devcontainer-builder.role": "devcontainer"}, (
        "the devcontainer keeps the identity the CLI's override file gave it, nothing else of the builder's"
    )


def refused(rules: Policy, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        compose_guard.guarded(rules, ["compose", *args])
    assert exit_info.value.code == 125
    return str(exit_info.value)


@pytest.mark.parametrize(
    "args",
    [
        ("--project-name", "other-workspace", "up", "-d"),
        ("-f", "x.yml", "up", "-d"),  # no project: compose would take .env's or the file's name
        ("-p", "other-workspace", "down"),
        ("-p", "ws-1234", "run", "--privileged", "app"),
        ("-p", "ws-1234", "exec", "app", "sh"),
        ("-p", "ws-1234", "cp", "/etc/shadow", "app:/x"),
        ("-p", "ws-1234", "watch"),
        ("--host", "tcp://evil:2375", "-p", "ws-1234", "up"),
        ("-p", "ws-1234", "up", "--unknown-flag"),
        ("config", "--output", "/tmp/x"),
    ],
)
def test_compose_calls_outside_the_workspaces_project_are_refused(rules: Policy, args: tuple[str, ...]) -> None:
    refused(rules, *args)


def test_compose_reads_the_builders_snapshot_never_the_repositorys_files(rules: Policy, tmp_path: Path) -> None:
    repo_file = tmp_path / "ws" / "compose.yml"
    repo_file.write_text("services: {}\n")
    rules.sources, rules.snapshot = (str(repo_file),), str(tmp_path / "snapshot.json")
    override = f"{rules.build_dirs[0]}/docker-compose/override.yml"
    args = ["compose", "-f", str(repo_file), "-f", override, "--profile", "*", "config"]
    assert compose_guard.guarded(rules, args) == [
        "compose", "-f", rules.snapshot, "-f", override, "--profile", "*", "config"
    ]  # fmt: skip
    (tmp_path / "ws" / "other.yml").write_text("services: {}\n")
    for extra in (["-f", str(tmp_path / "ws" / "other.yml")], ["--env-file", "/etc/passwd"],
                  ["--project-directory", "/"]):  # fmt: skip
        refused(rules, "-f", str(repo_file), *extra, "config")


def test_project_calls_pass_through(rules: Policy) -> None:
    for args in (["version", "--short"], ["-p", "ws-1234", "ps"], ["-p", "ws-1234", "down"]):
        assert compose_guard.guarded(rules, ["compose", *args]) == ["compose", *args]


def test_a_workspace_without_a_compose_config_may_not_run_compose(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    for args in (["-p", "", "up", "-d"], ["-f", "/etc/compose.yml", "config"]):
        refused(Policy(workspace=str(tmp_path / "ws")), *args)


def test_project_names_are_compose_names_and_unique_per_workspace() -> None:
    name = compose.project_name("/workspaces/My Repo.git")
    assert name.startswith("myrepogit-") and name == name.lower()
    assert compose.project_name("/a/ws") != compose.project_name("/b/ws")
    assert compose.project_name("/w/---").startswith("workspace-")


@pytest.mark.parametrize(
    ("output", "blamed"),
    [
        ("#5 [db dev_container_auto_added_stage_label 2/2] RUN exit 3\nfailed to solve: exit code: 3", "db"),
        ("#7 [app 3/4] RUN make\nERROR: failed", "app"),
        (" db Error pull access denied for nope/nope, repository does not exist", "db"),
        ("Error response from daemon: dependency failed to start: container ws-1234-db-1 exited (1)", "db"),
        (" Container ws-1234-cache-1  Error", "cache"),
        ("Command failed: docker compose --project-name ws-1234 -f a.yml build app", "app"),
        ("nothing to see", ""),
    ],
)
def test_the_failing_service_is_found_in_composes_output(output: str, blamed: str) -> None:
    assert compose.failing_service(output, "ws-1234", ["app", "db", "cache"]) == blamed


def test_a_built_image_has_the_projects_name_never_one_the_repository_chose(rules: Policy) -> None:
    """`build` with `image: <the fallback image>` would replace the admin's fallback on the engine."""
    found = reasons(rules, model(rules, image="devcontainer-builder-test/enterprise-base:ubuntu"))
    assert any("would replace that image on the engine" in reason for reason in found), found
    assert reasons(rules, model(rules, image="ws-1234-app")) == []
    assert reasons(rules, model(rules, image="vsc-project-0a1b2c-features")) == [], "the CLI's own feature image"


def test_a_service_binding_a_file_inside_the_workspace_is_never_restarted_by_the_engine(rules: Policy) -> None:
    """A container can replace a bind-mounted subfolder of the workspace with a link to `/`: the engine
    would follow it at its next start. Only the builder starts such a service again, after a check."""
    project = model(rules, restart="always")
    project["services"]["app"]["volumes"].append({"type": "bind", "source": f"{rules.workspace}/data", "target": "/d"})
    project["services"]["db"]["restart"] = "always"
    compose_guard.no_restarts(rules, project)
    assert project["services"]["app"]["restart"] == "no"
    assert project["services"]["db"]["restart"] == "always", "a service with no bind mount keeps its policy"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"volumes": [{"type": "bind", "source": "WS/data", "target": "/var/lib/db"}]}, "inside the workspace"),
        (
            {"volumes": [{"type": "bind", "source": "WS/init.sql", "target": "/init.sql", "read_only": True}]},
            "inside the workspace",
        ),
        ({"logging": {"driver": "syslog", "options": {"syslog-address": "tcp://127.0.0.1:514"}}}, "logging driver"),
        ({"logging": {"driver": "awslogs"}}, "logging driver"),
        ({"ports": [{"target": 8080, "published": "7480", "host_ip": "127.0.0.1"}]}, "the supervisor's"),
        ({"ports": [{"target": 8080, "published": "7000-8000"}]}, "the supervisor's"),
    ],
)
def test_what_another_service_could_swap_or_reach_is_refused(rules: Policy, change: dict, expected: str) -> None:
    """Every service of a project can rewrite the workspace, so a file or folder inside it may be a link to
    `/` by the time the engine mounts it; a logging driver makes the engine connect anywhere; the
    supervisor's port is not the repository's."""
    rules.reserved_ports = ("7480",)
    text = json.dumps(change).replace("WS", rules.workspace)
    found = reasons(rules, model(rules, **json.loads(text)))
    assert any(expected in reason for reason in found), found


def test_a_secret_or_config_file_inside_the_workspace_is_refused_too(rules: Policy) -> None:
    project = model(rules)
    project["secrets"] = {"s": {"file": f"{rules.workspace}/secret.txt"}}
    project["configs"] = {"c": {"content": "inline is fine"}}
    found = reasons(rules, project)
    assert len(found) == 1 and "inside the workspace" in found[0], found


def test_an_admin_may_allow_a_folder_inside_the_workspace(rules: Policy) -> None:
    rules.mounts = (f"{rules.workspace}/data",)
    assert (
        reasons(rules, model(rules, volumes=[{"type": "bind", "source": f"{rules.workspace}/data", "target": "/d"}]))
        == []
    )


def test_the_templates_parent_mount_becomes_the_workspace_at_the_same_place(rules: Policy) -> None:
    """`../..:/workspaces` (devcontainers/templates) would show the engine's whole /workspaces."""
    parent = str(Path(rules.workspace).parent)
    project = model(rules, volumes=[{"type": "bind", "source": parent, "target": "/workspaces"}])
    compose_guard.whole_workspace(rules, project)
    assert project["services"]["app"]["volumes"] == [
        {"type": "bind", "source": rules.workspace, "target": "/workspaces/ws"}
    ]
    assert reasons(rules, project) == []
