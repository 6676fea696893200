"""Hostile repositories and hostile inputs: each attack from the security review, reproduced for real.

A repository's devcontainer.json, Dockerfile, hooks and initializeCommand are someone else's code: no
secret, no host path outside the workspace, no privilege the admin did not allow, no user byte lost,
and no false "healthy".
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from devcontainer_builder.engine.compose import project_name
from support.bad_inputs import BAD_INPUTS, BadInput
from support.builder import BUILDER, Workspace, base_env, docker, key_material, tree_contains
from support.coder import CoderDouble
from support.engines import EngineUnderTest, on_every_engine
from support.githttp import GitHTTPServer
from support.images import BASE_IMAGE, FALLBACK_IMAGE
from support.repos import Remote
from support.repos import git as run_git
from support.services import SilentServer, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]

STEAL = (Path(__file__).parent / "support" / "hostile" / "steal.sh").read_text()
ERROR_LOG = ".devcontainer-build-error.log"


@pytest.fixture
def ssh_key(sandbox: Path) -> str:
    """A key that exists only in memory once generated: its file is removed at once."""
    key = sandbox / "hostile_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    text = key.read_text()
    key.unlink()
    return text


def secrets_of(git_http: GitHTTPServer, coder: CoderDouble, ssh_key: str) -> dict[str, str]:
    return {"GH_TOKEN": git_http.token, "CODER_AGENT_TOKEN": coder.token, "SSH key": key_material(ssh_key)}


def stealing_repository(sandbox: Path, name: str = "hostile", **config: object) -> Remote:
    remote = Remote(sandbox, name)
    remote.commit(
        {
            ".devcontainer/steal.sh": STEAL,
            ".devcontainer/devcontainer.json": json.dumps(
                {
                    "image": BASE_IMAGE,
                    "initializeCommand": "sh ${localWorkspaceFolder}/.devcontainer/steal.sh ${localWorkspaceFolder}/.stolen",
                    **config,
                }
            ),
        }
    )
    return remote


@on_every_engine
def test_initialize_command_reads_no_secret_from_any_process_and_leaves_nothing_running(
    git_http: GitHTTPServer, coder: CoderDouble, ssh_key: str, sandbox: Path, make_workspace, engine: EngineUnderTest
) -> None:
    stealing_repository(sandbox)
    ws = make_workspace(
        git_http.url("hostile"),
        name="hostile",
        GH_TOKEN=git_http.token,
        CODER_AGENT_URL=coder.url,
        CODER_AGENT_TOKEN=coder.token,
        DEVCONTAINER_SSH_PRIVATE_KEY=base64.b64encode(ssh_key.encode()).decode(),
        DEVCONTAINER_ALLOWED_PRIVILEGES="initialize-command",
    )
    run = ws.up()
    assert run.returncode == 0, run.output
    assert ws.state()["status"] == "running"
    # other processes' environments are arbitrary bytes, not text
    dump = (ws.folder / ".stolen").read_bytes().decode("utf-8", "replace")
    # it ran, beside the builder, and looked everywhere it could: as root it reads every environment
    assert "== ancestor" in dump and "devcontainer-builder" in dump
    assert dump.count("(environ readable)") >= 2
    for name, secret in secrets_of(git_http, coder, ssh_key).items():
        assert secret not in dump, f"the initializeCommand read {name}"
    daemon = int((ws.folder / ".stolen.daemon").read_text())
    assert not Path(f"/proc/{daemon}").exists(), "what initializeCommand left running must go when its step ends"
    # ... but not the container: Podman's monitor of it was handed to the builder too (system/reaper.py)
    assert engine.run("inspect", "-f", "{{.State.Running}}", ws.container()) == "true"


def test_without_the_admins_permission_initialize_command_runs_in_its_sandbox_not_beside_the_builder(
    sandbox: Path, make_workspace
) -> None:
    remote = stealing_repository(sandbox)
    ws = make_workspace(remote.url, name="hostile")
    run = ws.up()
    assert run.returncode == 0, run.output
    assert ws.state()["status"] == "running", ws.state().get("error")
    dump = (ws.folder / ".stolen").read_bytes().decode("utf-8", "replace")
    assert "== pid 1" in dump, "it ran"
    assert "devcontainer-builder" not in dump, "no process of the builder's is in sight"
    assert "uid=0" not in dump, "as the workspace folder's owner"


def test_a_password_in_the_repository_url_never_reaches_the_container(
    git_http: GitHTTPServer, sandbox: Path, make_workspace
) -> None:
    Remote(sandbox, "inurl").commit(
        {
            ".devcontainer/devcontainer.json": json.dumps(
                {
                    "image": BASE_IMAGE,
                    "containerEnv": {
                        "URL": "${localEnv:DEVCONTAINER_REPOSITORY}",
                        "TOKEN": "${localEnv:GH_TOKEN}",
                        "AGENT": "${localEnv:CODER_AGENT_TOKEN}",
                    },
                    "remoteEnv": {"REMOTE_URL": "${localEnv:DEVCONTAINER_REPOSITORY}"},
                    "postCreateCommand": "env > /tmp/env-at-create",
                }
            )
        }
    )
    url = git_http.url("inurl").replace("http://", f"http://x-access-token:{git_http.token}@")
    ws = make_workspace(url, name="inurl")
    run = ws.run(sample_argv=True)
    assert run.returncode == 0, run.output
    token = git_http.token
    assert token not in docker("inspect", ws.container())
    assert not [sample for sample in run.argv_samples if token in sample], "not in docker run/exec command lines"
    assert token not in ws.exec("cat", "/tmp/env-at-create")
    assert token not in run.output and not tree_contains(ws.state_dir, token)
    assert ws.exec("sh", "-c", 'echo "[$URL]"') == "[]", "the CLI's environment is an allow-list"


# -- the repository reaches outside itself -----------------------------------------------------------


def degraded_with(ws: Workspace, step: str, *fragments: str) -> dict:
    run = ws.up()
    assert run.returncode == 0, run.output
    state = ws.state()
    assert (state["status"], state["fallback"]) == ("degraded", True), state
    assert state["error"]["step"] == step, state["error"]
    for fragment in fragments:
        assert fragment in state["error"]["message"], state["error"]["message"]
    assert docker("inspect", "-f", "{{.Config.Image}}", ws.container()) == FALLBACK_IMAGE
    return state


@pytest.mark.parametrize(
    ("files", "fragments"),
    [
        ({".devcontainer/devcontainer.json": {"build": {"dockerfile": "Dockerfile", "context": "../../.."}},
          ".devcontainer/Dockerfile": f"FROM {BASE_IMAGE}\nCOPY . /ctx\n"}, ["the build context", "outside the repository"]),
        ({".devcontainer/devcontainer.json": {"dockerFile": "../../../x/Dockerfile"}}, ["the Dockerfile", "outside"]),
        ({".devcontainer/devcontainer.json": {"image": BASE_IMAGE, "features": {"../../../../etc": {}}}},
         ["the local feature", "outside"]),
    ],
    ids=["context", "dockerfile", "feature"],
)  # fmt: skip
def test_a_config_that_builds_outside_the_repository_is_refused(
    remote: Remote, make_workspace, sandbox: Path, files: dict, fragments: list[str]
) -> None:
    (sandbox / "x").mkdir()
    (sandbox / "x" / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nCOPY . /ctx\n")  # a real file, outside
    remote.commit({name: json.dumps(text) if isinstance(text, dict) else text for name, text in files.items()})
    ws = make_workspace(remote.url)
    degraded_with(ws, "config", *fragments)
    assert run_git("status", "--porcelain", cwd=ws.folder) == ""


def test_a_compose_service_that_asks_for_the_host_is_refused_before_any_service_runs(
    remote: Remote, make_workspace
) -> None:
    """Compose talks to the engine itself, past docker-guard's `docker run` checks: the project compose would
    run (privileged, `/:/host`, the host's pid namespace) is checked as a whole, and nothing of it starts."""
    compose = (
        f"services:\n  app:\n    image: {BASE_IMAGE}\n    privileged: true\n    pid: host\n"
        "    volumes: ['/:/host', '..:/workspaces/ws']\n    command: sleep infinity\n"
    )
    remote.commit({
        ".devcontainer/devcontainer.json": json.dumps(
            {"dockerComposeFile": "compose.yml", "service": "app", "workspaceFolder": "/workspaces/ws"}
        ),
        ".devcontainer/compose.yml": compose,
    })  # fmt: skip
    ws = make_workspace(remote.url)
    degraded_with(ws, "policy", "privileged: true", "bind mount of /", "namespace outside the container")
    project = project_name(str(ws.folder))
    assert docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}") == "", "nothing was created"


