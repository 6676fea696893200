"""The admin's policy over what a repository's devcontainer may ask the engine for.

The devcontainer CLI turns a config - plus its features and its image's metadata, which the builder
cannot see in advance - into `docker run` and `docker build` command lines. The builder gives the CLI
`--docker-path` pointing at docker-guard (a shell script beside this file), which sends `run`,
`create` and `build` here (and `compose`, on to compose_guard.py) and everything else straight to the
engine. This module reads the final argument list, refuses what the policy does not allow - bind mounts
of host paths outside the workspace, --privileged, added capabilities, security options, host
namespaces, devices, host files read or written, build entitlements - and otherwise executes the real
engine CLI with the same arguments. A refusal writes one JSON line to the report file (the builder turns
it into a clear error and the fallback) and exits 125, docker's own code for a refused request.

It runs as `python -I -S rules.py ...` for each such call (a build runs it two or three times), so it
imports nothing but os and sys - no dataclasses, no json, each worth a dozen milliseconds - and reads its
policy from one environment variable (POLICY_VAR: one `name=value` line per field, lists separated by
FIELD_SEPARATOR).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence

POLICY_VAR = "DEVCONTAINER_BUILDER_POLICY"
REFUSED_EXIT = 125

# docker run / create (and podman run / create): options that take a value; every other known option is
# a switch. An option in neither set is refused: the builder cannot tell what it would do.
RUN_VALUES = {
    "--add-host", "-a", "--attach", "--blkio-weight", "--blkio-weight-device", "--cap-add", "--cap-drop",
    "--cgroup-parent", "--cgroupns", "--cidfile", "--cpu-count", "--cpu-percent", "--cpu-period", "--cpu-quota",
    "--cpu-rt-period", "--cpu-rt-runtime", "-c", "--cpu-shares", "--cpus", "--cpuset-cpus", "--cpuset-mems",
    "--detach-keys", "--device", "--device-cgroup-rule", "--device-read-bps", "--device-read-iops",
    "--device-write-bps", "--device-write-iops", "--dns", "--dns-opt", "--dns-option", "--dns-search",
    "--domainname", "--entrypoint", "-e", "--env", "--env-file", "--expose", "--gpus", "--group-add",
    "--health-cmd", "--health-interval", "--health-retries", "--health-start-period", "--health-start-interval",
    "--health-timeout", "-h", "--hostname", "--ip", "--ip6", "--ipc", "--isolation", "--kernel-memory", "-l",
    "--label", "--label-file", "--link", "--link-local-ip", "--log-driver", "--log-opt", "--mac-address", "-m",
    "--memory", "--memory-reservation", "--memory-swap", "--memory-swappiness", "--mount", "--name", "--network",
    "--net", "--network-alias", "--net-alias", "--oom-score-adj", "--pid", "--pids-limit", "--platform", "-p",
    "--publish", "--pull", "--restart", "--runtime", "--security-opt", "--shm-size", "--stop-signal",
    "--stop-timeout", "--storage-opt", "--sysctl", "--tmpfs", "--ulimit", "-u", "--user", "--userns", "--uts",
    "-v", "--volume", "--volume-driver", "--volumes-from", "-w", "--workdir",
    # podman
    "--annotation", "--arch", "--authfile", "--cgroup-conf", "--cgroups", "--chrootdirs", "--conmon-pidfile",
    "--decryption-key", "--env-merge", "--gidmap", "--group-entry", "--hooks-dir", "--image-volume",
    "--init-path", "--log-level", "--os", "--passwd-entry", "--personality", "--pidfile", "--pod",
    "--pod-id-file", "--preserve-fd", "--preserve-fds", "--requires", "--retry", "--retry-delay",
    "--sdnotify", "--seccomp-policy", "--secret", "--shm-size-systemd", "--subgidname", "--subuidname",
    "--systemd", "--timeout", "--tz", "--uidmap", "--umask", "--unsetenv", "--variant",
}  # fmt: skip
RUN_SWITCHES = {
    "-d", "--detach", "--disable-content-trust", "--help", "--init", "-i", "--interactive", "--no-healthcheck",
    "--oom-kill-disable", "--privileged", "-P", "--publish-all", "-q", "--quiet", "--read-only", "--rm",
    "--sig-proxy", "-t", "--tty", "--use-api-socket",
    # podman
    "--env-host", "--http-proxy", "--no-hosts", "--read-only-tmpfs", "--replace", "--rmi", "--tls-verify",
    "--unsetenv-all",
}  # fmt: skip
BUILD_VALUES = {
    "--add-host", "--allow", "--annotation", "--attest", "--build-arg", "--build-context", "--builder",
    "--cache-from", "--cache-to", "--call", "--cgroup-parent", "--cpu-period", "--cpu-quota", "-c", "--cpu-shares",
    "--cpuset-cpus", "--cpuset-mems", "-f", "--file", "--iidfile", "--isolation", "--label", "-m", "--memory",
    "--memory-swap", "--metadata-file", "--network", "--no-cache-filter", "-o", "--output", "--platform",
    "--progress", "--provenance", "--sbom", "--secret", "--security-opt", "--shm-size", "--ssh", "-t", "--tag",
    "--target", "--ulimit",
    # podman / buildah
    "--arch", "--authfile", "--cap-add", "--cap-drop", "--cert-dir", "--cgroupns", "--creds", "--device",
    "--format", "--ipc", "--jobs", "--layer-label", "--os", "--pid", "--runtime", "--userns", "--uts",
    "--variant", "-v", "--volume",
}  # fmt: skip
BUILD_SWITCHES = {
    "--check", "--compress", "--disable-content-trust", "--force-rm", "--help", "--load", "--no-cache", "--pull",
    "--push", "-q", "--quiet", "--rm", "--squash",
    # podman / buildah
    "--layers", "--squash-all", "--tls-verify", "--omit-history", "--identity-label",
}  # fmt: skip
# run options that reach outside the container: the engine's runtime, cgroups, host files, fds, secrets
REACH_OUT = {
    "--link",  # another container's environment (its secrets) as variables in this one
    "--cgroup-parent", "--runtime", "--hooks-dir", "--init-path", "--preserve-fd", "--preserve-fds", "--secret",
    "--authfile", "--decryption-key", "--seccomp-policy",
    "--pod-id-file", "--cgroup-conf", "--requires",  # a host file, cgroup settings, other containers started first
}  # fmt: skip
HOST_MODES = ("host",)


FIELD_SEPARATOR = "\x1f"
LISTS = ("mounts", "capabilities", "privileges", "build_dirs", "labels", "sources", "reserved_ports")
BOOLS = ("force_rm", "rootful")


class Policy:
    """What the admin allows, for one workspace."""

    __slots__ = ("build_dirs", "cache_to", "capabilities", "compose_dir", "docker", "engine", "force_rm", "labels",
                 "mounts", "network", "owner", "privileges", "project", "report", "reserved_ports", "rootful",
                 "service", "snapshot", "sources", "workspace")  # fmt: skip

    def __init__(
        self,
        *,
        workspace: str,  # bind mounts and host files must be inside it (its real path)
        mounts: tuple[str, ...] = (),  # more host paths bind mounts may come from; ("*",) for any
        capabilities: tuple[str, ...] = (),  # ("ALL",) for any
        privileges: tuple[str, ...] = (),  # privileged, security-opt, host-namespaces, devices
        build_dirs: tuple[str, ...] = (),  # where the CLI writes its own build contexts (features)
        cache_to: str = "",  # the one --cache-to the builder itself passes
        engine: str = "docker",  # docker or podman: podman's CLI adds options of its own
        docker: str = "docker",  # the real engine CLI
        report: str = "",  # refusals are appended here, one JSON line each
        force_rm: bool = False,  # the legacy builder: remove intermediate containers of a failed build
        project: str = "",  # the workspace's compose project: the only one compose may act on
        service: str = "",  # the compose service that is the devcontainer
        labels: tuple[str, ...] = (),  # key=value labels every other container of the project gets
        compose_dir: str = "",  # where checked compose projects are written (compose_guard.py)
        sources: tuple[str, ...] = (),  # the repository's compose files (real paths) ...
        snapshot: str = "",  # ... read once by the builder, right after checking them: compose reads this
        reserved_ports: tuple[str, ...] = (),  # host ports no container may publish (the supervisor's)
        network: str = "",  # the admin's DEVCONTAINER_NETWORK: the one network mode allowed beyond the default
        rootful: bool = False,  # podman run by root: its CLI's --userns=keep-id (rootless only) is dropped
        owner: str = "",  # the workspace's project name: the named volumes called after it are its own
    ) -> None:
        self.workspace = workspace
        self.mounts = tuple(mounts)
        self.capabilities = tuple(capabilities)
        self.privileges = tuple(privileges)
        self.build_dirs = tuple(build_dirs)
        self.cache_to = cache_to
        self.engine = engine
        self.docker = docker
        self.report = report
        self.force_rm = force_rm
        self.project = project
        self.service = service
        self.labels = tuple(labels)
        self.compose_dir = compose_dir
        self.sources = tuple(sources)
        self.snapshot = snapshot
        self.reserved_ports = tuple(reserved_ports)
        self.network = network
        self.rootful = rootful
        self.owner = owner

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, name) for name in self.__slots__))

    def to_text(self) -> str:
        lines = []
        for name in self.__slots__:
            value = getattr(self, name)
            if name in LISTS:
                text = FIELD_SEPARATOR.join(value)
            else:
                text = ("1" if value else "") if isinstance(value, bool) else value
            if "\n" in text:
                raise ValueError(f"a policy's {name} cannot hold a newline")
            lines.append(f"{name}={text}")
        return "\n".join(lines)

    @staticmethod
    def from_text(text: str) -> Policy:
        values: dict[str, object] = {}
        for line in text.splitlines():
            name, sep, value = line.partition("=")
            if not sep or name not in Policy.__slots__:
                raise ValueError(f"unknown policy line {line!r}")
            values[name] = tuple(v for v in value.split(FIELD_SEPARATOR) if v) if name in LISTS else value
        for flag in BOOLS:
            values[flag] = values.get(flag) == "1"
        if not values.get("workspace"):
            raise ValueError("the policy names no workspace")
        return Policy(**values)  # type: ignore[arg-type]

    def allows(self, privilege: str) -> bool:
        return privilege in self.privileges


class Refusals:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.found: list[dict[str, str]] = []

    def add(self, option: str, value: str, reason: str, setting: str) -> None:
        self.found.append({"option": option, "value": value, "reason": reason, "setting": setting})

    def need(self, privilege: str, option: str, value: str, what: str) -> None:
        if not self.policy.allows(privilege):
            self.add(option, value, what, f"DEVCONTAINER_ALLOWED_PRIVILEGES={privilege}")

    def inside_workspace(self, path: str) -> bool:
        """path (links followed) is a file or folder inside the workspace, not the workspace itself."""
        workspace = os.path.realpath(self.policy.workspace)
        real = os.path.realpath(path if path.startswith("/") else os.path.join(workspace, path))
        return real.startswith(workspace.rstrip("/") + "/")

    def admin_allowed(self, path: str) -> bool:
        """An admin's DEVCONTAINER_ALLOWED_MOUNTS entry covers path (its real path)."""
        if "*" in self.policy.mounts:
            return True
        real = os.path.realpath(path)
        roots = map(self.root, self.policy.mounts)
        return any(real == root or real.startswith(root.rstrip("/") + "/") for root in roots)

    def root(self, allowed: str) -> str:
        """Where an allowed path really is. One inside the workspace is taken as written - never through a
        link in the workspace, which the repository may have put there (a folder become a link to `/`
        would allow everything)."""
        workspace = os.path.realpath(self.policy.workspace)
        written = os.path.normpath(allowed)
        if written == workspace or written.startswith(workspace.rstrip("/") + "/"):
            return written
        return os.path.realpath(allowed)

    def host_path(self, option: str, path: str, what: str, *, mountable: bool = False) -> None:
        """A host path the engine would read (or mount): inside the workspace, or allowed by the admin."""
        if not path.startswith("/"):
            path = os.path.join(self.policy.workspace, path)
        real = os.path.realpath(path)
        allowed = [self.policy.workspace, *self.policy.build_dirs]
        if mountable:
            if "*" in self.policy.mounts:
                return
            allowed += list(self.policy.mounts)
        for root in map(self.root, allowed):
            if real == root or real.startswith(root.rstrip("/") + "/"):
                return
        via = f" (through a link to {real})" if real != os.path.normpath(path) else ""
        self.add(option, path, f"{what} {path}{via} is outside the workspace", "DEVCONTAINER_ALLOWED_MOUNTS")


