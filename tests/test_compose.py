"""Docker Compose devcontainers, end to end on the real engine, CLI and compose: an app built from a
Dockerfile, a database stand-in (tests/env/images/kv.Dockerfile, a key-value server that keeps its data
in a named volume) and the builder around them - one project per workspace, reuse, recreation on
change with the data kept, recovery onto the fallback naming the failing service, concurrency,
rebuilds, keep-alive, rebuild suggestions and Coder's agent in the devcontainer's service."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from devcontainer_builder.engine import compose
from devcontainer_builder.engine.engine import Engine
from support.builder import Workspace, docker
from support.coder import CoderDouble, bridge_gateway, init_script, make_double
from support.compose_project import PROJECT_LABEL, compose_file, forget_projects, project_files, services_of
from support.images import BASE_IMAGE, FALLBACK_IMAGE, KV_IMAGE
from support.repos import Remote
from support.repos import git as run_git
from support.services import wait_for
from support.supervisor import Supervisor

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]
ERROR_LOG = ".devcontainer-build-error.log"


@pytest.fixture(autouse=True)
def projects_cleaned_up(sandbox: Path) -> Iterator[None]:
    """The projects' networks and named volumes go with the test (the sandbox removes containers only)."""
    yield
    forget_projects(sandbox)


def kv(ws: Workspace, *command: str) -> str:
    """Talk to the database from the devcontainer, by its service name, as an app would."""
    app = services_of(ws)["app"]["id"]
    script = 'exec 3<>/dev/tcp/db/5432 && echo "$*" >&3 && head -n 1 <&3'
    return docker("exec", app, "bash", "-c", script, "kv", *command)


def wait_kv(ws: Workspace, *command: str) -> str:
    answers: list[str] = []
    wait_for(lambda: answers.append(kv(ws, *command)) or True, 30, "the database answering")
    return answers[-1]


@pytest.fixture
def compose_ws(remote: Remote, make_workspace) -> Workspace:
    remote.commit(project_files())
    ws = make_workspace(remote.url)
    run = ws.up()
    assert run.returncode == 0, run.output
    assert ws.state()["status"] == "running", ws.state()
    return ws


def test_a_compose_project_comes_up_with_its_database_and_a_rerun_reuses_it(compose_ws: Workspace) -> None:
    ws = compose_ws
    state = ws.state()
    found = services_of(ws)
    assert set(found) == {"app", "db"}
    assert state["container_id"] == found["app"]["id"], "the devcontainer is the service the config names"
    assert (found["app"]["role"], found["db"]["role"]) == ("devcontainer", "service"), "every container is labelled"
    assert found["app"]["config"] == found["db"]["config"] == state["config_hash"]
    project = found["app"]["project"]
    assert project == found["db"]["project"] == state["compose_project"]
    assert project.startswith("project-") and project != "devcontainer", "a project name of the workspace's own"
    assert state["compose_volumes"] == [f"{project}_kvdata"]
    assert docker("exec", found["app"]["id"], "cat", "/tmp/built") == "built", "the app's Dockerfile was built"
    assert wait_kv(ws, "SET", "answer", "42") == "OK"
    assert kv(ws, "GET", "answer") == "42"
    rerun = ws.up()
    assert rerun.returncode == 0, rerun.output
    assert services_of(ws) == found, "the same containers"
    assert "container_reused" in ws.event_kinds()
    assert docker("exec", found["app"]["id"], "cat", "/tmp/created") == "created", "postCreate ran once"


def test_an_edited_compose_file_recreates_the_project_and_keeps_the_database(
    compose_ws: Workspace, remote: Remote
) -> None:
    ws = compose_ws
    before = services_of(ws)
    assert wait_kv(ws, "SET", "kept", "yes") == "OK"
    remote.commit({".devcontainer/compose.yml": compose_file(db="    environment:\n      KV_MODE: strict")})
    run = ws.up()
    assert run.returncode == 0, run.output
    after = services_of(ws)
    assert set(after) == {"app", "db"}, "no container of the old project is left"
    assert after["app"]["id"] != before["app"]["id"] and after["db"]["id"] != before["db"]["id"]
    assert after["db"]["config"] == ws.state()["config_hash"] != before["db"]["config"]
    assert wait_kv(ws, "GET", "kept") == "yes", "the named volume survived the recreation"
    down = [event for event in ws.events() if event["kind"] == "compose_down"]
    assert down and down[-1]["volumes_kept"] == [f"{after['app']['project']}_kvdata"]
    assert "its named volumes are kept" in run.stdout


