"""The builder as a system service on a VM (or any systemd host): one unit that brings the workspace up
at boot (`up`) and then supervises it (`serve`), as the workspace's own user - rootless Podman's user -
with its settings and secrets in a root-owned env file that systemd reads before dropping privileges.

The unit is written by `devcontainer-builder install-service` (template/modules/vm-host's first boot
runs it). Why each line is there:

- `ExecStartPre=-... up`: the build at boot; its failure still starts `serve` (the fallback and the
  status page are how a user gets out of a failed build). A restart after a crash runs it again, which
  finds the running container and reuses it.
- `KillMode=process`: stopping or restarting the service stops the builder, not the workspace's
  containers - Podman's `conmon` and the containers run in the service's cgroup, and the user's
  terminal must survive a supervisor restart.
- `XDG_RUNTIME_DIR`: rootless Podman's runtime dir, which lingering (`loginctl enable-linger`) keeps.
- No `NoNewPrivileges=`: rootless Podman maps its user namespace with the setuid `newuidmap`.
- `TimeoutStartSec=`: the longest the boot's `up` may take at the env file's settings - waiting for another
  `up`'s workspace lock, then a run of its own (settings/limits.py) - so systemd never kills an `up` the
  builder's own limits allow.
- `AmbientCapabilities=CAP_NET_BIND_SERVICE`: `serve` listens on a port below 1024 (the VM module's
  127.0.0.1:748), which a devcontainer on the VM's network cannot take before it or in its place - its
  capabilities count in its own user namespace only. `up` drops it at once; `serve` keeps it for
  itself and runs every program (builds, the builder agent) without it.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import re
import shutil
import stat
from dataclasses import dataclass, field

from devcontainer_builder.errors import InputError
from devcontainer_builder.host import envfile
from devcontainer_builder.settings import limits
from devcontainer_builder.settings.options import OPTIONS, Settings, load_only
from devcontainer_builder.system import files

DEFAULT_NAME = "devcontainer-builder"
DEFAULT_ENV_FILE = "/etc/devcontainer-builder/workspace.env"
DEFAULT_UNIT_DIR = "/etc/systemd/system"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# the settings the boot's `up` is bounded by (settings/limits.py), read from the env file
TIMINGS = ("build_timeout", "engine_timeout", "git_timeout", "git_retries")
ENV_FILE_MAX = 1 << 20  # settings, secrets and two init scripts: kilobytes
# what a unit may hold unquoted: no whitespace, no systemd specifier (%), no variable ($), no newline
PLAIN_PATH = re.compile(r"/[A-Za-z0-9._/+-]*")
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


@dataclass(frozen=True)
class Service:
    name: str
    user: str
    uid: int
    group: str
    home: str
    env_file: str
    builder: str  # the devcontainer-builder executable
    path: str  # PATH for the service: the builder's and the devcontainer CLI's folders first
    timings: Settings = field(default_factory=Settings)  # the env file's timeouts, the rest at their defaults

    @property
    def unit_name(self) -> str:
        return f"{self.name}.service"


def unit_text(service: Service) -> str:
    timings = service.timings
    given = " ".join(f"{option.env}={getattr(timings, option.name)}" for option in OPTIONS if option.name in TIMINGS)
    wait, run = limits.lock_timeout(timings), limits.run_limit(timings)
    return f"""# Written by `devcontainer-builder install-service`: see docs/vm-host.md.
# TimeoutStartSec: the lock's wait ({wait} s) and a run of `up` ({run} s) at {given}
[Unit]
Description=devcontainer-builder: {service.user}'s workspace (up at boot, then serve)
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=600
StartLimitBurst=5

[Service]
Type=exec
User={service.user}
Group={service.group}
WorkingDirectory={service.home}
EnvironmentFile={service.env_file}
Environment=HOME={service.home}
Environment=XDG_RUNTIME_DIR=/run/user/{service.uid}
Environment=PATH={service.path}
ExecStartPre=-{service.builder} up
ExecStart={service.builder} serve
Restart=on-failure
RestartSec=5s
RestartPreventExitStatus=2
TimeoutStartSec={limits.start_limit(timings)}
TimeoutStopSec=90
KillMode=process
AmbientCapabilities=CAP_NET_BIND_SERVICE