def own_volume(policy: Policy, name: str) -> bool:
    """A named volume of this workspace: compose's PROJECT_name, the admin's persisted PROJECT-folder-hash
    (up/additions.py). Any other name is a volume of the engine that may be another workspace's data, or one
    made with bind options (`type=none,o=bind,device=/etc`) that mounts a host folder."""
    owner = policy.owner or policy.project
    if not owner:
        return False
    if name.startswith(f"{owner}_"):
        return True
    if not name.startswith(f"{owner}-"):
        return False
    # only the persisted form, <slug>-<6 hex>: a project name is <folder>-<8 hex>, so a workspace whose folder
    # is named after this one's project (app-b0016171-db) would otherwise hand over its volumes
    # (app-b0016171-db-100471e3_pgdata); a slug with an 8-hex segment is taken for such a project
    segments = name[len(owner) + 1 :].split("-")
    return (
        len(segments) >= 2
        and _hex(segments[-1], 6)
        and "_" not in segments[-1]
        and not any(_hex(segment, 8) for segment in segments[:-1])
    )


def _hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdef" for c in text)


def volume_problem(refusals: Refusals, option: str, name: str) -> None:
    """Refuses a named volume that is not the workspace's own (anonymous volumes have no name)."""
    policy = refusals.policy
    if name and not own_volume(policy, name) and "*" not in policy.mounts:
        owner = policy.owner or policy.project
        refusals.add(option, name, f"the volume {name}, which is not this workspace's (its own are named "
                     f"{owner}_...: another workspace's data, or a volume made to mount a host folder?)",
                     "DEVCONTAINER_ALLOWED_MOUNTS=*")  # fmt: skip