def test_a_devcontainer_folder_that_links_to_the_host_is_refused(remote: Remote, make_workspace, sandbox: Path) -> None:
    host = sandbox / "host-config"
    host.mkdir()
    (host / "devcontainer.json").write_text(json.dumps({"image": BASE_IMAGE, "postCreateCommand": "touch /pwned"}))
    remote.commit({"README.md": "x\n"})
    scratch = remote.scratch
    os.symlink(host, scratch / ".devcontainer")
    run_git("add", ".devcontainer", cwd=scratch)
    run_git("commit", "-qm", "link", cwd=scratch)
    run_git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=scratch)
    ws = make_workspace(remote.url)
    degraded_with(ws, "config", "the config", str(host), "symbolic link")


@pytest.mark.parametrize("target", ["/dev/zero", "/etc/passwd"])
def test_a_config_that_links_to_a_host_file_is_refused_not_ignored(remote: Remote, make_workspace, target: str) -> None:
    remote.commit({"README.md": "x\n"})
    scratch = remote.scratch
    (scratch / ".devcontainer").mkdir()
    os.symlink(target, scratch / ".devcontainer" / "devcontainer.json")
    run_git("add", ".devcontainer", cwd=scratch)
    run_git("commit", "-qm", "link", cwd=scratch)
    run_git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=scratch)
    ws = make_workspace(remote.url)
    degraded_with(ws, "config", target, "outside the repository")