@pytest.mark.parametrize(
    ("db", "blamed", "words"),
    [
        ("    command: ['sh', '-c', 'echo cannot open the data folder >&2; exit 4']", "db", "exit code 4"),
        ("    build:\n      context: .\n      dockerfile: Broken.Dockerfile", "db", "failed"),
        ("    image: devcontainer-builder-test/no-such-image:1\n    pull_policy: always", "db", "failed"),
    ],
    ids=["exits", "build-fails", "pull-fails"],
)
def test_a_failing_service_brings_up_the_fallback_naming_it(
    remote: Remote, make_workspace, db: str, blamed: str, words: str
) -> None:
    files = project_files()
    replaces_image = "image:" in db or "build:" in db
    files[".devcontainer/compose.yml"] = compose_file(db=db).replace(
        f"    image: {KV_IMAGE}\n", "", int(replaces_image)
    )
    files[".devcontainer/Broken.Dockerfile"] = f"FROM {BASE_IMAGE}\nRUN echo the database cannot build && exit 3\n"
    remote.commit(files)
    ws = make_workspace(remote.url)
    run = ws.up()
    assert run.returncode == 0, run.output
    state = ws.state()
    assert state["status"] == "degraded", state
    message = state["error"]["message"]
    assert f"compose service {blamed!r}" in message and words in message, message
    error_log = (ws.folder / ERROR_LOG).read_text()
    assert f"compose service {blamed!r}" in error_log
    assert "Container" in error_log or "#" in error_log, "compose's own output is in the error log"
    (fallback,) = ws.containers()
    assert docker("inspect", "-f", "{{.Config.Image}}", fallback) == FALLBACK_IMAGE
    project = compose.project_name(str(ws.folder))
    assert docker("ps", "-aq", "--filter", f"label={PROJECT_LABEL}={project}") == "", "the project was taken down"
    if "exit code" in words:  # the project was up before its database stopped: the volume is kept
        volumes = docker("volume", "ls", "-q", "--filter", f"label={PROJECT_LABEL}={project}")
        assert volumes == f"{project}_kvdata", "its named volume was kept"
    # fixed upstream: the next start tries the project again
    remote.commit(project_files())
    again = ws.up()
    assert again.returncode == 0, again.output
    assert ws.state()["status"] == "running"
    assert set(services_of(ws)) == {"app", "db"}, "the fallback is gone, the project is back"


def test_two_concurrent_starts_make_one_project(remote: Remote, make_workspace) -> None:
    remote.commit(project_files())
    ws = make_workspace(remote.url)
    first, second = ws.start(), ws.start()
    for proc in (first, second):
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, out + err
    found = services_of(ws)
    assert set(found) == {"app", "db"}
    assert all(container["state"] == "running" for container in found.values())


def test_a_repository_cannot_choose_its_project(remote: Remote, make_workspace, sandbox) -> None:
    """`.env`'s COMPOSE_PROJECT_NAME and the file's `name:` would put two workspaces in one project (and let
    one take the other's down): the project is the workspace's, whatever the repository says."""
    files = project_files()
    files[".devcontainer/.env"] = "COMPOSE_PROJECT_NAME=shared\n"
    files[".devcontainer/compose.yml"] = "name: shared\n" + files[".devcontainer/compose.yml"]
    remote.commit(files)
    one, two = make_workspace(remote.url, name="one"), make_workspace(remote.url, name="two")
    for ws in (one, two):
        run = ws.up()
        assert run.returncode == 0, run.output
        assert ws.state()["status"] == "running", ws.state()
    projects = {services_of(ws)["app"]["project"] for ws in (one, two)}
    assert len(projects) == 2 and "shared" not in projects
    assert wait_kv(one, "SET", "who", "one") == "OK"
    assert wait_kv(two, "GET", "who") == "", "each workspace has its own database volume"