LOG_DRIVERS = ("json-file", "local", "none", "")  # the others send logs somewhere: syslog, fluentd, splunk, ...


def log_driver_problem(refusals: Refusals, option: str, driver: str) -> None:
    """A logging driver that ships the logs elsewhere makes the engine open connections from its own network
    (the host's loopback included) or use its own credentials (awslogs, gcplogs)."""
    if driver.strip().lower() not in LOG_DRIVERS:
        reason = f"the logging driver {driver} (the engine sends the logs elsewhere)"
        refusals.need("privileged", option, driver, reason)


def published_problem(refusals: Refusals, option: str, host_port: str) -> None:
    """A host port of the supervisor (its status page, its liveness probe) is not the repository's to take."""
    low, _, high = host_port.strip().partition("-")
    if not low.isdigit():
        return
    for reserved in refusals.policy.reserved_ports:
        if reserved.isdigit() and int(low) <= int(reserved) <= int(high if high.isdigit() else low):
            refusals.add(option, host_port, f"publishing host port {reserved}, the supervisor's", "")


def publish_host_port(value: str) -> str:
    """The host port of `-p [ip:]host:container[/proto]` ("" when the engine picks one)."""
    parts = value.rsplit("/", 1)[0].rsplit(":", 2)
    return parts[-2] if len(parts) >= 2 else ""