def test_a_symbolic_link_to_the_host_inside_the_config_folder_is_refused(remote: Remote, make_workspace) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    os.symlink("/etc/shadow", remote.scratch / ".devcontainer" / "shadow")
    run_git("add", "-A", cwd=remote.scratch)
    run_git("commit", "-qm", "link", cwd=remote.scratch)
    run_git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=remote.scratch)
    degraded_with(make_workspace(remote.url), "config", "/etc/shadow")


@pytest.mark.parametrize(
    ("config", "fragment", "setting"),
    [
        ({"mounts": ["source=/etc,target=/host-etc,type=bind"]}, "bind mount of /etc", "DEVCONTAINER_ALLOWED_MOUNTS"),
        ({"runArgs": ["-v", "/:/host"]}, "bind mount of /", "DEVCONTAINER_ALLOWED_MOUNTS"),
        ({"runArgs": ["--privileged"]}, "--privileged", "DEVCONTAINER_ALLOWED_PRIVILEGES=privileged"),
        ({"privileged": True}, "--privileged", "DEVCONTAINER_ALLOWED_PRIVILEGES=privileged"),
        ({"runArgs": ["--cap-add=SYS_ADMIN"]}, "capability SYS_ADMIN", "DEVCONTAINER_ALLOWED_CAPABILITIES=SYS_ADMIN"),
        ({"capAdd": ["NET_ADMIN"]}, "capability NET_ADMIN", "DEVCONTAINER_ALLOWED_CAPABILITIES=NET_ADMIN"),
        ({"runArgs": ["--pid=host"]}, "shares a namespace", "DEVCONTAINER_ALLOWED_PRIVILEGES=host-namespaces"),
        ({"runArgs": ["--device=/dev/kvm"]}, "host devices", "DEVCONTAINER_ALLOWED_PRIVILEGES=devices"),
        ({"securityOpt": ["seccomp=unconfined"]}, "security option", "DEVCONTAINER_ALLOWED_PRIVILEGES=security-opt"),
    ],
    ids=["mount", "volume", "privileged-arg", "privileged", "cap-arg", "capAdd", "pid-host", "device", "seccomp"],
)  # fmt: skip
def test_run_arguments_the_admin_did_not_allow_are_refused(
    remote: Remote, make_workspace, config: dict, fragment: str, setting: str
) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE, **config})})
    ws = make_workspace(remote.url)
    state = degraded_with(ws, "policy", fragment, setting)
    assert "cannot grant itself" in state["error"]["message"]
    log = ws.exec("cat", f"/workspaces/{ws.folder.name}/{ERROR_LOG}")
    assert fragment in log, "the user sees why in the workspace"


HOST_WRITE = "touch /host{marker}"  # with / mounted at /host, this writes the marker on the host
SMUGGLED = {
    # the engines read --mount as CSV: a quoted field, or a key given twice (the last wins there)
    "quoted-type": {"mounts": ['"type=bind",source=/,target=/host']},
    "key-twice": {"mounts": [{"type": "volume", "source": "x,type=bind,source=/", "target": "/host"}]},
    # Podman's user-mode network opening the host's loopback
    "slirp-loopback": {"runArgs": ["--network=slirp4netns:allow_host_loopback=true"]},
    # one key under two names (the engines keep the last)
    "source-and-src": {"mounts": ["type=bind,source=${localWorkspaceFolder},src=/,target=/host"]},
    # Podman's overlay writes its upper layer into a host folder (and gives it to the source's owner)
    "overlay-upperdir": {"runArgs": ["-v", "${localWorkspaceFolder}:/host:O,upperdir={outside},workdir={work}"]},
    # another network of the engine: another workspace's compose project, say
    "other-network": {"runArgs": ["--network=someone-elses_default"]},
}