[Install]
WantedBy=multi-user.target
"""


def describe(name: str, user: str, env_file: str, search_path: str) -> Service:
    """The service for `user`, checked: a clear InputError for each thing that would keep it from running."""
    problems = []
    name = name.removesuffix(".service")  # the unit's name is NAME.service: `--name x.service` means x
    if not PLAIN_NAME.fullmatch(name):
        problems.append(f"the service name {name!r} must be a plain unit name: letters, digits, _, . and -")
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        account = None
        problems.append(f"there is no user {user!r} on this machine; create the workspace's user first")
    if account is not None:
        if account.pw_uid == 0:
            problems.append("the service runs as the workspace's own user, not root (rootless Podman); name that user")
        elif account.pw_gid == 0:
            problems.append(f"{user}'s primary group is root's (gid 0): give the workspace's user a group of its own")
        elif not PLAIN_PATH.fullmatch(account.pw_dir) or not os.path.isdir(account.pw_dir):
            problems.append(f"{user}'s home {account.pw_dir!r} is not a folder the service can start in; give the "
                            "user a home (useradd --create-home)")  # fmt: skip
    if not PLAIN_PATH.fullmatch(env_file):
        problems.append(
            f"the env file must be an absolute path of letters, digits and . _ / + - only, got {env_file!r}"
        )
    builder = shutil.which("devcontainer-builder", path=search_path)
    cli = shutil.which("devcontainer", path=search_path)
    if not builder:
        problems.append("devcontainer-builder is not on PATH: install the package first")
    if not cli:
        problems.append("the devcontainer CLI is not on PATH: `npm install -g @devcontainers/cli@0.89.0` first")
    folders = list(dict.fromkeys(os.path.dirname(os.path.abspath(p)) for p in (builder or "", cli or "")))
    if builder and cli and not all(PLAIN_PATH.fullmatch(folder) for folder in folders):
        problems.append(f"the tools are installed in {', '.join(folders)}: a unit needs paths without spaces, % or $")
    if problems or account is None:
        raise InputError(problems)
    group = _group_name(account.pw_gid)
    path = ":".join([*folders, SYSTEM_PATH])
    return Service(name, user, account.pw_uid, group, account.pw_dir, env_file, os.path.abspath(builder or ""), path)


def env_file_problem(path: str) -> str:
    """Why the env file cannot hold the workspace's secrets as it is, or "". systemd reads it as root: the
    file and every folder above it must be root's and writable by root only, and no link may stand in
    the way (whoever could swap one could have the service read any root-only file into its environment)."""
    if os.path.realpath(path) != os.path.normpath(path):
        return f"{path} goes through a symbolic link ({os.path.realpath(path)}): name the file itself"
    held_by = _roots_only(os.path.dirname(path), "the env file", "/etc/devcontainer-builder")
    if held_by:
        return held_by
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return f"{path} does not exist: write the workspace's settings there first (root-owned, mode 0600)"
    except OSError as err:
        return f"{path} cannot be read ({err.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return f"{path} is not a regular file"
    if info.st_uid != 0 or info.st_mode & 0o077:
        return (
            f"{path} holds the workspace's secrets and must be root's with mode 0600 (it is uid {info.st_uid}, "
            f"mode {stat.S_IMODE(info.st_mode):04o}): chown root: {path} && chmod 0600 {path}"
        )
    return ""


def _roots_only(folder: str, what: str, example: str) -> str:
    """Why folder or a folder above it could be changed by someone other than root, or "". A world-writable
    sticky folder above (/tmp) is fine: no one but root may rename or remove root's entry in it, and the
    kernel follows no one else's link there (fs.protected_symlinks); a group-writable one is not
    protected that way."""
    while True:
        try:
            held = os.stat(folder)
        except OSError as err:
            return f"{folder} cannot be read ({err.strerror})"
        public = held.st_mode & 0o002 and held.st_mode & stat.S_ISVTX
        if held.st_uid != 0 or (held.st_mode & 0o022 and not public):
            return (
                f"{folder}, which holds {what}, must be root's and writable by root only (it is uid "
                f"{held.st_uid}, mode {stat.S_IMODE(held.st_mode):04o}): use a folder such as {example}"
            )
        parent = os.path.dirname(folder)
        if parent == folder:  # the root, however spelled ("//" is its own parent)
            return ""
        folder = parent


def env_timings(path: str) -> Settings:
    """The timeouts the service's `up` will run with: the env file's, read as systemd reads it, the rest
    at their defaults. A value the builder would refuse is refused here, naming the file."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read(ENV_FILE_MAX + 1)
    except (OSError, UnicodeDecodeError) as err:
        raise InputError([f"{path} cannot be read as text ({getattr(err, 'strerror', None) or err})"]) from None
    if len(text) > ENV_FILE_MAX:
        raise InputError([f"{path} is larger than {ENV_FILE_MAX} bytes: it holds settings, not data"])
    try:
        return load_only(TIMINGS, envfile.parse(text))
    except InputError as err:
        raise InputError([f"in {path}: {problem}" for problem in err.problems]) from None


def unit_dir_problem(unit_dir: str) -> str:
    """Why the unit cannot go into unit_dir, or "". systemd runs what a unit there says as root: the folder
    must exist (a typo would write a unit systemd never reads) and no one but root may add or change one."""
    if not PLAIN_PATH.fullmatch(unit_dir):
        return f"--unit-dir must be an absolute path of letters, digits and . _ / + - only, got {unit_dir!r}"
    if not os.path.isdir(unit_dir):
        return f"--unit-dir {unit_dir} is not an existing folder: systemd reads units from {DEFAULT_UNIT_DIR}"
    if os.path.realpath(unit_dir) != os.path.normpath(unit_dir):
        return f"--unit-dir {unit_dir} goes through a symbolic link ({os.path.realpath(unit_dir)}): name the folder"
    held = os.stat(unit_dir)
    if held.st_mode & 0o022:  # sticky or not: another user's unit in it would run as root
        return (
            f"--unit-dir {unit_dir} is writable by others than root (mode {stat.S_IMODE(held.st_mode):04o}): a unit "
            f"they add there runs as root; use {DEFAULT_UNIT_DIR}"
        )
    return _roots_only(unit_dir, "the unit", DEFAULT_UNIT_DIR)


def install(service: Service, unit_dir: str) -> str:
    """Write the unit (0644, atomically), its start limit from the env file's timeouts; returns its path."""
    problems = [problem for problem in (unit_dir_problem(unit_dir), env_file_problem(service.env_file)) if problem]
    if problems:
        raise InputError(problems)
    service = dataclasses.replace(service, timings=env_timings(service.env_file))
    path = os.path.join(unit_dir, service.unit_name)
    files.write_atomic(path, unit_text(service), mode=0o644)
    return path


def _group_name(gid: int) -> str:
    import grp  # noqa: PLC0415 - only install-service needs it

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