Options = list[tuple[str, str | None]]


def parse(
    args: Sequence[str], values: set[str], switches: set[str], *, interspersed: bool = False
) -> tuple[Options, list[str]]:
    """(option, value) pairs and the operands (image and command, or context). `docker run` options end at
    the image (what follows is the container's command); `docker build` takes options after the context
    too (interspersed), so every argument there is looked at. A switch's value is "true" unless given as
    --switch=false; an unknown option's value is None."""
    options: Options = []
    operands: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return options, [*operands, *args[i + 1 :]]
        if not arg.startswith("-") or arg == "-":
            if not interspersed:
                return options, list(args[i:])
            operands.append(arg)
            i += 1
            continue
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in switches:
                options.append((name, value if eq else "true"))
            elif name in values:
                if not eq:
                    i += 1
                    value = args[i] if i < len(args) else ""
                options.append((name, value))
            else:
                options.append((name, None))
        else:  # -it, -e X=1, -eX=1, -v/a:/b
            letters = arg[1:]
            for index, letter in enumerate(letters):
                name = "-" + letter
                if name in switches:  # per command: -t is run's --tty but build's --tag
                    options.append((name, "true"))
                    continue
                if name in values:
                    value = letters[index + 1 :].removeprefix("=")
                    if not value:
                        i += 1
                        value = args[i] if i < len(args) else ""
                    options.append((name, value))
                else:
                    options.append((name, None))
                break
        i += 1
    return options, operands