@pytest.mark.parametrize(
    ("attack", "engine"),
    [("quoted-type", "docker"), ("quoted-type", "podman"), ("quoted-type", "rootless"), ("key-twice", "docker"),
     ("slirp-loopback", "podman"), ("slirp-loopback", "rootless"), ("source-and-src", "docker"),
     ("source-and-src", "podman"), ("overlay-upperdir", "podman"), ("other-network", "docker")],
    indirect=["engine"],
)  # fmt: skip
def test_mounts_and_networks_that_reach_the_host_however_spelled_are_refused(
    remote: Remote, make_workspace, engine: EngineUnderTest, attack: str, sandbox: Path
) -> None:
    marker = sandbox / "written-from-the-container"
    outside = sandbox / "outside"
    smuggled = json.loads(json.dumps(SMUGGLED[attack]).replace("{outside}", str(outside)).replace(
        "{work}", str(sandbox / "work")))  # fmt: skip
    config = {"image": BASE_IMAGE, "postCreateCommand": HOST_WRITE.format(marker=marker), **smuggled}
    remote.commit({".devcontainer/devcontainer.json": json.dumps(config)})
    ws = make_workspace(remote.url)
    run = ws.up()
    assert run.returncode == 0, run.output
    state = ws.state()
    assert (state["status"], state["error"]["step"]) == ("degraded", "policy"), state["error"]
    assert not marker.exists(), "the repository reached the host"
    assert not outside.exists(), "no host folder was given to the container"


# a named volume of the engine that is not the workspace's: one made with bind options (the host folder
# `outside` behind it), another workspace's data; asked for by every way a single-container config mounts
FOREIGN_VOLUMES = {
    "mounts": {"mounts": ["source={volume},target=/host-etc,type=volume"]},
    "runArgs": {"runArgs": ["-v", "{volume}:/host-etc"]},
    "workspaceMount": {
        "workspaceMount": "source={volume},target=/workspaces/x,type=volume",
        "workspaceFolder": "/workspaces/x",
    },
    "feature": {"features": {"./borrow": {}}},
}


@pytest.mark.parametrize(
    ("attack", "engine"),
    [("mounts", "docker"), ("mounts", "podman"), ("runArgs", "docker"), ("workspaceMount", "docker"),
     ("feature", "podman")],
    indirect=["engine"],
)  # fmt: skip
def test_a_named_volume_that_is_not_the_workspaces_own_is_refused_naming_it(
    remote: Remote, make_workspace, engine: EngineUnderTest, attack: str, sandbox: Path
) -> None:
    """`docker volume create -o type=none -o o=bind -o device=/etc host-etc` made the host's /etc a volume that
    any single-container config could mount read-write (a folder of the sandbox stands in for /etc)."""
    outside = sandbox / "host-etc"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    volume = f"dcb-test-host-etc-{uuid.uuid4().hex[:8]}"
    engine.run("volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", f"device={outside}", volume)
    try:
        config = json.loads(json.dumps(FOREIGN_VOLUMES[attack]).replace("{volume}", volume))
        files = {
            ".devcontainer/borrow/devcontainer-feature.json": json.dumps({
                "id": "borrow", "version": "1.0.0",
                "mounts": [{"source": volume, "target": "/host-etc", "type": "volume"}]}),
            ".devcontainer/borrow/install.sh": "#!/bin/sh\ntrue\n",
        } if attack == "feature" else {}  # fmt: skip
        write = "echo owned >> /host-etc/passwd; echo owned >> /workspaces/x/passwd; true"
        config = {"image": BASE_IMAGE, "postCreateCommand": write, **config}
        remote.commit({".devcontainer/devcontainer.json": json.dumps(config), **files})
        ws = make_workspace(remote.url)
        run = ws.up()
        assert run.returncode == 0, run.output
        state = ws.state()
        assert (state["status"], state["error"]["step"]) == ("degraded", "policy"), state["error"]
        message = state["error"]["message"]
        assert f"the volume {volume}, which is not this workspace's" in message, message
        assert "DEVCONTAINER_ALLOWED_MOUNTS=*" in message
        assert (outside / "passwd").read_text() == "root:x:0:0::/root:/bin/sh\n", "the host folder was written"
    finally:
        engine.run("volume", "rm", "-f", volume, check=False)


