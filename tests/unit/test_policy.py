"""The admin's policy over docker run and docker build argument lists, as the devcontainer CLI writes them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from devcontainer_builder.policy import rules as policy
from devcontainer_builder.policy.rules import Policy

OWNER = "ws-1234abcd"  # the workspace's project name (engine/compose.py's project_name)


@pytest.fixture
def rules(tmp_path: Path) -> Policy:
    (tmp_path / "ws").mkdir()
    (tmp_path / "cli").mkdir()
    return Policy(workspace=str(tmp_path / "ws"), build_dirs=(str(tmp_path / "cli"),), owner=OWNER)


def run_problems(rules: Policy, *args: str) -> list[str]:
    return [item["reason"] for item in policy.check_run(rules, list(args))]


def build_problems(rules: Policy, *args: str) -> list[str]:
    return [item["reason"] for item in policy.check_build(rules, list(args))]


def the_clis_run(rules: Policy, *extra: str) -> list[str]:
    """A `docker run` as devcontainer CLI 0.89 writes it, with runArgs etc. in the middle."""
    return [
        "--sig-proxy=false", "-a", "STDOUT", "-a", "STDERR",
        "--mount", f"type=bind,source={rules.workspace},target=/workspaces/ws",
        "-l", "devcontainer.local_folder=/x", *extra,
        "--entrypoint", "/bin/sh", "vsc-ws-image", "-c", "echo Container started",
    ]  # fmt: skip


def test_what_the_cli_itself_asks_for_is_allowed(rules: Policy) -> None:
    assert policy.check_run(rules, the_clis_run(rules, "-e", "X=1", "--init", "-u", "root")) == []
    context = os.path.join(rules.build_dirs[0], "features")
    assert (
        policy.check_build(rules, ["-f", f"{context}/Dockerfile", "-t", "vsc-x", "--build-arg", "A=b", context]) == []
    )
    assert policy.check_build(rules, ["--load", "-f", f"{rules.workspace}/Dockerfile", rules.workspace]) == []


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--privileged"], "--privileged"),
        (["--cap-add=SYS_ADMIN"], "capability SYS_ADMIN"),
        (["--cap-add", "ALL"], "capability ALL"),
        (["--security-opt", "seccomp=unconfined"], "security option"),
        (["--pid=host"], "shares a namespace"),
        (["--network", "host"], "shares a namespace"),
        (["--ipc", "container:abc"], "shares a namespace"),
        (["--userns=host"], "shares a namespace"),
        (["--device", "/dev/kvm"], "host devices"),
        (["--gpus", "all"], "host devices"),
        (["-v", "/:/host"], "bind mount of /"),
        (["--volume=/etc:/etc"], "bind mount of /etc"),
        (["--mount", "type=bind,source=/var/run/docker.sock,target=/s"], "bind mount of /var/run/docker.sock"),
        (
            ["--mount", f"type=volume,source={OWNER}_v,target=/v,volume-opt=device=/,volume-opt=o=bind"],
            "driver options",
        ),
        (["--volumes-from", "other"], "mounts what the builder cannot check"),
        (["--env-file", "/etc/shadow"], "host file /etc/shadow"),
        (["--cidfile", "/tmp/x"], "writes a file on the host"),
        (["--use-api-socket"], "access to the host or the engine"),
        (["--runtime", "runc"], "reaches outside the container"),
        (["--cgroup-parent", "/"], "reaches outside the container"),
        (["--some-new-flag"], "not one the builder knows"),
        # what the engines' CSV readers see differently from a split on commas
        (["--mount", '"type=bind",source=/,target=/host'], "bind mount of /"),
        (["--mount", 'type=volume,"source=x",type=bind,source=/,target=/host'], "key given twice"),
        (["--mount", "type=volume,src=x,type=bind,source=/,dst=/host"], "key given twice"),
        (["--mount", 'type=bind,source="/",target=/host'], "quoting the builder cannot read"),
        (["--mount", 'type=bind,source=/"x,target=/h'], "quoting the builder cannot read"),
        (["--mount", '"type=bind,source=/,target=/h'], "quoting the builder cannot read"),
        # Podman's user-mode network with options that reach the host
        (["--network=slirp4netns:allow_host_loopback=true"], "user-mode network"),
        (["--network", "pasta:--map-gw"], "user-mode network"),
        (["--network=bridge,slirp4netns:allow_host_loopback=true"], "user-mode network"),
        (["--net=private,host"], "shares a namespace"),
        # second review: aliases, Podman's overlay folders, other networks and pods
        (["--mount", "type=bind,source=WS/sub,src=/etc,target=/h"], "key given twice"),
        (["--mount", "type=bind,dst=/a,target=/b,source=WS"], "key given twice"),
        (["-v", "WS/sub:/ovl:O,upperdir=/root/.ssh"], "overlay's upperdir at /root/.ssh"),
        (["--mount", "type=bind,source=WS,target=/o,O,upperdir=/etc"], "overlay's upperdir at /etc"),
        (["--network=other-projects_default"], "joins a network other containers may be on"),
        (["--pod", "someones-pod"], "joins an existing pod"),
        (["--pod-id-file", "/etc/shadow"], "reaches outside the container"),
        (["--requires", "other"], "reaches outside the container"),
        (["--cgroup-conf", "memory.high=1"], "reaches outside the container"),
    ],
)
def test_what_reaches_outside_the_container_is_refused(rules: Policy, args: list[str], fragment: str) -> None:
    args = [arg.replace("WS", rules.workspace) for arg in args]  # the workspace itself, where a case needs it
    problems = run_problems(rules, *the_clis_run(rules, *args))
    assert len(problems) == 1 and fragment in problems[0], problems


def test_a_link_inside_the_workspace_to_a_host_path_is_followed(rules: Policy) -> None:
    os.symlink("/etc", os.path.join(rules.workspace, "escape"))
    problems = run_problems(rules, "-v", f"{rules.workspace}/escape:/x", "img")
    assert problems and "through a link to /etc" in problems[0]


def test_bind_mounts_inside_the_workspace_and_the_workspaces_own_volumes_are_allowed(rules: Policy) -> None:
    os.mkdir(os.path.join(rules.workspace, "data"))
    own = f"{OWNER}_cache:/cache"
    assert run_problems(rules, "-v", f"{rules.workspace}/data:/data", "-v", own, "--tmpfs", "/t", "i") == []
    assert run_problems(rules, "--mount", f"type=volume,src={OWNER}_vol1,dst=/vol", "i") == []
    persisted = f"{OWNER}-vscode-server-3f2a9c"  # DEVCONTAINER_PERSIST's (up/additions.py)
    assert run_problems(rules, "--mount", f"type=volume,source={persisted},target=/home/u/.vscode-server", "i") == []
    assert run_problems(rules, "-v", "/anonymous", "--mount", "type=volume,target=/anon", "i") == [], "no name"


@pytest.mark.parametrize(
    "args",
    [["--mount", "type=volume,source=host-etc,target=/host-etc"],  # made with type=none,o=bind,device=/etc
     ["-v", "host-etc:/host-etc"],
     ["--volume=other-9999abcd_pgdata:/data"],  # another workspace's compose volume
     ["--mount", "src=other-9999abcd-vscode-server-1a2b3c,dst=/x"],  # another workspace's persisted folder
     ["-v", f"{OWNER}x_data:/x"],  # a name that only starts like the workspace's
     # the workspace of a folder named after this one's project: its compose and persisted volumes
     ["-v", f"{OWNER}-db-100471e3_pgdata:/stolen"],
     ["-v", f"{OWNER}-db-100471e3-home-coder-1a2b3c:/stolen"]],
    ids=["mount", "v", "other-compose", "other-persisted", "lookalike", "named-after-compose", "named-after-persisted"],
)  # fmt: skip
def test_a_named_volume_that_is_not_the_workspaces_own_is_refused_naming_it(rules: Policy, args: list[str]) -> None:
    (problem,) = policy.check_run(rules, the_clis_run(rules, *args))
    name = problem["value"]
    assert name in " ".join(args) and f"the volume {name}, which is not this workspace's" in problem["reason"]
    assert problem["setting"] == "DEVCONTAINER_ALLOWED_MOUNTS=*"
    assert policy.check_run(Policy(workspace=rules.workspace, owner=OWNER, mounts=("*",)), [*args, "i"]) == []


def test_a_build_may_not_mount_a_foreign_volume_either(rules: Policy) -> None:
    assert "the volume host-etc" in build_problems(rules, "-v", "host-etc:/x", rules.workspace)[0]


def test_the_admin_can_allow_each_kind(rules: Policy) -> None:
    open_rules = Policy(
        workspace=rules.workspace,
        mounts=("/var/run/docker.sock",),
        capabilities=("SYS_PTRACE",),
        privileges=("security-opt", "host-namespaces", "devices", "privileged"),
    )
    args = ["--cap-add=SYS_PTRACE", "--security-opt", "seccomp=unconfined", "--network=host", "--device=/dev/fuse",
            "--privileged", "-v", "/var/run/docker.sock:/var/run/docker.sock", "img"]  # fmt: skip
    assert run_problems(open_rules, *args) == []
    assert run_problems(open_rules, "--cap-add", "NET_ADMIN", "img") != []
    assert run_problems(Policy(workspace=rules.workspace, mounts=("*",)), "-v", "/:/host", "img") == []


def test_harmless_security_options_pass(rules: Policy) -> None:
    assert run_problems(rules, "--security-opt", "no-new-privileges", "img") == []
    assert run_problems(rules, "--security-opt", "label=disable", "img") != []
    podman = Policy(workspace=rules.workspace, engine="podman")
    assert run_problems(podman, "--security-opt", "label=disable", "--userns=keep-id", "img") == []


def test_options_after_the_image_are_the_command_not_options(rules: Policy) -> None:
    assert run_problems(rules, "img", "--privileged", "-v", "/:/host") == []


def test_short_flags_grouped_and_glued(rules: Policy) -> None:
    assert run_problems(rules, "-it", "-e", "A=1", "img") == []
    assert run_problems(rules, "-itv/:/host", "img") != []
    assert run_problems(rules, "-v/etc:/etc", "img") != []


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--network=host", "."], "shares a namespace"),
        (["--allow", "security.insecure", "."], "entitlement"),
        (["--secret", "id=s,src=/etc/shadow", "."], "build secret file /etc/shadow"),
        (["--build-context", "host=/etc", "."], "the build context /etc"),
        (["--ssh", "default", "."], "reaches outside the build"),
        (["-o", "type=local,dest=/tmp/out", "."], "writes outside the engine"),
        (["--push", "."], "writes outside the engine"),
        (["--cache-to", "type=local,dest=/tmp/c", "."], "cache destination"),
        (["-f", "/etc/passwd", "."], "the Dockerfile /etc/passwd"),
        (["/"], "the build context /"),
    ],
)
def test_build_options_that_reach_the_host_are_refused(rules: Policy, args: list[str], fragment: str) -> None:
    workspace_args = [arg if arg != "." else rules.workspace for arg in args]
    problems = build_problems(rules, *workspace_args)
    assert problems and fragment in problems[0], problems


@pytest.mark.parametrize(
    "args",
    [
        ["--network=host"],
        ["--metadata-file", "/tmp/meta.json"],
        ["--iidfile", "/etc/shadow"],
        ["--secret", "id=a,src=/etc/shadow"],
        ["-f", "/etc/shadow"],
    ],
)
def test_build_options_are_checked_wherever_the_cli_puts_them(rules: Policy, args: list[str]) -> None:
    """The CLI's own `-t TAG` comes first (a value, not run's -t switch), and docker build takes options
    after the context as well: a build.options entry is checked in either place."""
    context = os.path.join(rules.build_dirs[0], "features")
    header = ["-f", f"{context}/Dockerfile", "-t", "vsc-x", "--target", "dev_containers_target_stage"]
    assert build_problems(rules, *header, *args, context), "after the CLI's own options"
    assert build_problems(rules, *header, context, *args), "after the context"


def test_a_second_context_is_refused(rules: Policy) -> None:
    assert build_problems(rules, "-t", "vsc-x", "/", rules.workspace)


def test_a_link_to_another_container_is_refused(rules: Policy) -> None:
    assert run_problems(rules, *the_clis_run(rules, "--link", "builder:b")) == [
        "--link (reaches outside the container)"
    ]


def test_the_configured_cache_export_passes(rules: Policy) -> None:
    with_cache = Policy(workspace=rules.workspace, cache_to="type=registry,ref=r/x:cache")
    assert build_problems(with_cache, "--cache-to", "type=registry,ref=r/x:cache", rules.workspace) == []
    assert build_problems(with_cache, "--cache-to", "type=inline", rules.workspace) == []


def test_the_subcommand_is_found_however_it_is_spelt(rules: Policy) -> None:
    for args in (["run", "--privileged", "i"], ["container", "create", "--privileged", "i"]):
        with pytest.raises(SystemExit) as caught:
            list(policy.guarded(rules, args))
        assert caught.value.code == policy.REFUSED_EXIT
    assert list(policy.guarded(rules, ["ps", "-a"])) == ["ps", "-a"]
    assert list(policy.guarded(rules, ["exec", "--privileged", "c", "sh"])) == ["exec", "--privileged", "c", "sh"]


def test_a_refusal_is_reported_where_the_builder_reads_it(rules: Policy, tmp_path: Path, capsys) -> None:
    report = tmp_path / "refusals.jsonl"
    reporting = Policy(workspace=rules.workspace, report=str(report))
    with pytest.raises(SystemExit):
        list(policy.guarded(reporting, ["run", "--privileged", "--cap-add", "NET_ADMIN", "img"]))
    lines = report.read_text().splitlines()
    assert len(lines) == 2 and '"setting": "DEVCONTAINER_ALLOWED_PRIVILEGES=privileged"' in lines[0]
    assert "the admin's policy refuses this docker run" in capsys.readouterr().err


def test_the_legacy_builder_removes_a_failed_builds_containers(rules: Policy) -> None:
    legacy = Policy(workspace=rules.workspace, force_rm=True)
    assert list(policy.guarded(legacy, ["build", "-t", "x", rules.workspace]))[:2] == ["build", "--force-rm"]
    assert "--force-rm" not in list(policy.guarded(legacy, ["buildx", "build", rules.workspace]))


def test_the_policy_travels_in_one_environment_variable(rules: Policy) -> None:
    full = Policy(workspace=rules.workspace, mounts=("/a", "/b"), capabilities=("SYS_PTRACE",), force_rm=True,
                  privileges=("devices",), cache_to="type=registry,ref=r/x", report="/tmp/r", engine="podman")  # fmt: skip
    assert Policy.from_text(full.to_text()) == full
    assert Policy.from_text(rules.to_text()) == rules
    with pytest.raises(ValueError, match="unknown policy line"):
        Policy.from_text("workspace=/w\nsomething=else")


def test_a_restart_policy_is_refused_beside_a_bind_mount_inside_the_workspace(rules: Policy) -> None:
    """A container can swap a bind-mounted subfolder for a link to `/`; the engine must not start it again
    by itself (keep-alive does, after checking the mounts)."""
    inside = ["--mount", f"type=bind,source={rules.workspace}/data,target=/data"]
    assert "a restart policy with a bind mount inside the workspace" in run_problems(
        rules, *the_clis_run(rules, "--restart", "always", *inside)
    )
    assert run_problems(rules, *the_clis_run(rules, "--restart=unless-stopped")) == [], "the workspace root alone"
    assert run_problems(rules, *the_clis_run(rules, "--restart", "no", *inside)) == []


def test_a_logging_driver_that_ships_logs_elsewhere_is_refused(rules: Policy) -> None:
    found = run_problems(
        rules, *the_clis_run(rules, "--log-driver=syslog", "--log-opt", "syslog-address=tcp://127.0.0.1:1")
    )
    assert any("logging driver syslog" in reason for reason in found), found
    assert run_problems(rules, *the_clis_run(rules, "--log-driver", "json-file")) == []


def test_the_supervisors_port_cannot_be_published(rules: Policy) -> None:
    rules.reserved_ports = ("7480",)
    for publish in ("127.0.0.1:7480:80", "7480:80", "7400-7500:80/tcp"):
        assert any("the supervisor's" in reason for reason in run_problems(rules, *the_clis_run(rules, "-p", publish)))
    assert run_problems(rules, *the_clis_run(rules, "-p", "8080:80", "-p", "80")) == []


def test_the_containers_own_networks_and_a_new_pod_are_allowed(rules: Policy) -> None:
    for network in ("bridge", "none", "default", "private", "slirp4netns", "pasta", "bridge,slirp4netns"):
        assert run_problems(rules, *the_clis_run(rules, f"--network={network}")) == [], network
    assert run_problems(rules, *the_clis_run(rules, "--pod", "new:mine")) == []


def test_with_the_admins_network_a_config_may_ask_for_no_other(rules: Policy) -> None:
    rules.network = "host"
    assert run_problems(rules, *the_clis_run(rules, "--network=host")) == []
    (problem,) = run_problems(rules, *the_clis_run(rules, "--network=bridge"))
    assert "the admin gives every container the network host" in problem


@pytest.mark.parametrize(
    "context",
    ["/etc", "/tmp/x://..", "oci-layout:///var/lib/containers", "oci-layout:///etc@sha256:" + "0" * 64, "../.."],
)
def test_a_build_context_from_a_host_folder_is_refused_however_spelled(rules: Policy, context: str) -> None:
    problems = policy.check_build(rules, ["--build-context", f"extra={context}", "-t", "x", rules.workspace])
    assert len(problems) == 1 and "the build context" in problems[0]["reason"], problems


@pytest.mark.parametrize("context", ["docker-image://debian:trixie", "target:base", "https://github.com/a/b.git"])
def test_a_build_context_from_an_image_a_stage_or_a_remote_is_allowed(rules: Policy, context: str) -> None:
    assert policy.check_build(rules, ["--build-context", f"extra={context}", "-t", "x", rules.workspace]) == []