def _csv_split(value: str) -> list[str] | None:
    """The fields of a CSV value as Go's encoding/csv reads it (Docker's and Podman's --mount, --secret,
    --cache-from parsers): a field may be double-quoted, with "" for a quote; None when the quoting is
    broken (a quote inside an unquoted field, an unterminated quote), which the engines refuse too."""
    fields: list[str] = []
    i, end = 0, len(value)
    while True:
        if i < end and value[i] == '"':
            parts, i = [], i + 1
            while True:
                close = value.find('"', i)
                if close < 0:
                    return None
                parts.append(value[i:close])
                if close + 1 < end and value[close + 1] == '"':
                    parts.append('"')
                    i = close + 2
                    continue
                i = close + 1
                break
            if i < end and value[i] != ",":
                return None
            fields.append("".join(parts))
        else:
            comma = value.find(",", i)
            stop = end if comma < 0 else comma
            if '"' in value[i:stop]:
                return None
            fields.append(value[i:stop])
            i = stop
        if i >= end:
            return fields
        i += 1


# one key under two names: `source=A,src=B` is a key given twice (the engines keep the last)
KEY_ALIASES = {"src": "source", "dst": "target", "destination": "target", "ro": "readonly"}


def _csv(value: str) -> dict[str, str] | None:
    """key=value fields (keys lower-cased, aliases as their one name: source, target, readonly); None when
    the value cannot be read one way only: broken quoting, or a key given twice - the engines keep the
    last, a check that read the first would be fooled."""
    parts = _csv_split(value)
    if parts is None:
        return None
    fields: dict[str, str] = {}
    for part in parts:
        key, _, item = part.partition("=")
        key = key.strip().lower()
        key = KEY_ALIASES.get(key, key)
        if key in fields and not key.startswith("volume-"):  # a volume's options and labels may repeat
            return None
        fields.setdefault(key, item.strip())
    return fields


def csv_fields(refusals: Refusals, option: str, value: str) -> dict[str, str]:
    """_csv's fields, or a refusal (and no fields) for a value it cannot read one way only."""
    fields = _csv(value)
    if fields is None:
        refusals.add(option, value, f"a {option} value with a key given twice or quoting the builder cannot read "
                     "one way only", "")  # fmt: skip
        return {}
    return fields


# the container's own network, whatever the engine calls it; any other name is a network other containers
# may be on (another workspace's compose project, say)
OWN_NETWORKS = ("bridge", "default", "none", "private", "slirp4netns", "pasta")


def namespace_problem(refusals: Refusals, option: str, value: str) -> None:
    network = option in ("--network", "--net")
    if network and refusals.policy.network:  # the admin's own value was let through before this
        refusals.add(option, value, f"the admin gives every container the network {refusals.policy.network} "
                     "(DEVCONTAINER_NETWORK): a config may not ask for another", "")  # fmt: skip
        return
    for mode in value.strip().lower().split(","):  # Podman takes several networks, comma-separated
        if mode in HOST_MODES or mode.startswith(("container:", "ns:", "pod:")):
            reason = f"{option} {value} shares a namespace outside the container"
        elif network and mode.startswith(("slirp4netns:", "pasta:")):
            # allow_host_loopback, port forwarding, pcap files: Podman's user-mode network reaching the host
            reason = f"{option} {value}: options of Podman's user-mode network open the host's loopback, ports or files"
        elif network and mode.partition(":")[0] not in OWN_NETWORKS:
            reason = f"{option} {value} joins a network other containers may be on"
        elif option == "--pod" and not mode.startswith("new:"):
            reason = f"{option} {value} joins an existing pod, sharing its namespaces"
        else:
            continue
        refusals.need("host-namespaces", option, value, reason)
        return