def test_another_workspaces_volume_is_refused_and_the_workspaces_own_are_not(
    remote: Remote, make_workspace, sandbox: Path
) -> None:
    """Another workspace's compose volume held its database; a single-container config read and wrote it."""
    theirs = f"{project_name(str(sandbox / 'workspaces' / 'other'))}_pgdata"
    docker("volume", "create", theirs)
    ws = make_workspace(remote.url)
    try:
        config = {"image": BASE_IMAGE, "mounts": [f"source={theirs},target=/data,type=volume"]}
        remote.commit({".devcontainer/devcontainer.json": json.dumps(config)})
        degraded_with(ws, "policy", f"the volume {theirs}, which is not this workspace's")
        own = f"{project_name(str(ws.folder))}_cache"
        config = {
            "image": BASE_IMAGE,
            "mounts": [f"source={own},target=/cache,type=volume", "target=/anon,type=volume"],
        }
        remote.commit({".devcontainer/devcontainer.json": json.dumps(config)})
        run = ws.up()
        assert run.returncode == 0 and ws.state()["status"] == "running", run.output
        assert ws.exec("sh", "-c", "touch /cache/x /anon/y && echo ok") == "ok"
    finally:
        for container in docker("ps", "-aq", "--filter", f"label=devcontainer-builder.workspace={ws.folder}").split():
            docker("rm", "-f", "-v", container, check=False)  # -v: the anonymous volume too
        docker("volume", "rm", "-f", theirs, f"{project_name(str(ws.folder))}_cache", check=False)


@pytest.mark.parametrize("engine", ["podman"], indirect=True)
def test_a_build_context_from_a_host_folder_is_refused_however_spelled(
    remote: Remote, make_workspace, engine: EngineUnderTest, sandbox: Path
) -> None:
    """`name=/host/x://..` is the folder /host to the engine (it cleans the path), though it looks like a URL."""
    outside = sandbox / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("host secret\n")
    remote.commit({
        ".devcontainer/devcontainer.json": json.dumps(
            {"build": {"dockerfile": "Dockerfile", "options": ["--build-context", f"hostctx={outside}/x://.."]}}),
        ".devcontainer/Dockerfile": f"FROM {BASE_IMAGE}\nCOPY --from=hostctx secret.txt /proof-from-host.txt\n",
    })  # fmt: skip
    ws = make_workspace(remote.url)
    assert ws.up().returncode == 0
    state = ws.state()
    assert (state["status"], state["error"]["step"]) == ("degraded", "policy"), state["error"]
    assert "the build context" in state["error"]["message"]


def test_a_feature_asking_for_privileges_is_refused_too(remote: Remote, make_workspace) -> None:
    """The config itself asks for nothing; a feature's metadata does - the guard sees the final docker run."""
    remote.commit(
        {
            ".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE, "features": {"./sneaky": {}}}),
            ".devcontainer/sneaky/devcontainer-feature.json": json.dumps(
                {
                    "id": "sneaky",
                    "version": "1.0.0",
                    "privileged": True,
                    "mounts": [{"source": "/var/run/docker.sock", "target": "/var/run/docker.sock", "type": "bind"}],
                }
            ),
            ".devcontainer/sneaky/install.sh": "#!/bin/sh\ntrue\n",
        }
    )
    ws = make_workspace(remote.url)
    degraded_with(ws, "policy", "--privileged", "bind mount of /var/run/docker.sock")


def test_what_the_admin_allows_comes_up(remote: Remote, make_workspace, sandbox: Path) -> None:
    shared = sandbox / "shared-data"
    shared.mkdir()
    (shared / "hello").write_text("from the host\n")
    remote.commit(
        {
            ".devcontainer/devcontainer.json": json.dumps(
                {
                    "image": BASE_IMAGE,
                    "capAdd": ["SYS_PTRACE"],
                    "mounts": [f"source={shared},target=/shared,type=bind"],
                    "runArgs": ["--security-opt", "seccomp=unconfined"],
                }
            )
        }
    )
    ws = make_workspace(
        remote.url,
        DEVCONTAINER_ALLOWED_CAPABILITIES="SYS_PTRACE",
        DEVCONTAINER_ALLOWED_MOUNTS=str(shared),
        DEVCONTAINER_ALLOWED_PRIVILEGES="security-opt",
    )
    run = ws.up()
    assert run.returncode == 0, run.output
    assert ws.state()["status"] == "running"
    assert ws.exec("cat", "/shared/hello") == "from the host"
    assert "SYS_PTRACE" in docker("inspect", "-f", "{{.HostConfig.CapAdd}}", ws.container())


