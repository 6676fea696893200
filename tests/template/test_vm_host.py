"""template/modules/vm-host: the cloud-init a Coder VM template passes to its instance.

Validated like the templates (fmt, init from the provider mirror, validate with no warning, checkov) with a
small root config that calls it, and rehearsed: the rendered user-data's files are written into a fresh
Debian container, its first-boot script runs there as cloud-init would run it (installing Podman, the
builder and the devcontainer CLI, writing the service), and then the unit's own commands - `up`, then
`serve`, as its user, with its environment file - bring the workspace up with rootless Podman inside
that container, Coder's agent connecting from the devcontainer. The container stands in for the VM; it
has no systemd, so the rehearsal runs what the unit says the way systemd would (the env file read as
root, then the user's uid and groups, the unit's Environment=, WorkingDirectory=).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from devcontainer_builder.host import envfile
from support import images
from support.builder import ROOT, docker
from support.coder import init_script
from support.defaults import not_the_tables
from support.rehearsal import PRIVILEGED
from support.repos import Remote
from support.services import wait_for
from support.terraform import CACHE, Workdir, assert_checkov_clean, assert_formatted_and_valid, terraform_bin

MODULE = ROOT / "template" / "modules" / "vm-host"
CLI_VERSION = "0.89.0"
SOURCES = CACHE / "vm-host"  # the wheel, the CLI's tarball, the images: what the VM would download
USER = "coder"
UNIT = "/etc/systemd/system/devcontainer-builder.service"
INPUTS = re.findall(r'^variable "([a-z_]+)"', (MODULE / "variables.tf").read_text(), re.M)


def root_config(into: Path) -> Workdir:
    """The module beside a root config that passes every input through and outputs what it renders."""
    shutil.copytree(MODULE, into / "vm-host", ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    # null for an input not given: the module's default (its variables are not nullable)
    declared = "".join(
        f'variable "{name}" {{\n  type      = any\n  default   = null\n  sensitive = true\n}}\n\n' for name in INPUTS
    )
    passed = "".join(f"  {name} = var.{name}\n" for name in INPUTS)
    outputs = "".join(
        f'output "{name}" {{\n  value     = module.vm.{name}\n  sensitive = true\n}}\n\n'
        for name in ("user_data", "first_boot_script", "env_file", "service_name", "status_url")
    )
    (into / "main.tf").write_text(f'{declared}module "vm" {{\n  source = "./vm-host"\n\n{passed}}}\n\n{outputs}')
    work = Workdir("vm-host", into)
    assert work.run("fmt", "main.tf").returncode == 0  # the generated root config; the module is checked as it is
    work.init()
    return work


def render(work: Workdir, inputs: dict[str, Any]) -> dict[str, Any]:
    (work.path / "inputs.tfvars.json").write_text(json.dumps(inputs))
    applied = work.run("apply", "-auto-approve", "-input=false", "-no-color", "-var-file=inputs.tfvars.json")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    shown = work.run("output", "-json")
    return {name: value["value"] for name, value in json.loads(shown.stdout).items()}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Workdir:
    return root_config(tmp_path_factory.mktemp("vm-host"))


def test_the_module_is_formatted_valid_and_clean(work: Workdir) -> None:
    fmt = subprocess.run([terraform_bin(), "fmt", "-check", "-diff", "-recursive", str(MODULE)], capture_output=True,
                         text=True, timeout=60, check=False)  # fmt: skip
    assert fmt.returncode == 0, fmt.stdout
    assert_formatted_and_valid(work)
    assert_checkov_clean("modules/vm-host")


def test_the_user_data_keeps_secrets_in_a_root_only_file_and_quotes_every_value(work: Workdir) -> None:
    script = '#!/bin/sh\necho "it\'s $HOME" `id` \\ ${X}\n'
    rendered = render(work, {
        "agent_token": "tok-1", "agent_init_script": script, "agent_url": "https://coder.example.com",
        "repository": "https://github.com/acme/app.git", "builder_package": "https://pkgs.example.com/it's.whl",
        "devcontainer_cli_url": "https://registry.npmjs.org/@devcontainers/cli/-/cli-0.89.0.tgz",
        "fallback_image": "docker.io/codercom/enterprise-base:ubuntu", "secret_env": {"GH_TOKEN": "ghp_x"},
        "user": "dev",
    })  # fmt: skip
    user_data = rendered["user_data"]
    assert user_data.startswith("#cloud-config\n")
    config = yaml.safe_load(user_data)
    files = {entry["path"]: entry for entry in config["write_files"]}
    env = files["/etc/devcontainer-builder/workspace.env"]
    assert (env["owner"], env["permissions"]) == ("root:root", "0600")
    assert config["runcmd"] == [["/usr/local/sbin/devcontainer-builder-first-boot"]]
    assert "tok-1" not in rendered["first_boot_script"] and "ghp_x" not in rendered["first_boot_script"]
    # the env file reads back, through sh's double-quote rules (systemd's), to the very values given
    read = subprocess.run(["bash", "-c", 'set -a; . /dev/stdin; set +a; printf "%s" "$CODER_INIT_SCRIPT"'],
                          input=env["content"], capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    assert read.stdout == script
    # and through systemd's own rules, as install-service reads it for the unit's start limit
    parsed = envfile.parse(env["content"])
    assert parsed["CODER_INIT_SCRIPT"] == script and parsed["GH_TOKEN"] == "ghp_x"
    assert parsed["DEVCONTAINER_REPOSITORY"] == "https://github.com/acme/app.git"
    # and the script's values are single-quoted for sh, a quote inside included
    assert "package='https://pkgs.example.com/it'\\''s.whl'" in rendered["first_boot_script"]
    assert "user='dev'" in rendered["first_boot_script"]
    checked = subprocess.run(["shellcheck", "-s", "bash", "-"], input=rendered["first_boot_script"],
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout


# settings the module's env file gives, at its defaults, a value other than the options table's -> why
DEFAULT_DIFFERENCES = {
    "DEVCONTAINER_FALLBACK_IMAGE": "Podman guesses no registry for a short name: docker.io/ in front",
    "DEVCONTAINER_DOCKER_PATH": "the VM's engine is the user's rootless Podman, named rather than detected",
    "DEVCONTAINER_SERVE_ADDRESS": "a port below 1024, which no rootless devcontainer on the VM's network can take",
    "DEVCONTAINER_NETWORK": "host: the devcontainer's ports are the VM's",
    "DEVCONTAINER_PERSIST": "the editors' servers (~/.vscode-server, code-server's) survive a rebuild, not downloaded again",
}


def test_at_its_defaults_the_module_gives_the_builder_the_tables_defaults_or_a_named_difference(
    work: Workdir,
) -> None:
    repository = "https://github.com/acme/widgets.git"
    rendered = render(work, {"agent_token": "t", "agent_init_script": "s", "agent_url": "https://coder.example.com",
                             "repository": repository, "builder_package": "devcontainer-builder==0.1.0"})  # fmt: skip
    env = envfile.parse(rendered["env_file"])
    assert env["DEVCONTAINER_REPOSITORY"] == repository
    assert set(not_the_tables(env, repository)) == set(DEFAULT_DIFFERENCES)


def page_key(token: str) -> str:
    """What `serve` puts in the page's address for a builder agent's token (supervisor/serve.py)."""
    return hashlib.sha256(f"devcontainer-builder status page:{token}".encode()).hexdigest()


def test_the_status_app_points_at_a_privileged_port_with_the_pages_key(work: Workdir) -> None:
    """issue 19, High 1: on the VM's network a devcontainer could take serve's port 7480 and answer the app."""
    inputs = {"agent_token": "t", "agent_init_script": "s", "agent_url": "https://c", "repository": "https://g/r.git",
              "builder_package": "devcontainer-builder==0.1.0", "user": "coder"}  # fmt: skip
    keyed = render(work, {**inputs, "builder_agent_token": "builder-tok", "builder_agent_init_script": "s"})
    assert keyed["status_url"] == f"http://127.0.0.1:748/k/{page_key('builder-tok')}/", "serve's own key"
    assert 'DEVCONTAINER_SERVE_ADDRESS="127.0.0.1:748"' in keyed["env_file"].splitlines()
    assert render(work, inputs)["status_url"] == "http://127.0.0.1:748/", "no builder agent: a read-only page"
    # the Docker and Kubernetes templates' status apps use the very same key
    for template in ("docker", "kubernetes"):
        text = (ROOT / "template" / template / "main.tf").read_text()
        assert 'page_key = sha256("devcontainer-builder status page:${coder_agent.builder.token}")' in text, template
        assert "/k/${local.page_key}/" in text and "DEVCONTAINER_SERVE_PAGE_KEY" in text, "in the app and for serve"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [("user", "root", "not root"), ("agent_url", "coder.example.com", "http:// or https://"),
     ("builder_package", "--index-url=https://evil", "cannot start with -"),
     ("secret_env", {'BAD KEY="x"\nDEVCONTAINER_ALLOWED_PRIVILEGES': "privileged"}, "Invalid value for variable"),
     ("env", {"A=B": "x"}, "env's keys are environment variable names"),
     ("persist", ["~/a b"], "without spaces"), ("network", "container:x", "network mode"),
     ("fallback_image", "a b", "image reference"), ("service_name", "../x", "plain unit name"),
     ("branch", "main\u0000\nX=1", "may not hold a NUL byte"), ("devcontainer_cli_url", "-K/etc/shadow", "URL")],
    ids=["root", "url", "pip-option", "secret-key-injection", "env-key", "persist-space", "network", "image", "name",
         "nul", "curl-option"],
)  # fmt: skip
def test_bad_inputs_are_refused_by_the_module(work: Workdir, name: str, value: Any, message: str) -> None:
    inputs = {"agent_token": "t", "agent_init_script": "s", "agent_url": "https://c", "repository": "https://g/r.git",
              "builder_package": "devcontainer-builder==0.1.0", "devcontainer_cli_url": "https://x/cli.tgz",
              "fallback_image": "docker.io/a/b:1", "secret_env": {}, "user": "coder"}  # fmt: skip
    inputs[name] = value
    (work.path / "inputs.tfvars.json").write_text(json.dumps(inputs))
    planned = work.run("plan", "-input=false", "-no-color", "-var-file=inputs.tfvars.json")
    assert planned.returncode == 1 and message in " ".join(planned.stderr.split()), planned.stderr


# -- the rehearsal --------------------------------------------------------------------------------------------


def vm_sources(into: Path) -> dict[str, str]:
    """What the VM downloads, made here: the builder's wheel, the CLI's npm tarball (checked by the module
    against its pinned digest), the images the rootless store starts with (no registry here), the CA bundle."""
    SOURCES.mkdir(parents=True, exist_ok=True)
    tarball = SOURCES / f"cli-{CLI_VERSION}.tgz"
    if not tarball.exists():
        subprocess.run(["npm", "pack", f"@devcontainers/cli@{CLI_VERSION}", "--pack-destination", str(SOURCES)],
                       capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
        (SOURCES / f"devcontainers-cli-{CLI_VERSION}.tgz").rename(tarball)
    source = into / "src"
    shutil.copytree(ROOT / "builder", source, ignore=shutil.ignore_patterns("node_modules", "*.egg-info"))
    subprocess.run([str(ROOT / ".venv" / "bin" / "pip"), "wheel", "-q", "--no-deps", "-w", str(into), str(source)],
                   capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    (wheel,) = into.glob("devcontainer_builder-*.whl")
    shutil.copy(tarball, into / tarball.name)
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", into / "ca.crt")
    docker("save", "-o", str(into / "images.tar"), images.BASE_IMAGE, images.FALLBACK_IMAGE, timeout=600)
    for path in into.iterdir():
        path.chmod(0o755 if path.is_dir() else 0o644)
    return {"wheel": f"/rehearsal/{wheel.name}", "cli": f"file:///rehearsal/{tarball.name}"}


@pytest.fixture
def vm(sandbox: Path) -> Iterator[str]:
    """A fresh Debian container standing in for the VM, able to run rootless Podman (user namespaces,
    /dev/fuse, /dev/net/tun; /home on a volume, as overlay cannot stack on the container's own)."""
    name = f"dcb-vm-{uuid.uuid4().hex[:8]}"
    (sandbox / "rehearsal").mkdir()
    (CACHE / "vm-host" / "apt").mkdir(parents=True, exist_ok=True)
    # a VM's kernel keeps ports below 1024 privileged (Docker lowers that to 0 in a container's own network)
    docker("run", "-d", "--name", name, "--hostname", "vm", *PRIVILEGED, "--device", "/dev/fuse",
           "--sysctl", "net.ipv4.ip_unprivileged_port_start=1024",
           "--device", "/dev/net/tun", "-v", f"{name}-home:/home",
           "-v", f"{sandbox / 'rehearsal'}:/rehearsal:ro", "-v", f"{CACHE / 'vm-host' / 'apt'}:/var/cache/apt/archives",
           images.BASE_IMAGE, "sleep", "infinity")  # fmt: skip
    try:
        yield name
    finally:
        docker("rm", "-f", "-v", name, check=False, timeout=300)
        docker("volume", "rm", f"{name}-home", check=False)


def in_vm(vm: str, *argv: str, stdin: str | None = None, env: dict[str, str] | None = None,
          timeout: float = 900) -> subprocess.CompletedProcess:  # fmt: skip
    flags = [arg for key, value in (env or {}).items() for arg in ("-e", f"{key}={value}")]
    return subprocess.run(["docker", "exec", "-i", *flags, vm, *argv], input=stdin, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


def write_files(vm: str, user_data: str) -> list[str]:
    """What cloud-init does with write_files; returns runcmd's commands."""
    config = yaml.safe_load(user_data)
    for entry in config["write_files"]:
        path = entry["path"]
        script = 'mkdir -p "$(dirname "$1")" && cat > "$1" && chown "$2" "$1" && chmod "$3" "$1"'
        done = in_vm(vm, "sh", "-c", script, "sh", path, entry["owner"], entry["permissions"], stdin=entry["content"])
        assert done.returncode == 0, done.stderr
    return [" ".join(shlex.quote(arg) for arg in command) for command in config["runcmd"]]


def unit_fields(text: str) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith(("#", "[")):
            fields.setdefault(key, []).append(value)
    return fields


def as_the_service(
    vm: str, unit: dict[str, list[str]], command: str, *, detach: bool = False
) -> subprocess.CompletedProcess:
    """One of the unit's commands, run as systemd runs it: EnvironmentFile= read as root, then the unit's
    Environment=, the user's uid and groups, WorkingDirectory=."""
    environment = unit["Environment"]
    (user,), (env_file,), (folder,) = unit["User"], unit["EnvironmentFile"], unit["WorkingDirectory"]
    ambient = ",".join("+" + cap.lower().removeprefix("cap_") for cap in unit.get("AmbientCapabilities", []))
    caps = f"--inh-caps={ambient} --ambient-caps={ambient} " if ambient else ""
    script = ('set -a; . "$1"; set +a; shift; cd "$1"; shift; '
              f'exec setpriv --reuid={user} --regid={user} --init-groups {caps}env {" ".join(map(shlex.quote, environment))} "$@"')  # fmt: skip
    argv = ["sh", "-c", script, "sh", env_file, folder, *shlex.split(command.lstrip("-"))]
    if detach:
        return subprocess.run(["docker", "exec", "-d", vm, *argv], capture_output=True, text=True, timeout=60,
                              check=False)  # fmt: skip
    return in_vm(vm, *argv, timeout=900)


@pytest.mark.docker
@pytest.mark.needs_root
@pytest.mark.usefixtures("docker_engine")
def test_first_boot_installs_the_service_and_its_command_brings_the_workspace_up_with_rootless_podman(
    work: Workdir, vm: str, services, sandbox: Path
) -> None:
    git, coder, gateway = services
    coder_url = f"http://{gateway}:{coder.port}"
    # the repository tries to take serve's port from the VM's network before serve starts (issue 19, High 1)
    squat = ("perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => \"127.0.0.1\", LocalPort => 748, "
             "Listen => 1); print $s ? \"bound\" : \"refused: $!\"' > /tmp/squat")  # fmt: skip
    Remote(sandbox, "widgets").commit({
        ".devcontainer/devcontainer.json": json.dumps({"image": images.FALLBACK_IMAGE, "remoteUser": "coder",
                                                       "postCreateCommand": "echo created > /tmp/created",
                                                       "postStartCommand": squat}),
        "README.md": "widgets\n",
    })  # fmt: skip
    sources = vm_sources(sandbox / "rehearsal")
    rendered = render(work, {
        "agent_token": coder.token, "agent_init_script": init_script(coder_url), "agent_url": coder_url,
        "repository": git.url("widgets"), "builder_package": sources["wheel"], "devcontainer_cli_url": sources["cli"],
        "fallback_image": f"docker.io/{images.FALLBACK_IMAGE}", "secret_env": {"GH_TOKEN": git.token}, "user": USER,
        "builder_agent_token": "builder-token", "builder_agent_init_script": "#!/bin/sh\nsleep 3600\n",
    })  # fmt: skip

    (first_boot,) = write_files(vm, rendered["user_data"])
    booted = in_vm(vm, "sh", "-c", first_boot, env={"PIP_CERT": "/rehearsal/ca.crt"})
    assert booted.returncode == 0, booted.stdout[-3000:] + booted.stderr[-3000:]
    assert "systemd is not running here: the unit is written" in booted.stdout
    assert in_vm(vm, "stat", "-c", "%U %a", "/etc/devcontainer-builder/workspace.env").stdout.strip() == "root 600"
    unit = unit_fields(in_vm(vm, "cat", UNIT).stdout)
    assert unit["User"] == [USER] and unit["ExecStart"] == ["/opt/devcontainer-builder/bin/devcontainer-builder serve"]

    # these machines' cgroups are hybrid (v1 beside a v2 mount), which Podman 5's crun refuses: the VM
    # stand-in runs containers with runc (a VM with cgroups v2 needs nothing)
    runc = in_vm(vm, "sh", "-c", "apt-get install -y -qq --no-install-recommends runc >/dev/null && install -o coder "
                 "-g coder -m 0644 /dev/stdin /home/coder/.config/containers/containers.conf",
                 stdin='[engine]\nruntime = "runc"\n')  # fmt: skip
    assert runc.returncode == 0, runc.stderr
    # the images a registry would serve, into the user's own (rootless) store, under a registry's names
    loaded = as_the_service(vm, unit, "podman load -q -i /rehearsal/images.tar")
    assert loaded.returncode == 0, loaded.stderr
    for name in (images.BASE_IMAGE, images.FALLBACK_IMAGE):
        assert as_the_service(vm, unit, f"podman tag localhost/{name} docker.io/{name}").returncode == 0

    (pre,) = unit["ExecStartPre"]
    up = as_the_service(vm, unit, pre)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    state = json.loads(in_vm(vm, "cat", f"/home/{USER}/.local/state/devcontainer-builder/widgets/state.json").stdout)
    assert (state["status"], state["engine"], state["fallback"]) == ("running", "podman", False)
    wait_for(lambda: len(coder.connections) == 1, 120, "the agent connecting from the devcontainer")
    ps = as_the_service(vm, unit, "podman ps --format {{.ID}}")
    assert state["container_id"][:12] in ps.stdout, "the devcontainer runs in the user's rootless Podman"
    # the agent runs inside it (on the VM's network it has the VM's hostname, so ask the container)
    inside = as_the_service(vm, unit, f"podman exec {state['container_id']} sh -c 'cat /proc/[0-9]*/cmdline'")
    assert "coder\0agent" in inside.stdout.replace("./coder", "coder")

    # the devcontainer shares the VM's network, and neither its user nor its root could take serve's port
    cid = state["container_id"]
    assert as_the_service(vm, unit, f"podman exec {cid} cat /tmp/squat").stdout == "refused: Permission denied"
    as_root = as_the_service(vm, unit, f"podman exec -u root {cid} sh -c {shlex.quote(squat + '; cat /tmp/squat')}")
    assert as_root.stdout == "refused: Permission denied", as_root.stdout + as_root.stderr
    (start,) = unit["ExecStart"]
    assert as_the_service(vm, unit, start, detach=True).returncode == 0
    wait_for(lambda: in_vm(vm, "curl", "-fsS", "http://127.0.0.1:748/healthz").stdout == '{"ok":true}', 60,
             "serve answering")  # fmt: skip
    # the status app's URL is the page, whose key lets it rebuild; the same request without the key cannot
    post = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json",
            "-d", "{}"]  # fmt: skip
    assert in_vm(vm, *post, "http://127.0.0.1:748/api/rebuild").stdout == "403"
    assert in_vm(vm, *post, f"{rendered['status_url']}api/rebuild").stdout == "202"

    again = in_vm(vm, "sh", "-c", first_boot, env={"PIP_CERT": "/rehearsal/ca.crt"})
    assert again.returncode == 0, again.stderr
    assert "installing the devcontainer CLI" not in again.stdout and "creating user" not in again.stdout
    assert git.token not in in_vm(vm, "cat", UNIT).stdout