@pytest.mark.parametrize(
    ("compose", "fragments"),
    [
        (compose_file(db="    privileged: true"), ["privileged: true"]),
        (compose_file(mounts="      - /:/host"), ["bind mount of /", "outside the workspace"]),
        (compose_file(db="    pid: host"), ["namespace outside the container"]),
        (compose_file(app="    cap_add: [SYS_ADMIN]"), ["capability SYS_ADMIN"]),
        (compose_file(db="    network_mode: host"), ["namespace outside the container"]),
    ],
    ids=["privileged", "host-root", "pid-host", "cap-add", "host-network"],
)
def test_a_service_asking_for_the_host_is_refused_before_anything_runs(
    remote: Remote, make_workspace, compose: str, fragments: list[str]
) -> None:
    files = project_files()
    files[".devcontainer/compose.yml"] = compose
    remote.commit(files)
    ws = make_workspace(remote.url)
    run = ws.up()
    assert run.returncode == 0, run.output
    state = ws.state()
    assert (state["status"], state["error"]["step"]) == ("degraded", "policy"), state
    for fragment in fragments:
        assert fragment in state["error"]["message"], state["error"]["message"]
    assert "DEVCONTAINER_ALLOWED" in state["error"]["message"] or "cannot allow" in state["error"]["message"]
    images = docker("ps", "-a", "--filter", f"label=devcontainer-builder.workspace={ws.folder}",
                    "--format", "{{.Image}}").split()  # fmt: skip
    assert images == [FALLBACK_IMAGE], "no service of the project was created"


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ({".devcontainer/compose.yml": compose_file(db="    env_file: /etc/hostname")}, "env file /etc/hostname"),
        ({".devcontainer/compose.yml": "include:\n  - /etc/compose.yml\n" + compose_file()}, "included compose"),
        ({".devcontainer/compose.yml": compose_file(db="    env_file: ${HOME}/.env")}, "through a variable"),
        ({".devcontainer/compose.yml": "services: [\n"}, "not valid YAML"),
        # the CLI read these itself (the base image, for features) before the policy saw the build: a parse error
        (
            {".devcontainer/compose.yml": compose_file().replace("dockerfile: Dockerfile", "dockerfile: /etc/passwd")},
            "the Dockerfile /etc/passwd",
        ),
        ({".devcontainer/compose.yml": compose_file().replace("context: .", "context: /etc")}, "build context /etc"),
        (
            {".devcontainer/compose.yml": compose_file().replace("dockerfile: Dockerfile", "dockerfile: ${HOME}/x")},
            "through a variable",
        ),
    ],
    ids=[
        "env-file",
        "include",
        "variable-path",
        "broken-yaml",
        "dockerfile-outside",
        "context-outside",
        "dockerfile-variable",
    ],
)
def test_compose_files_that_read_outside_the_repository_are_refused(
    remote: Remote, make_workspace, files: dict[str, str], fragment: str
) -> None:
    remote.commit({**project_files(), **files})
    ws = make_workspace(remote.url)
    assert ws.up().returncode == 0
    state = ws.state()
    assert (state["status"], state["error"]["step"]) == ("degraded", "config"), state
    assert fragment in state["error"]["message"], state["error"]["message"]


# -- with the supervisor: rebuilds, keep-alive, suggestions, the agent ----------------------------------


@pytest.fixture
def supervised(compose_ws: Workspace) -> Iterator[tuple[Workspace, Supervisor]]:
    sup = Supervisor(compose_ws)
    yield compose_ws, sup
    sup.stop()


def test_a_full_rebuild_recreates_every_service_and_keeps_the_volume(supervised) -> None:
    ws, sup = supervised
    before = services_of(ws)
    assert wait_kv(ws, "SET", "kept", "through-rebuild") == "OK"
    assert sup.post("/api/rebuild", {"full": True}).status == 202
    final = sup.wait_build_end()
    assert final["status"] == "running", final
    after = services_of(ws)
    assert after["app"]["id"] != before["app"]["id"] and after["db"]["id"] != before["db"]["id"]
    assert wait_kv(ws, "GET", "kept") == "through-rebuild"
    log = ws.build_log()
    assert "keeps its named volumes" in log and "--no-cache" in log


def test_keep_alive_starts_a_service_that_died(supervised) -> None:
    ws, sup = supervised
    db = services_of(ws)["db"]["id"]
    assert wait_kv(ws, "SET", "x", "1") == "OK"
    docker("kill", db)
    wait_for(lambda: services_of(ws)["db"]["state"] == "running", 120, "keep-alive starting the database again")
    final = sup.wait_build_end()
    assert final["status"] == "running"
    assert services_of(ws)["db"]["id"] == db, "the same container, started again"
    assert wait_kv(ws, "GET", "x") == "1"
    assert "compose_started" in ws.event_kinds()