def test_a_failed_build_leaves_no_stopped_containers_behind(remote: Remote, make_workspace) -> None:
    """The failing RUN's intermediate container is found by its command (the token), not by comparing every
    container on the engine: other users of a shared engine come and go meanwhile."""
    token = uuid.uuid4().hex
    remote.commit(
        {
            ".devcontainer/devcontainer.json": json.dumps({"build": {"dockerfile": "Dockerfile"}}),
            ".devcontainer/Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo {token} && exit 3\n",
        }
    )
    ws = make_workspace(remote.url)
    assert ws.up().returncode == 0
    assert ws.state()["error"]["step"] != "", "the build failed"
    commands = docker("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}}")
    assert token not in commands, "no intermediate container of the failed RUN is left"
    assert len(ws.containers()) == 1, "only the fallback"


# -- a killed builder ----------------------------------------------------------------------------------


def marked_processes(workspace: Path) -> list[int]:
    """Processes started by a builder of this workspace (they carry its run marker)."""
    from devcontainer_builder.system import reaper

    key = reaper.workspace_key(str(workspace)).encode()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                environ = Path(f"/proc/{name}/environ").read_bytes()
            except OSError:
                continue
            if reaper.MARKER.encode() + b"=" + key in environ:
                found.append(int(name))
    return found


def test_a_builder_killed_during_post_create_leaves_no_false_healthy_and_no_processes(
    remote: Remote, make_workspace
) -> None:
    remote.commit(
        {
            ".devcontainer/devcontainer.json": json.dumps(
                {"image": BASE_IMAGE, "postCreateCommand": "sleep 15 && exit 1"}
            )
        }
    )
    ws = make_workspace(remote.url)
    proc = ws.start_until_logged("postCreateCommand: sleep 15")
    proc.kill()
    proc.communicate(timeout=30)
    wait_for(lambda: marked_processes(ws.folder) != [], 10, "the dead run's docker clients")
    survivors = marked_processes(ws.folder)
    run = ws.up()
    assert run.returncode == 0, run.output
    state = ws.state()
    assert state["status"] == "degraded", "the postCreate failure must be seen, not a stale container trusted"
    assert state["error"]["step"] == "postCreateCommand"
    assert "interrupted" in ws.build_log()
    assert [pid for pid in survivors if Path(f"/proc/{pid}").exists()] == [], "the dead run's processes are gone"
    assert "stale_run_stopped" in ws.event_kinds()


def test_a_builder_killed_mid_clone_over_ssh_leaves_no_key_anywhere(ssh_key: str, make_workspace) -> None:
    silent = SilentServer()  # accepts the connection, never says a word: the clone hangs
    try:
        ws = make_workspace(
            f"ssh://git@127.0.0.1:{silent.port}/r.git",
            DEVCONTAINER_SSH_PRIVATE_KEY=base64.b64encode(ssh_key.encode()).decode(),
        )
        proc = ws.start()
        wait_for(lambda: silent.connections, 30, "the clone's ssh connection")
        proc.kill()
        proc.communicate(timeout=30)
    finally:
        silent.stop()
    body = key_material(ssh_key)
    assert not tree_contains(Path(tempfile.gettempdir()), body), "the key is never written to disk"
    assert not tree_contains(ws.state_dir, body)


def test_sigterm_during_an_initialize_command_daemon_kills_it(sandbox: Path, make_workspace) -> None:
    remote = stealing_repository(sandbox, "slow", postCreateCommand="sleep 60")
    ws = make_workspace(remote.url, name="slow", DEVCONTAINER_ALLOWED_PRIVILEGES="initialize-command")
    proc = ws.start_until_logged("postCreateCommand: sleep 60")
    daemon = int((ws.folder / ".stolen.daemon").read_text())
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert not Path(f"/proc/{daemon}").exists()


# -- a disk that fills up -----------------------------------------------------------------------------