def _mount(refusals: Refusals, option: str, value: str) -> None:
    fields = csv_fields(refusals, option, value)
    if not fields:  # refused as unreadable
        return
    _overlay_folders(refusals, option, fields)
    kind = fields.get("type", "volume")
    source = fields.get("source") or ""
    if kind in ("bind", "glob"):
        refusals.host_path(option, source, "a bind mount of", mountable=True)
    elif kind == "volume":
        if any(key.startswith("volume-") for key in fields) and "*" not in refusals.policy.mounts:
            refusals.add(option, value, "a volume with driver options can mount any host path",
                         "DEVCONTAINER_ALLOWED_MOUNTS=*")  # fmt: skip
        volume_problem(refusals, option, source)
    elif kind not in ("tmpfs", "image", "ramfs", "devpts"):
        refusals.add(option, value, f"a mount of type {kind} is not one the builder can check",
                     "DEVCONTAINER_ALLOWED_MOUNTS=*")  # fmt: skip


def _volume(refusals: Refusals, option: str, value: str) -> None:
    source, sep, rest = value.partition(":")
    if sep and source.startswith(("/", ".", "~")):
        refusals.host_path(option, source, "a bind mount of", mountable=True)
    elif sep:
        volume_problem(refusals, option, source)
    _, _, options = rest.partition(":")
    _overlay_folders(refusals, option, dict(item.partition("=")[::2] for item in options.split(",")))


def _overlay_folders(refusals: Refusals, option: str, fields: dict[str, str]) -> None:
    """Podman's overlay mounts (`:O`) take host folders for the upper and work layers, which it writes
    (and gives to the source's owner)."""
    for key in ("upperdir", "workdir"):
        if fields.get(key):
            refusals.host_path(option, fields[key], f"an overlay's {key} at")


REMOTE_CONTEXTS = ("docker-image://", "target:", "https://", "http://", "git://", "git@")


def _build_context(refusals: Refusals, option: str, where: str) -> None:
    """An image, a stage or a remote repository is no host path; anything else is read as one, by the
    engine's rules (`/a/b://..` is the folder /a, cleaned lexically): so is an OCI layout's folder."""
    if where.startswith(REMOTE_CONTEXTS):
        return
    if where.startswith("oci-layout://"):
        where = where[len("oci-layout://") :].partition("@")[0]
    refusals.host_path(option, where, "the build context")


def capability_problem(refusals: Refusals, option: str, value: str) -> None:
    allowed = refusals.policy.capabilities
    for name in value.split(","):
        cap = name.strip().upper().removeprefix("CAP_")
        if cap and "ALL" not in allowed and cap not in allowed:
            refusals.add(option, value, f"adding the capability {cap}", f"DEVCONTAINER_ALLOWED_CAPABILITIES={cap}")


def security_opt_problem(refusals: Refusals, option: str, value: str) -> None:
    normal = value.strip().lower().replace(":", "=", 1)
    if normal in ("no-new-privileges", "no-new-privileges=true"):
        return
    if normal == "label=disable" and refusals.policy.engine == "podman":
        return  # the devcontainer CLI adds it for rootless Podman itself
    refusals.need("security-opt", option, value, f"the security option {value}")


def _bind_source(option: str, value: str) -> str:
    if option == "--mount":
        fields = _csv(value)
        if fields is None:  # refused by _mount; as a source it is the whole value, which is no folder
            return value
        return fields.get("source", "") if fields.get("type") in ("bind", "glob") else ""
    source, sep, _ = value.partition(":")
    return source if sep and source.startswith(("/", ".", "~")) else ""