def test_an_edit_of_a_compose_file_suggests_a_rebuild(supervised) -> None:
    ws, sup = supervised
    sup.wait_status("running")
    (ws.folder / ".devcontainer" / "compose.yml").write_text(compose_file(db="    environment:\n      X: 1"))
    wait_for(lambda: sup.status()["rebuild_suggested"], 60, "the suggestion for the compose edit")
    assert ".devcontainer/compose.yml" in sup.status()["changed_files"]
    run_git("checkout", "--", ".devcontainer/compose.yml", cwd=ws.folder)
    wait_for(lambda: not sup.status()["rebuild_suggested"], 60, "the suggestion withdrawn on undo")


def test_an_edit_of_what_a_service_builds_from_suggests_a_rebuild(remote: Remote, make_workspace) -> None:
    """The app's Dockerfile lives outside .devcontainer and COPYs a file from the repository root."""
    files = project_files()
    files[".devcontainer/compose.yml"] = compose_file().replace(
        "      context: .\n      dockerfile: Dockerfile", "      context: ..\n      dockerfile: docker/app.Dockerfile"
    )
    files["docker/app.Dockerfile"] = f"FROM {FALLBACK_IMAGE}\nCOPY requirements.txt /tmp/\n"
    files["requirements.txt"] = "flask==3.0\n"
    remote.commit(files)
    ws = make_workspace(remote.url)
    assert ws.up().returncode == 0
    assert ws.state()["status"] == "running", ws.state()
    sup = Supervisor(ws)
    try:
        sup.wait_status("running")
        (ws.folder / "requirements.txt").write_text("flask==3.1\n")
        wait_for(lambda: sup.status()["rebuild_suggested"], 60, "the suggestion for the COPYed file")
        assert sup.status()["changed_files"] == ["requirements.txt"]
        (ws.folder / "docker" / "app.Dockerfile").write_text(f"FROM {FALLBACK_IMAGE}\nCOPY . /src\n")
        wait_for(lambda: "docker/app.Dockerfile" in sup.status()["changed_files"], 60, "the Dockerfile's edit")
    finally:
        sup.stop()


@pytest.fixture
def bridged_coder() -> Iterator[CoderDouble]:
    server = make_double(host=bridge_gateway())  # the agent calls in from a container
    yield server
    server.stop()


def test_coders_agent_connects_from_the_devcontainers_service(
    remote: Remote, make_workspace, bridged_coder: CoderDouble
) -> None:
    remote.commit(project_files())
    url = f"http://{bridge_gateway()}:{bridged_coder.port}"
    ws = make_workspace(
        remote.url, CODER_AGENT_URL=url, CODER_AGENT_TOKEN=bridged_coder.token, CODER_INIT_SCRIPT=init_script(url)
    )
    run = ws.up()
    assert run.returncode == 0, run.output
    wait_for(lambda: len(bridged_coder.connections) == 1, 60, "the agent connecting")
    (connection,) = bridged_coder.connections
    app = services_of(ws)["app"]["id"]
    assert connection["hostname"] == app[:12], "the agent runs in the service the config names"
    db = services_of(ws)["db"]["id"]
    assert bridged_coder.token not in docker("inspect", db), "no other service sees the agent's token"


def test_podman_without_compose_is_a_clear_error() -> None:
    """Debian bookworm's Podman 4.3 has no `podman compose`: the failure says so in words, not as the
    CLI's "An error occurred retrieving the Docker Compose configuration"."""
    problem = compose.problem(Engine("podman", {"PATH": os.environ["PATH"]}))
    assert problem.startswith("Docker Compose configs are not supported with Podman here"), problem
    assert "podman compose" in problem and "Podman 4.7" in problem
    assert compose.problem(Engine("docker", {"PATH": os.environ["PATH"]})) == "", "the host's docker has compose"


GREETER = {
    ".devcontainer/greeter/devcontainer-feature.json": json.dumps(
        {"id": "greeter", "version": "1.0.0", "options": {"greeting": {"type": "string", "default": "hi"}}}
    ),
    ".devcontainer/greeter/install.sh": '#!/bin/sh\nset -e\necho "$GREETING" > /usr/local/share/greeting\n',
}