def test_a_disk_that_fills_during_the_build_does_not_turn_a_running_workspace_into_a_failure(
    remote: Remote, make_workspace, tiny_disk: Path
) -> None:
    remote.commit(
        {
            ".devcontainer/devcontainer.json": json.dumps({"build": {"dockerfile": "Dockerfile"}}),
            # unique, so that no layer cache can skip the step
            ".devcontainer/Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo build-started {uuid.uuid4()} && sleep 3\n",
        }
    )
    state_dir = tiny_disk / "state"
    ws = make_workspace(remote.url, DEVCONTAINER_STATE_DIR=str(state_dir))
    proc = ws.start_until_logged("build-started")
    fill = ["dd", "if=/dev/zero", f"of={tiny_disk / 'filler'}", "bs=64k"]
    subprocess.run(fill, capture_output=True, timeout=30, check=False)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stdout + stderr
    assert "No space left on device" in stderr and str(state_dir) in stderr
    assert "Traceback" not in stdout + stderr
    assert docker("inspect", "-f", "{{.State.Running}}", ws.container()) == "true"
    state = json.loads((state_dir / "state.json").read_text())
    assert state["status"] == "building", "the last good state stays; it is never half-written"


# -- bounded input -------------------------------------------------------------------------------------


def bad_input_sandbox(sandbox: Path) -> dict[str, str]:
    """What the cases of BAD_INPUTS refer to, and the environment of a builder that would otherwise run."""
    (sandbox / "a-file").write_text("x")
    (sandbox / "full").mkdir()
    (sandbox / "full" / "notes.txt").write_text("the admin's own notes\n")
    (sandbox / "units").mkdir(mode=0o755)
    (sandbox / "open").mkdir()
    (sandbox / "open").chmod(0o777)
    for name, mode in (("ok.env", 0o600), ("readable.env", 0o644)):
        (sandbox / name).write_text('DEVCONTAINER_REPOSITORY="https://git.example/acme/app.git"\n')
        (sandbox / name).chmod(mode)
    return {
        **base_env(),
        "DEVCONTAINER_REPOSITORY": f"file://{sandbox}/remotes/app.git",
        "DEVCONTAINER_WORKSPACE_FOLDER": f"{sandbox}/workspaces/app",
        "DEVCONTAINER_STATE_DIR": f"{sandbox}/state/app",
        "DEVCONTAINER_GIT_TIMEOUT": "10",
        "DEVCONTAINER_GIT_RETRIES": "1",
    }


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case.id for case in BAD_INPUTS])
def test_a_bad_value_exits_2_naming_it_and_touches_nothing(sandbox: Path, case: BadInput) -> None:
    """Every command checks every setting with the same validator (settings/options.py); the count of these
    cases is the one docs/security.md reports."""
    env = bad_input_sandbox(sandbox)
    env.update({key: value.replace("{sandbox}", str(sandbox)) for key, value in case.env.items()})
    argv = [arg.replace("{sandbox}", str(sandbox)) for arg in case.argv]
    if argv[0] == "install-service":  # a valid call, then the case's bad value (click keeps the last)
        argv[1:1] = ["--user", "dcb-user", "--env-file", f"{sandbox}/ok.env", "--unit-dir", f"{sandbox}/units"]
    run = subprocess.run([BUILDER, *argv], env=env, cwd=sandbox, capture_output=True, text=True, timeout=120,
                         check=False)  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 2, output[-2000:]
    assert case.named in " ".join(run.stderr.split()), run.stderr[-2000:]
    assert "Traceback" not in output and "this is a bug" not in output
    assert not case.secret or case.secret not in output
    assert not (sandbox / "workspaces").exists() and not (sandbox / "state").exists(), "nothing is created"
    assert (sandbox / "full" / "notes.txt").read_text() == "the admin's own notes\n"
    assert not list((sandbox / "units").iterdir()) and not list((sandbox / "open").iterdir())
    assert not Path("/tmp/dcb-pwned").exists()


def test_a_workspace_folder_that_is_a_file_or_under_one_exits_2(remote: Remote, make_workspace, sandbox: Path) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    (sandbox / "a-file").write_text("x")
    ws = make_workspace(remote.url)
    for folder in (sandbox / "a-file", sandbox / "a-file" / "project"):
        run = ws.up(DEVCONTAINER_WORKSPACE_FOLDER=str(folder))
        assert run.returncode == 2, run.output
        message = " ".join(run.stderr.split())
        assert "is a file, not a folder" in message and "DEVCONTAINER_WORKSPACE_FOLDER" in message
    assert (sandbox / "a-file").read_text() == "x"