# one branch per docker run option, read as one table: split in two, it would hide which check an option gets
def check_run(policy: Policy, args: Sequence[str]) -> list[dict[str, str]]:  # noqa: PLR0912
    refusals = Refusals(policy)
    options, _ = parse(args, RUN_VALUES, RUN_SWITCHES)
    workspace = os.path.realpath(policy.workspace)
    swappable = any(
        os.path.realpath(source) != workspace
        for option, value in options
        if option in ("--mount", "-v", "--volume") and value and (source := _bind_source(option, value))
    )
    for option, given in options:
        if given is None:
            refusals.add(option, "", f"the option {option} is not one the builder knows how to check", "")
            continue
        value = given
        if option in ("--privileged", "--use-api-socket", "--env-host") and value != "false":
            refusals.need("privileged", option, value, f"{option} (access to the host or the engine)")
        elif option in REACH_OUT:
            refusals.need("privileged", option, value, f"{option} (reaches outside the container)")
        elif option == "--cap-add":
            capability_problem(refusals, option, value)
        elif option == "--security-opt":
            security_opt_problem(refusals, option, value)
        elif option in ("--network", "--net") and policy.network and value == policy.network:
            continue  # the admin's own choice (DEVCONTAINER_NETWORK), given through the builder's override
        elif option in ("--network", "--net", "--pid", "--ipc", "--uts", "--userns", "--cgroupns", "--pod"):
            namespace_problem(refusals, option, value)
        elif option in ("--device", "--device-cgroup-rule", "--gpus"):
            refusals.need("devices", option, value, f"access to host devices ({option} {value})")
        elif option == "--mount":
            _mount(refusals, option, value)
        elif option in ("-v", "--volume"):
            _volume(refusals, option, value)
        elif option in ("--volumes-from", "--volume-driver") and "*" not in policy.mounts:
            refusals.add(
                option, value, f"{option} mounts what the builder cannot check", "DEVCONTAINER_ALLOWED_MOUNTS=*"
            )
        elif option in ("--env-file", "--label-file"):
            refusals.host_path(option, value, "reading the host file")
        elif option in ("--cidfile", "--pidfile", "--conmon-pidfile", "--pod-id-file"):
            refusals.add(option, value, f"{option} writes a file on the host", "")
        elif option == "--log-opt" and value.strip().lower().startswith("path="):
            refusals.add(option, value, "a log file on the host", "")
        elif option == "--log-driver":
            log_driver_problem(refusals, option, value)
        elif option in ("-p", "--publish"):
            published_problem(refusals, option, publish_host_port(value))
        elif option == "--restart" and value.strip().lower() not in ("", "no") and swappable:
            # a bind-mounted path inside the workspace can become a link to `/`: only the builder, which
            # checks the mounts again first, may start the container again (keep-alive does)
            refusals.add(option, value, "a restart policy with a bind mount inside the workspace", "")
    return refusals.found


# one branch per docker build option, read as one table: split in two, it would hide which check an option gets
def check_build(policy: Policy, args: Sequence[str]) -> list[dict[str, str]]:  # noqa: PLR0912
    refusals = Refusals(policy)
    options, operands = parse(args, BUILD_VALUES, BUILD_SWITCHES, interspersed=True)
    for option, given in options:
        if given is None:
            refusals.add(option, "", f"the build option {option} is not one the builder knows how to check", "")
            continue
        value = given
        if option == "--network" or option in ("--pid", "--ipc", "--uts", "--userns", "--cgroupns"):
            namespace_problem(refusals, option, value)
        elif option in ("--security-opt", "--allow"):
            refusals.need("security-opt", option, value, f"the build entitlement or security option {value}")
        elif option in ("--cgroup-parent", "--runtime", "--ssh", "--builder", "--authfile", "--creds", "--cert-dir"):
            refusals.need("privileged", option, value, f"{option} (reaches outside the build)")
        elif option == "--cap-add":
            capability_problem(refusals, option, value)
        elif option == "--device":
            refusals.need("devices", option, value, f"access to host devices ({option} {value})")
        elif option in ("-v", "--volume"):
            _volume(refusals, option, value)
        elif option in ("-f", "--file"):
            refusals.host_path(option, value, "the Dockerfile")
        elif option == "--secret":
            secret = csv_fields(refusals, option, value)
            source = secret.get("source")
            if source:
                refusals.host_path(option, source, "the build secret file")
        elif option == "--build-context":
            _build_context(refusals, option, value.partition("=")[2])
        elif option == "--cache-from" and (cache := csv_fields(refusals, option, value)).get("type") == "local":
            refusals.host_path(option, cache.get("source", ""), "the local cache")
        elif option == "--cache-to" and value != policy.cache_to and "type=inline" not in value.replace(" ", ""):
            refusals.add(option, value, "a cache destination other than DEVCONTAINER_CACHE_TO", "DEVCONTAINER_CACHE_TO")
        elif option in ("-o", "--output", "--iidfile", "--metadata-file", "--push"):
            refusals.add(option, value, f"{option} writes outside the engine", "")
    if len(operands) > 1:
        refusals.add("context", " ".join(operands[:3]), "more than one build context", "")
    for context in operands[:1]:
        if "://" in context or context == "-":
            refusals.add("context", context, "a build context that is not a folder", "")
        else:
            refusals.host_path("context", context, "the build context")
    return refusals.found