def test_several_compose_files_an_env_file_a_feature_and_hooks_on_the_service(remote: Remote, make_workspace) -> None:
    files = project_files(
        dockerComposeFile=["compose.yml", "compose.dev.yml"],
        features={"./greeter": {"greeting": "hello from a feature"}},
        onCreateCommand="touch /tmp/on-create",
        postStartCommand="touch /tmp/post-start",
    )
    files[".devcontainer/compose.yml"] = compose_file().replace(f"image: {KV_IMAGE}", "image: ${KV_IMAGE}")
    files[".devcontainer/.env"] = f"KV_IMAGE={KV_IMAGE}\nAPP_MODE=development\n"
    files[".devcontainer/compose.dev.yml"] = "services:\n  app:\n    environment:\n      APP_MODE: ${APP_MODE}\n"
    remote.commit({**files, **GREETER})
    ws = make_workspace(remote.url)
    run = ws.up()
    assert run.returncode == 0, run.output
    app = services_of(ws)["app"]["id"]
    assert docker("exec", app, "cat", "/usr/local/share/greeting") == "hello from a feature", "the feature is built in"
    assert docker("exec", app, "printenv", "APP_MODE") == "development", "the second file, with .env's value"
    for marker in ("/tmp/on-create", "/tmp/created", "/tmp/post-start"):
        docker("exec", app, "test", "-f", marker)
    assert docker("inspect", "-f", "{{.Config.Image}}", services_of(ws)["db"]["id"]) == KV_IMAGE
    assert wait_kv(ws, "SET", "a", "b") == "OK"


def test_a_feature_asking_for_privileges_on_a_compose_service_is_refused(remote: Remote, make_workspace) -> None:
    """The compose files ask for nothing; a feature's metadata does, through the CLI's own override file."""
    sneaky = {
        ".devcontainer/sneaky/devcontainer-feature.json": json.dumps(
            {"id": "sneaky", "version": "1.0.0", "privileged": True,
             "mounts": [{"source": "/var/run/docker.sock", "target": "/var/run/docker.sock", "type": "bind"}]}
        ),
        ".devcontainer/sneaky/install.sh": "#!/bin/sh\ntrue\n",
    }  # fmt: skip
    remote.commit({**project_files(features={"./sneaky": {}}), **sneaky})
    ws = make_workspace(remote.url)
    assert ws.up().returncode == 0
    state = ws.state()
    assert (state["status"], state["error"]["step"]) == ("degraded", "policy"), state
    assert "services.app.privileged" in state["error"]["message"]
    assert "bind mount of /var/run/docker.sock" in state["error"]["message"]
    project = compose.project_name(str(ws.folder))
    assert docker("ps", "-aq", "--filter", f"label={PROJECT_LABEL}={project}") == "", "nothing of the project runs"


def swapping_project(sandbox: Path, swapper_first: bool) -> tuple[dict[str, str], Path]:
    """`evil` mounts `data`, a folder inside the workspace. Something of the repository replaces `data` with a
    link to `/`: a service that runs before `evil` starts (`swapper_first`), or the devcontainer's hook."""
    marker = sandbox / "escaped"
    evil = (
        f"  evil:\n    image: {BASE_IMAGE}\n    restart: always\n    volumes: ['../data:/data']\n"
        f"    command: ['sh', '-c', 'if [ -e /data/etc/hostname ]; then touch /data{marker}; fi; sleep infinity']\n"
    )
    if swapper_first:
        evil += "    depends_on: {swapper: {condition: service_completed_successfully}}\n"
        evil += (
            f"  swapper:\n    image: {BASE_IMAGE}\n    volumes: ['..:/ws']\n"
            "    command: ['sh', '-c', 'rm -rf /ws/data && ln -s / /ws/data']\n"
        )
    files = project_files(
        runServices=["app", "db", "evil"],
        postCreateCommand="" if swapper_first else "cd /workspaces/project && rm -rf data && ln -s / data",
    )
    files[".devcontainer/compose.yml"] = compose_file().replace("volumes:\n  kvdata", evil + "volumes:\n  kvdata")
    files["data/.keep"] = ""
    return files, marker


def test_a_bind_mount_inside_the_workspace_is_refused_another_service_could_swap_it(
    remote: Remote, make_workspace, sandbox: Path
) -> None:
    """`swapper` starts first and replaces `data` with a link to `/` before the engine mounts it into
    `evil`: a check of `data` at any moment before the start cannot hold, so such a mount is refused."""
    files, marker = swapping_project(sandbox, swapper_first=True)
    remote.commit(files)
    ws = make_workspace(remote.url)
    assert ws.up().returncode == 0
    state = ws.state()
    assert (state["status"], state["error"]["step"]) == ("degraded", "policy"), state
    assert "a file or folder inside the workspace" in state["error"]["message"]
    assert "DEVCONTAINER_ALLOWED_MOUNTS" in state["error"]["message"]
    assert not marker.exists(), "the host's root was mounted into a container"
    assert not (ws.folder / "data").is_symlink(), "no service of the project ran"