@pytest.mark.parametrize(
    "folder",
    ["/etc", "/usr/local", "/proc/self/cwd/x", "/var", "/home", "/home/dcb-user/w"],
    ids=["etc", "usr-local", "proc-self-cwd", "var", "home", "another-users-home"],
)
def test_a_system_folder_is_never_a_workspace(remote: Remote, make_workspace, folder: str) -> None:
    """DEVCONTAINER_WORKSPACE_FOLDER=/etc exited 0 and bind-mounted the host's /etc read-write."""
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    ws = make_workspace(remote.url)
    before = sorted(os.listdir("/etc"))
    run = ws.up(DEVCONTAINER_WORKSPACE_FOLDER=folder, DEVCONTAINER_USE_EXISTING_FOLDER="true")
    assert run.returncode == 2, run.output[-2000:]
    message = " ".join(run.stderr.split())
    assert f"DEVCONTAINER_WORKSPACE_FOLDER is {folder}" in message and "never a workspace" in message, message
    assert "Traceback" not in run.output and not ws.state_dir.exists()
    assert sorted(os.listdir("/etc")) == before


@pytest.mark.parametrize("holds", ["files", "other-clone", "gitfile"])
def test_an_existing_folder_that_is_not_a_clone_of_the_repository_exits_2_unless_the_admin_opts_in(
    remote: Remote, make_remote, make_workspace, holds: str
) -> None:
    """Any existing folder without git was taken with a warning and mounted read-write into the devcontainer."""
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    ws = make_workspace(remote.url)
    ws.folder.mkdir(parents=True)
    (ws.folder / "precious.txt").write_text("the admin's own file\n")
    if holds == "other-clone":
        other = make_remote("other")
        other.commit({"x": "1"})
        run_git("clone", "-q", other.url, str(ws.folder / "tmp"))
        (ws.folder / "tmp" / ".git").rename(ws.folder / ".git")
    elif holds == "gitfile":
        (ws.folder / ".git").write_text("gitdir: /somewhere/else\n")
    run = ws.up()
    assert run.returncode == 2, run.output[-2000:]
    message = " ".join(run.stderr.split())
    assert f"DEVCONTAINER_WORKSPACE_FOLDER {ws.folder} already exists and is not a clone of" in message, message
    assert "DEVCONTAINER_USE_EXISTING_FOLDER=true" in message and "Traceback" not in run.output
    assert not ws.state_dir.exists() and ws.containers() == []
    assert (ws.folder / "precious.txt").read_text() == "the admin's own file\n"
    if holds == "files":  # the admin's explicit choice: used as it is
        run = ws.up(DEVCONTAINER_USE_EXISTING_FOLDER="true")
        assert run.returncode == 0, run.output
        assert "already holds files but no git repository" in run.stderr
        assert (ws.folder / "precious.txt").read_text() == "the admin's own file\n"


def test_the_workspaces_own_clone_stays_its_own_when_the_user_changes_its_origin(
    remote: Remote, make_remote, make_workspace
) -> None:
    """The refusal of a folder that is not a clone of the repository is for folders the builder never
    cloned: a user who points origin at a fork inside the workspace keeps a workspace that starts."""
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    ws = make_workspace(remote.url)
    assert ws.up().returncode == 0
    fork = make_remote("fork")
    run_git("remote", "set-url", "origin", fork.url, cwd=ws.folder, uid=1000)
    run = ws.up()
    assert run.returncode == 0, run.output[-2000:]
    assert "leaving it untouched" in run.stderr and ws.state()["status"] == "running"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("[" * 200_000 + "]" * 200_000, "nesting deeper than"),
     ('{"image": "x", "pad": "' + "x" * (50 * 1024 * 1024) + '"}', "larger than 1024 KiB")],
    ids=["deep", "huge"],
)  # fmt: skip
def test_a_hostile_config_file_is_a_clear_error_and_the_fallback(
    remote: Remote, make_workspace, text, fragment
) -> None:
    remote.commit({".devcontainer/devcontainer.json": text})
    ws = make_workspace(remote.url)
    state = degraded_with(ws, "config", fragment)
    assert "this is a bug" not in state["error"]["message"]


def test_a_change_past_the_two_thousandth_file_still_rebuilds(remote: Remote, make_workspace) -> None:
    files = {f".devcontainer/data/{index:05d}.txt": f"{index}\n" for index in range(2500)}
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE}), **files})
    ws = make_workspace(remote.url)
    assert ws.up().returncode == 0
    first = ws.container()
    remote.commit({".devcontainer/data/02499.txt": "changed\n"})
    assert ws.up().returncode == 0
    assert ws.container() != first, "a change to the last file is a changed config"
    assert "config_changed" in ws.event_kinds()
