"""The admin's policy over a Docker Compose project: what the project compose would run may ask the engine for.

compose_guard.py renders the project - the repository's files (the builder's snapshot of them) merged with
the devcontainer CLI's own override files, features' privileges included - and hands the model here.
Each service is checked as rules.py checks a `docker run` (privileged, capabilities, security options,
host namespaces, devices, bind mounts outside the workspace - and inside it, where another service could
swap them for a link to `/` -, host files, logging drivers, the supervisor's port), each build as a
`docker build`, and the project's volumes, networks, secrets and configs likewise (no other project's,
no chosen subnets, no host files). A key the builder does not know is refused rather than guessed at.

Runs inside the guard (python -I -S), so it imports only the standard library, and rules.py's helpers
through `rules`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

try:
    from devcontainer_builder.policy import rules
except ImportError:  # in the guard: the package is not importable under -I -S; rules.py is beside this file
    import rules  # type: ignore[import-not-found,no-redef]

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


def _mode(refusals: Any, option: str, value: str) -> None:
    if value.strip().lower().startswith("service:"):
        return  # another service of the same project: the usual `network_mode: service:db`
    rules.namespace_problem(refusals, option, value)


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
    _host_access(refusals, at, service)
    _mounts(refusals, at, service, model)
    _reaching_out(refusals, at, service)
    if isinstance(service.get("build"), dict):
        check_build(refusals, name, service["build"])
        image = str(service.get("image") or "")
        if image and image != image_name(policy.project, name) and not image.startswith("vsc-"):
            reason = f"naming a built image {image}, which would replace that image on the engine (the fallback image, "
            refusals.add(at("image"), image, reason + "a base image, another workspace's)", "")


def _host_access(refusals: Any, at: Callable[[str], str], service: dict[str, Any]) -> None:
    """Privileges, capabilities, security options, host namespaces, devices."""
    if service.get("privileged"):
        refusals.need("privileged", at("privileged"), "true", "privileged: true (access to the host)")
    for cap in service.get("cap_add") or []:
        rules.capability_problem(refusals, at("cap_add"), str(cap))
    for option in service.get("security_opt") or []:
        rules.security_opt_problem(refusals, at("security_opt"), str(option))
    for key in NAMESPACE_KEYS:
        if isinstance(service.get(key), str):
            _mode(refusals, at(key), service[key])
    for key in ("devices", "device_cgroup_rules", "gpus"):
        if service.get(key):
            refusals.need("devices", at(key), json.dumps(service[key])[:200], f"access to host devices ({key})")
    reservations = ((service.get("deploy") or {}).get("resources") or {}).get("reservations") or {}
    if reservations.get("devices"):
        refusals.need("devices", at("deploy.resources.reservations.devices"), "", "access to host devices (deploy)")


def _mounts(refusals: Any, at: Callable[[str], str], service: dict[str, Any], model: dict[str, Any]) -> None:
    """Volumes, another container's volumes, env files: host paths and volumes the service would read."""
    for volume in service.get("volumes") or []:
        _volume(refusals, at("volumes"), volume, model)
    if service.get("volumes_from") and "*" not in refusals.policy.mounts:
        refusals.add(at("volumes_from"), ",".join(map(str, service["volumes_from"])),
                     "volumes_from mounts what the builder cannot check", "DEVCONTAINER_ALLOWED_MOUNTS=*")  # fmt: skip
    for entry in service.get("env_file") or []:
        _host_file(refusals, at("env_file"), entry.get("path") if isinstance(entry, dict) else entry, "the env file")


def _reaching_out(refusals: Any, at: Callable[[str], str], service: dict[str, Any]) -> None:
    """The runtime, cgroups, other containers, host log files and the host ports the service would reach."""
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
        fields = rules.csv_fields(refusals, at("cache_from"), str(ref))
        if fields.get("type") == "local":
            refusals.host_path(at("cache_from"), fields.get("source", ""), "the local cache")
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
        rules.volume_problem(refusals, f"volumes.{name}", actual)
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