def test_an_allowed_bind_mount_swapped_for_a_link_is_never_started_again(
    remote: Remote, make_workspace, sandbox: Path
) -> None:
    """The admin allows `data`; the devcontainer's hook replaces it with a link to `/` after the project was
    created. The engine would follow it at the next start - by a restart policy, keep-alive or a rerun: that
    start never happens."""
    files, marker = swapping_project(sandbox, swapper_first=False)
    remote.commit(files)
    ws = make_workspace(remote.url)
    ws.env["DEVCONTAINER_ALLOWED_MOUNTS"] = str(ws.folder / "data")
    run = ws.up()
    assert run.returncode == 0, run.output
    assert ws.state()["status"] == "running", ws.state()
    assert os.readlink(ws.folder / "data") == "/", "the hook swapped the folder for a link"
    evil_id = services_of(ws)["evil"]["id"]
    assert docker("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", evil_id) == "no", (
        "the engine may not start it again by itself"
    )
    docker("kill", evil_id)
    rerun = ws.up()
    assert rerun.returncode == 0, rerun.output
    state = ws.state()
    assert (state["status"], state["error"]["step"]) == ("degraded", "policy"), state
    assert "now leads outside the workspace" in state["error"]["message"]
    assert not marker.exists(), "the host's root was mounted into a container"
    assert set(services_of(ws)) == {"fallback"}, "the project was taken down"


def test_a_service_that_crash_loops_is_a_failure_not_running(remote: Remote, make_workspace) -> None:
    files = project_files()
    files[".devcontainer/compose.yml"] = compose_file(db="    restart: always\n    command: ['sh', '-c', 'exit 3']")
    remote.commit(files)
    ws = make_workspace(remote.url)
    assert ws.up().returncode == 0
    state = ws.state()
    assert state["status"] == "degraded", state
    assert "the compose service 'db' is failing" in state["error"]["message"], state["error"]["message"]


def test_a_built_image_cannot_take_the_fallback_images_name(remote: Remote, make_workspace) -> None:
    """`build` with `image: <the fallback image>` would replace the admin's recovery image on the engine."""
    before = docker("image", "inspect", "-f", "{{.Id}}", FALLBACK_IMAGE)
    files = project_files()
    files[".devcontainer/compose.yml"] = compose_file(app=f"    image: {FALLBACK_IMAGE}")
    files[".devcontainer/Dockerfile"] = f"FROM {FALLBACK_IMAGE}\nLABEL poisoned=yes\n"
    remote.commit(files)
    ws = make_workspace(remote.url)
    run = ws.up()
    assert run.returncode == 0, run.output
    assert ws.state()["status"] == "running", ws.state()
    project = compose.project_name(str(ws.folder))
    assert docker("inspect", "-f", "{{.Config.Image}}", services_of(ws)["app"]["id"]) == f"{project}-app"
    assert docker("image", "inspect", "-f", "{{.Id}}", FALLBACK_IMAGE) == before, "the fallback image is untouched"


def test_a_recreation_warns_about_the_anonymous_volumes_it_cannot_carry_over(remote: Remote, make_workspace) -> None:
    cache = f"  cache:\n    image: {KV_IMAGE}\n"  # the image's VOLUME, unnamed
    files = project_files(runServices=["app", "db", "cache"])
    files[".devcontainer/compose.yml"] = compose_file().replace("volumes:\n  kvdata", cache + "volumes:\n  kvdata")
    remote.commit(files)
    ws = make_workspace(remote.url)
    assert ws.up().returncode == 0
    assert ws.state()["status"] == "running", ws.state()
    remote.commit({".devcontainer/compose.yml": files[".devcontainer/compose.yml"].replace("kvdata: {}", "kvdata: {}\n")
                   + "# changed\n"})  # fmt: skip
    run = ws.up()
    assert run.returncode == 0, run.output
    assert "cache:/var/lib/kv: anonymous volumes" in run.stdout + run.stderr
    assert "Name them in the compose file" in run.stdout + run.stderr