def _subcommand(args: Sequence[str]) -> tuple[str, int]:
    """('run' | 'build' | '', index of the first argument after the subcommand)."""
    if not args:
        return "", 0
    first = args[0]
    second = args[1] if len(args) > 1 else ""
    if first in ("run", "create"):
        return "run", 1
    if first == "container" and second in ("run", "create"):
        return "run", 2
    if first == "build":
        return "build", 1
    if first in ("image", "buildx") and second == "build":
        return "build", 2
    return "", 0


def refuse(policy: Policy, command: str, found: list[dict[str, str]]) -> None:
    lines = [
        f"devcontainer-builder: the admin's policy refuses this docker {command}: "
        + "; ".join(f"{item['reason']} ({item['option']})" for item in found)
    ]
    if policy.report:
        import json  # noqa: PLC0415 - only a refusal pays for it

        try:
            with open(policy.report, "a", encoding="utf-8") as handle:
                for item in found:
                    handle.write(json.dumps({"command": command, **item}) + "\n")
        except OSError:
            pass
    sys.stderr.write("\n".join(lines) + "\n")
    sys.exit(REFUSED_EXIT)


def guarded(policy: Policy, args: list[str]) -> Iterator[str]:
    """The argument list to execute after the checks (refusing, and exiting, when they fail)."""
    if args and args[0] == "compose":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import compose_guard  # type: ignore[import-not-found]  # noqa: PLC0415 - compose calls only

        yield from compose_guard.guarded(policy, args)
        return
    command, start = _subcommand(args)
    if command == "run":
        found = check_run(policy, args[start:])
    elif command == "build":
        found = check_build(policy, args[start:])
    else:
        found = []
    if found:
        refuse(policy, command, found)
    if command == "build" and policy.force_rm and args[0] == "build":
        args = ["build", "--force-rm", *args[1:]]
    if policy.engine == "podman" and command in ("run", "build"):
        args = _for_podman(policy, command, args, start)
    yield from args


def _for_podman(policy: Policy, command: str, args: list[str], start: int) -> list[str]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import podman_args  # type: ignore[import-not-found]  # noqa: PLC0415 - podman's calls only

    if command == "run" and policy.rootful:
        _, operands = parse(args[start:], RUN_VALUES, RUN_SWITCHES)  # the image, then the container's command
        return podman_args.without_keep_id(args, start, len(args) - len(operands))  # type: ignore[no-any-return]
    if command == "build":
        args = podman_args.registry_cache(args, start, policy.cache_to, lambda text: sys.stderr.write(text + "\n"))
        return podman_args.local_base_image(args, lambda name: podman_args.image_id(policy.docker, name))  # type: ignore[no-any-return]
    return args


def main(argv: list[str]) -> None:
    try:
        policy = Policy.from_text(os.environ[POLICY_VAR])
    except (KeyError, ValueError, TypeError) as err:
        sys.stderr.write(f"devcontainer-builder docker-guard: no usable policy ({err}); refusing to run docker\n")
        sys.exit(REFUSED_EXIT)
    args = list(guarded(policy, argv))
    os.execvp(policy.docker, [policy.docker, *args])  # noqa: S606 - the engine CLI, with checked arguments


if __name__ == "__main__":
    main(sys.argv[1:])
