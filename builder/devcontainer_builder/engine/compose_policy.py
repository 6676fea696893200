"""The admin's policy over Docker Compose: what a compose project may ask the engine for.

The devcontainer CLI runs compose as `<docker-path> compose ...`, so docker-guard sends every compose
call here (policy.py hands it over). Compose talks to the engine itself - no `docker run` passes the
guard - so what is checked is the project as compose would run it: before each `up`, `create` and
`build`, compose renders the merged, interpolated model of every file it was given (the repository's
and the CLI's own override files, features' privileges included) with `compose config`; each service
is checked as policy.py checks a `docker run` (privileged, capabilities, security options, host
namespaces, devices, bind mounts outside the workspace, host files), each build as a `docker build`,
and the project's volumes, networks, secrets and configs likewise. Then compose runs from that very
rendered file - written to the builder's state dir - never from the repository's files again, so a file
swapped after the check changes nothing. The rewrite also gives every container of the project the
workspace's labels, and takes the builder's own labels away from services that claim them.

Compose reads the repository's files once: the builder checks what they read (compose_files.py) and at
once renders them into a snapshot in the state dir; in every compose call the repository's files are
replaced by that snapshot (and any other file, `--env-file` or `--project-directory` is refused), so a
compose file changed in the workspace during the build - by a hook of the running devcontainer, say -
is never read. The project is the workspace's: every call but `version`, `config` and `ls` must name
it (-p), so a repository's `.env` or `name:` cannot point compose at another workspace's project. Compose commands
the devcontainer CLI does not use and that reach outside (`run`, `exec`, `cp`, `watch`, ...) are
refused.

Runs inside the guard (python -I -S), so it imports only the standard library, and policy.py's helpers
through `rules`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

try:
    from devcontainer_builder.engine import policy as rules
except ImportError:  # in the guard: the package is not importable under -I -S; policy.py is beside this file
    import policy as rules  # type: ignore[import-not-found,no-redef]

CONFIG_TIMEOUT = 60.0
GLOBAL_VALUES = {"-f", "--file", "-p", "--project-name", "--project-directory", "--env-file", "--profile",
                 "--parallel", "--ansi", "--progress"}  # fmt: skip
GLOBAL_SWITCHES = {"--compatibility", "--dry-run", "--all-resources", "--verbose"}
KEPT_GLOBALS = {"--profile", "--parallel", "--ansi", "--progress", "--compatibility", "--dry-run", "--all-resources"}
# what each command may be given (options with a value, switches); everything else is refused
COMMANDS: dict[str, tuple[set[str], set[str]]] = {
    "up": ({"--pull", "-t", "--timeout", "--wait-timeout", "--scale", "--exit-code-from", "--attach",
            "--no-attach"},
           {"-d", "--detach", "--no-recreate", "--force-recreate", "--remove-orphans", "--no-build", "--build",
            "--no-deps", "--quiet-pull", "--wait", "--always-recreate-deps", "-V", "--renew-anon-volumes",
            "--no-start", "--no-color", "--no-log-prefix", "-y", "--abort-on-container-exit",
            "--abort-on-container-failure", "--timestamps", "--menu"}),
    "create": ({"--pull", "--scale"},
               {"--build", "--no-build", "--force-recreate", "--no-recreate", "--remove-orphans", "--quiet-pull",
                "-y"}),
    "build": ({"--build-arg", "-m", "--memory"},
              {"--no-cache", "--pull", "-q", "--quiet", "--with-dependencies"}),
}  # fmt: skip
CREATING = set(COMMANDS)
# acting on the project's existing containers only
PROJECT_COMMANDS = {"ps", "start", "stop", "restart", "down", "rm", "logs", "kill", "pause", "unpause", "top", "port",
                    "images", "events", "wait", "pull"}  # fmt: skip

SERVICE_KEYS = {
    "annotations", "attach", "blkio_config", "build", "cap_add", "cap_drop", "cgroup", "cgroup_parent", "command",
    "configs", "container_name", "cpu_count", "cpu_percent", "cpu_period", "cpu_quota", "cpu_rt_period",
    "cpu_rt_runtime", "cpu_shares", "cpus", "cpuset", "depends_on", "deploy", "develop", "device_cgroup_rules",
    "devices", "dns", "dns_opt", "dns_search", "domainname", "entrypoint", "env_file", "environment", "expose",
    "external_links", "extra_hosts", "gpus", "group_add", "healthcheck", "hostname", "image", "init", "ipc",
    "isolation", "labels", "links", "logging", "mac_address", "mem_limit", "mem_reservation", "mem_swappiness",
    "memswap_limit", "network_mode", "networks", "oom_kill_disable", "oom_score_adj", "pid", "pids_limit",
    "platform", "ports", "privileged", "profiles", "pull_policy", "read_only", "restart", "runtime", "scale",
    "secrets", "security_opt", "shm_size", "stdin_open", "stop_grace_period", "stop_signal", "storage_opt",
    "sysctls", "tmpfs", "tty", "ulimits", "user", "userns_mode", "uts", "volumes", "volumes_from", "working_dir",
}  # fmt: skip
BUILD_KEYS = {
    "context", "dockerfile", "dockerfile_inline", "args", "ssh", "cache_from", "cache_to", "additional_contexts",
    "entitlements", "extra_hosts", "isolation", "privileged", "labels", "no_cache", "pull", "network", "shm_size",
    "target", "secrets", "ulimits", "platforms",
}  # fmt: skip
NAMESPACE_KEYS = ("network_mode", "pid", "ipc", "uts", "userns_mode", "cgroup")
# labels the builder uses to know containers; the CLI sets the devcontainer's own in its override file
OWN_LABELS = ("devcontainer-builder.", "devcontainer.")
ID_LABELS = ("devcontainer-builder.workspace", "devcontainer-builder.role", "devcontainer-builder.config")


def parse_globals(args: Sequence[str]) -> tuple[list[tuple[str, str]], str, list[str]] | None:
    """(global options, command, the command's arguments); None when an unknown global option comes first."""
    options: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-"):
            return options, arg, list(args[i + 1 :])
        name, eq, value = arg.partition("=")
        if name in GLOBAL_SWITCHES:
            options.append((name, value if eq else "true"))
        elif name in GLOBAL_VALUES:
            if not eq:
                i += 1
                value = args[i] if i < len(args) else ""
            options.append((name, value))
        elif len(arg) > 2 and arg[:2] in ("-f", "-p") and not arg.startswith("--"):
            options.append((arg[:2], arg[2:]))
        else:
            return None
        i += 1
    return options, "", []


def project_of(options: list[tuple[str, str]]) -> str:
    return next((value for name, value in reversed(options) if name in ("-p", "--project-name")), "")


def _mode(refusals: Any, option: str, value: str) -> None:
    if value.strip().lower().startswith("service:"):
        return  # another service of the same project: the usual `network_mode: service:db`
    rules._namespace(refusals, option, value)


def _host_file(refusals: Any, option: str, path: object, what: str, *, mountable: bool = False) -> None:
    if isinstance(path, str) and path:
        refusals.host_path(option, path, what, mountable=mountable)


def check_service(refusals: Any, name: str, service: dict[str, Any], model: dict[str, Any]) -> None:
    policy = refusals.policy

    def at(key: str) -> str:
        return f"services.{name}.{key}"

    for key in service:
        if key not in SERVICE_KEYS and not key.startswith("x-"):
            refusals.add(at(key), "", f"the compose setting {key} is not one the builder knows how to check", "")
    if service.get("privileged"):
        refusals.need("privileged", at("privileged"), "true", "privileged: true (access to the host)")
    for cap in service.get("cap_add") or []:
        rules._capability(refusals, at("cap_add"), str(cap))
    for option in service.get("security_opt") or []:
        rules._security_opt(refusals, at("security_opt"), str(option))
    for key in NAMESPACE_KEYS:
        if isinstance(service.get(key), str):
            _mode(refusals, at(key), service[key])
    for key in ("devices", "device_cgroup_rules", "gpus"):
        if service.get(key):
            refusals.need("devices", at(key), json.dumps(service[key])[:200], f"access to host devices ({key})")
    reservations = ((service.get("deploy") or {}).get("resources") or {}).get("reservations") or {}
    if reservations.get("devices"):
        refusals.need("devices", at("deploy.resources.reservations.devices"), "", "access to host devices (deploy)")
    for volume in service.get("volumes") or []:
        _volume(refusals, at("volumes"), volume, model)
    if service.get("volumes_from") and "*" not in policy.mounts:
        refusals.add(at("volumes_from"), ",".join(map(str, service["volumes_from"])),
                     "volumes_from mounts what the builder cannot check", "DEVCONTAINER_ALLOWED_MOUNTS=*")  # fmt: skip
    for entry in service.get("env_file") or []:
        _host_file(refusals, at("env_file"), entry.get("path") if isinstance(entry, dict) else entry, "the env file")
    for key in ("cgroup_parent", "runtime"):
        if service.get(key):
            refusals.need("privileged", at(key), str(service[key]), f"{key} (reaches outside the container)")
    if service.get("external_links"):
        refusals.need("privileged", at("external_links"), "", "external_links (another container's environment)")
    if service.get("isolation") not in (None, "", "default"):
        refusals.need("privileged", at("isolation"), str(service["isolation"]), "a container isolation technology")
    logging = service.get("logging") or {}
    options = logging.get("options") or {}
    if any(str(key).lower() == "path" for key in options):
        refusals.add(at("logging.options"), "path", "a log file on the host", "")
    rules.log_driver_problem(refusals, at("logging.driver"), str(logging.get("driver") or ""))
    for port in service.get("ports") or []:
        published = str(port.get("published") or "") if isinstance(port, dict) else rules.publish_host_port(str(port))
        rules.published_problem(refusals, at("ports"), published)
    if isinstance(service.get("build"), dict):
        check_build(refusals, name, service["build"])
        image = str(service.get("image") or "")
        if image and image != image_name(policy.project, name) and not image.startswith("vsc-"):
            reason = f"naming a built image {image}, which would replace that image on the engine (the fallback image, "
            refusals.add(at("image"), image, reason + "a base image, another workspace's)", "")


def _volume(refusals: Any, option: str, volume: object, model: dict[str, Any]) -> None:
    if not isinstance(volume, dict):
        refusals.add(option, str(volume), "a volume the builder cannot read", "")
        return
    kind = volume.get("type", "volume")
    source = volume.get("source") or ""
    if kind == "bind":
        refusals.host_path(option, str(source), "a bind mount of", mountable=True)
        _subpath(refusals, option, str(source), "a bind mount of")
    elif kind == "volume":
        declared = (model.get("volumes") or {}).get(source) if source else None
        custom = isinstance(declared, dict) and bool(
            declared.get("driver_opts") or declared.get("driver") not in (None, "local")
        )
        if custom and "*" not in refusals.policy.mounts:
            refusals.add(option, str(source), "a volume with a driver or driver options can mount any host path",
                         "DEVCONTAINER_ALLOWED_MOUNTS=*")  # fmt: skip
    elif kind not in ("tmpfs", "image"):
        refusals.add(option, f"type={kind}", f"a mount of type {kind} is not one the builder can check",
                     "DEVCONTAINER_ALLOWED_MOUNTS=*")  # fmt: skip


SWAPPABLE = (
    "{what} {path}, a file or folder inside the workspace: another service of the project, running before this "
    "one starts, can replace it with a link to the host's `/`, and the engine would mount that. Mount the "
    "workspace folder itself (..:/workspace) and point the service at the file inside it, COPY the file in "
    "a Dockerfile, or use a named volume"
)


def _subpath(refusals: Any, option: str, path: str, what: str) -> None:
    """In a project, any service can rewrite the workspace: a bind source inside it is never safe to mount
    (the workspace folder itself is: a mount point cannot be replaced from inside a container)."""
    if path and refusals.inside_workspace(path) and not refusals.admin_allowed(path):
        refusals.add(option, path, SWAPPABLE.format(what=what, path=path), f"DEVCONTAINER_ALLOWED_MOUNTS={path}")


def whole_workspace(policy: Any, model: dict[str, Any]) -> None:
    """The devcontainer templates' `../..:/workspaces` - the workspace's parent, so that the repository is at
    /workspaces/<name> - becomes the workspace itself at that very place: the container sees its repository
    where it expects it, and nothing else of the engine's host (other workspaces, the builder's state)."""
    workspace = os.path.realpath(policy.workspace)
    parent = os.path.dirname(workspace)
    for service in (model.get("services") or {}).values():
        for volume in service.get("volumes") or []:
            bind = isinstance(volume, dict) and volume.get("type") == "bind" and bool(volume.get("target"))
            if bind and os.path.realpath(str(volume.get("source") or "/")) == parent:
                volume["source"] = workspace
                volume["target"] = str(volume["target"]).rstrip("/") + "/" + os.path.basename(workspace)


def image_name(project: str, service: str) -> str:
    """The name compose gives a service's built image; the builder gives every built image this name."""
    return f"{project}-{service}"


def check_build(refusals: Any, name: str, build: dict[str, Any]) -> None:
    policy = refusals.policy

    def at(key: str) -> str:
        return f"services.{name}.build.{key}"

    for key in build:
        if key not in BUILD_KEYS and not key.startswith("x-"):
            refusals.add(at(key), "", f"the compose build setting {key} is not one the builder knows how to check", "")
    context = str(build.get("context") or "")
    if "://" in context or context.startswith("git@") or not context:
        refusals.add(at("context"), context, "a build context that is not a folder", "")
    else:
        refusals.host_path(at("context"), context, "the build context")
        dockerfile = build.get("dockerfile")
        if isinstance(dockerfile, str) and dockerfile:
            refusals.host_path(at("dockerfile"), os.path.join(context, dockerfile), "the Dockerfile")
    contexts = build.get("additional_contexts") or {}
    items = contexts.items() if isinstance(contexts, dict) else (str(item).partition("=")[::2] for item in contexts)
    for _, value in items:
        where = str(value)
        if where.startswith("oci-layout://"):
            refusals.host_path(at("additional_contexts"), where.removeprefix("oci-layout://"), "the build context")
        elif "://" not in where and not where.startswith(("docker-image:", "target:")):
            refusals.host_path(at("additional_contexts"), where, "the build context")
    if build.get("ssh"):
        refusals.need("privileged", at("ssh"), "", "ssh (the builder's SSH agent or keys, in the build)")
    if isinstance(build.get("network"), str):
        _mode(refusals, at("network"), build["network"])
    if build.get("privileged"):
        refusals.need("privileged", at("privileged"), "true", "a privileged build")
    if build.get("entitlements"):
        refusals.need("security-opt", at("entitlements"), ",".join(map(str, build["entitlements"])),
                      "build entitlements")  # fmt: skip
    for ref in build.get("cache_from") or []:
        fields = rules._csv(str(ref))
        if fields.get("type") == "local":
            refusals.host_path(at("cache_from"), fields.get("src", ""), "the local cache")
    for ref in build.get("cache_to") or []:
        if str(ref) != policy.cache_to and "type=inline" not in str(ref).replace(" ", ""):
            refusals.add(at("cache_to"), str(ref), "a cache destination other than DEVCONTAINER_CACHE_TO",
                         "DEVCONTAINER_CACHE_TO")  # fmt: skip


def own(policy: Any, name: str) -> bool:
    """A volume or network name of the workspace's own project (compose names them PROJECT_KEY)."""
    return bool(policy.project) and name.startswith(f"{policy.project}_")


def check_top_level(refusals: Any, model: dict[str, Any]) -> None:
    policy = refusals.policy
    for name, declared in (model.get("networks") or {}).items():
        network = declared or {}
        option = f"networks.{name}"
        actual = str(network.get("name") or f"{policy.project}_{name}")
        if actual == "host":
            refusals.need("host-namespaces", option, "host", "the host's network")
        elif not own(policy, actual):
            reason = f"the network {actual}, which is not this workspace's project's (another workspace's?)"
            refusals.need("host-namespaces", option, actual, reason)
        if network.get("driver") not in (None, "", "bridge", "default") or network.get("driver_opts"):
            refusals.need("host-namespaces", option, str(network.get("driver") or "driver_opts"),
                          "a network driver or driver options that can reach the host's network")  # fmt: skip
        ipam = network.get("ipam") or {}
        if ipam.get("config") or ipam.get("driver"):
            refusals.need("host-namespaces", f"{option}.ipam", json.dumps(ipam)[:200],
                          "chosen subnets, which can take over the host's routes to its own networks")  # fmt: skip
    for name, declared in (model.get("volumes") or {}).items():
        actual = str((declared or {}).get("name") or f"{policy.project}_{name}")
        if not own(policy, actual) and "*" not in policy.mounts:
            refusals.add(f"volumes.{name}", actual,
                         f"the volume {actual}, which is not this workspace's project's (another workspace's data?)",
                         "DEVCONTAINER_ALLOWED_MOUNTS=*")  # fmt: skip
    for kind in ("secrets", "configs"):
        for name, entry in (model.get(kind) or {}).items():
            item = entry or {}
            option = f"{kind}.{name}"
            if item.get("file"):
                refusals.host_path(option, str(item["file"]), f"the {kind[:-1]} file")
                _subpath(refusals, option, str(item["file"]), f"the {kind[:-1]} file")
            elif item.get("environment"):
                refusals.add(option, str(item["environment"]), f"a {kind[:-1]} read from the builder's environment", "")
            elif item.get("external"):
                refusals.add(option, "external", f"an external {kind[:-1]}", "")


def check_model(policy: Any, model: dict[str, Any]) -> list[dict[str, str]]:
    refusals = rules.Refusals(policy)
    for key in model:
        if key not in ("name", "services", "networks", "volumes", "secrets", "configs") and not key.startswith("x-"):
            refusals.add(key, "", f"the compose setting {key} is not one the builder knows how to check", "")
    for name, service in (model.get("services") or {}).items():
        check_service(refusals, str(name), service or {}, model)
    check_top_level(refusals, model)
    return refusals.found


def swappable_binds(policy: Any, service: dict[str, Any]) -> bool:
    """The service bind-mounts something other than the workspace folder itself: a file or folder inside it,
    which a container (the devcontainer, with the workspace mounted) can replace with a link to `/`. The
    engine follows that link at the next start - so no start may happen that the builder does not check
    first (bringup.check_mounts)."""
    workspace = os.path.realpath(policy.workspace)
    return any(
        isinstance(volume, dict)
        and volume.get("type") == "bind"
        and os.path.realpath(str(volume.get("source") or "")) != workspace
        for volume in service.get("volumes") or []
    )


def no_restarts(policy: Any, model: dict[str, Any]) -> None:
    """The engine does not restart a service with such a bind mount by itself (`restart:`, a restart of
    the engine): keep-alive does, after checking where its mounts lead."""
    for service in (model.get("services") or {}).values():
        if swappable_binds(policy, service):
            service["restart"] = "no"
            ((service.get("deploy") or {}).get("restart_policy") or {}).clear()


def label(policy: Any, model: dict[str, Any]) -> None:
    """Every container of the project carries the workspace's labels; only the devcontainer's service
    keeps the identity the CLI gave it, and no other service can claim the builder's labels."""
    ours = dict(item.partition("=")[::2] for item in policy.labels)
    for name, service in (model.get("services") or {}).items():
        labels = service.get("labels") or {}
        if name == policy.service:
            kept = {k: v for k, v in labels.items() if not k.startswith(OWN_LABELS[0]) or k in ID_LABELS}
        else:
            kept = {key: value for key, value in labels.items() if not key.startswith(OWN_LABELS)}
            kept.update(ours)
        service["labels"] = kept


def render(policy: Any, options: list[tuple[str, str]], env: dict[str, str]) -> dict[str, Any]:
    """The project as compose would run it: the merged, interpolated model of the given files."""
    argv = [policy.docker, "compose", *_argv(options), "config", "--format", "json"]
    try:
        result = subprocess.run(argv, capture_output=True, timeout=CONFIG_TIMEOUT, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        sys.stderr.write(f"devcontainer-builder: could not read the compose project ({err})\n")
        sys.exit(rules.REFUSED_EXIT)
    if result.returncode != 0:
        sys.stderr.buffer.write(result.stderr)
        sys.exit(result.returncode)
    try:
        model = json.loads(result.stdout)
    except ValueError:
        model = None
    if not isinstance(model, dict):
        sys.stderr.write("devcontainer-builder: compose config printed no project\n")
        sys.exit(rules.REFUSED_EXIT)
    return model


def write_checked(policy: Any, model: dict[str, Any]) -> str:
    """The checked project, where only the builder writes; named by its content."""
    text = json.dumps(model, indent=1, sort_keys=True)
    folder = policy.compose_dir
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, f"{policy.project}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json")
    temporary = f"{path}.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)
    _prune(folder, policy.project, keep=path)
    return path


def _prune(folder: str, project: str, *, keep: str, count: int = 8) -> None:
    """The newest few checked files of the project stay (each `up` with features writes a new one)."""
    mine = [
        entry
        for entry in os.scandir(folder)
        if entry.name.startswith(f"{project}-") and "-source-" not in entry.name and entry.path != keep
    ]
    mine.sort(key=lambda entry: entry.stat(follow_symlinks=False).st_mtime, reverse=True)
    for entry in mine[count:]:
        with contextlib.suppress(OSError):
            os.unlink(entry.path)


def substitute(policy: Any, command: str, options: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The global options with the repository's compose files replaced by the builder's snapshot of them
    (compose/snapshot: read once, right after they were checked), the CLI's own override files kept.
    Any other file, an env file or another project directory is refused: compose would read it unchecked."""
    kept: list[tuple[str, str]] = []
    placed = False
    for name, value in options:
        if name in ("-f", "--file"):
            real = os.path.realpath(value)
            if real in policy.sources:
                if not placed:
                    kept.append(("-f", policy.snapshot))
                    placed = True
                continue
            if not any(real.startswith(os.path.realpath(folder).rstrip("/") + "/") for folder in policy.build_dirs):
                refusal = _item(name, value, "a compose file the builder did not check")
                rules._refuse(policy, f"compose {command}", [refusal])
        elif name in ("--env-file", "--project-directory"):
            refusal = _item(name, value, f"{name}, which compose would read unchecked")
            rules._refuse(policy, f"compose {command}", [refusal])
        kept.append((name, value))
    return kept


def _argv(options: list[tuple[str, str]]) -> list[str]:
    argv: list[str] = []
    for name, value in options:
        argv += [name] if name in GLOBAL_SWITCHES else [name, value]
    return argv


def guarded(policy: Any, args: list[str]) -> list[str]:
    """The compose argument list to execute (after `compose`), or a refusal (exits)."""
    parsed = parse_globals(args[1:])
    if parsed is None:
        rules._refuse(policy, "compose", [_item("compose", " ".join(args[1:3]), "an unknown compose option")])
        raise SystemExit(rules.REFUSED_EXIT)  # not reached: _refuse exits
    options, command, rest = parsed
    if command in ("version", "ls") or not command:
        return args
    if not policy.snapshot:
        rules._refuse(policy, f"compose {command}", [_item(command, "", "compose, for a config that does not use it")])
    if command == "config":
        if any(arg in ("-o", "--output") or arg.startswith("--output=") for arg in rest):
            rules._refuse(policy, "compose config", [_item("--output", "", "compose config writing a file")])
        return ["compose", *_argv(substitute(policy, command, options)), "config", *rest]
    if command not in CREATING and command not in PROJECT_COMMANDS:
        rules._refuse(policy, f"compose {command}", [_item(command, "", f"compose {command}, which the builder does "
                                                                         "not use and cannot check")])  # fmt: skip
    project = project_of(options)
    if not policy.project or project != policy.project:
        rules._refuse(policy, f"compose {command}", [_item("-p", project or "(none)",
                      f"a compose project other than the workspace's ({policy.project or 'none'})")])  # fmt: skip
    if command not in CREATING:
        return args
    values, switches = COMMANDS[command]
    found, _ = rules.parse(rest, values, switches, interspersed=True)
    unknown = [name for name, value in found if value is None]
    if unknown:
        reason = f"an option of compose {command} the builder does not know how to check"
        rules._refuse(policy, f"compose {command}", [_item(name, "", reason) for name in unknown])
    env = dict(os.environ)
    env.pop(rules.POLICY_VAR, None)
    options = substitute(policy, command, options)
    model = render(policy, options, env)
    whole_workspace(policy, model)
    refused = check_model(policy, model)
    if refused:
        rules._refuse(policy, f"compose {command}", refused)
    label(policy, model)
    no_restarts(policy, model)
    checked = write_checked(policy, model)
    kept: list[str] = []
    for name, value in options:
        if name in KEPT_GLOBALS:
            kept += [name] if name in GLOBAL_SWITCHES else [name, value]
    return ["compose", "--project-name", policy.project, "-f", checked, *kept, command, *rest]


def _item(option: str, value: str, reason: str) -> dict[str, str]:
    return {"option": option, "value": value, "reason": reason, "setting": ""}
