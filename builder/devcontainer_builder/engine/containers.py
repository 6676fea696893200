"""A workspace's containers: who they are (labels) and the setup the builder does inside a new one.

Every container carries identity labels - the workspace, its role (the repository's devcontainer, the
fallback, or another service of the devcontainer's compose project) and the hash of the config it was
built from - so a rerun finds its own container, a changed
config or a fallback is never mistaken for the current devcontainer, and stale ones can be removed.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass
from typing import Any

from devcontainer_builder.engine.engine import (
    LABEL_CONFIG,
    LABEL_LOCAL_FOLDER,
    LABEL_ROLE,
    LABEL_WORKSPACE,
    Engine,
)
from devcontainer_builder.errors import BuildFailed
from devcontainer_builder.log import Log
from devcontainer_builder.system.proc import last_line

ROLE_DEVCONTAINER = "devcontainer"
ROLE_FALLBACK = "fallback"
ROLE_SERVICE = "service"  # another service of the devcontainer's compose project (a database, a cache)
BANNER_PATH = "/etc/profile.d/zz-devcontainer-build-error.sh"
# Lifecycle commands (onCreate, postCreate, ...) run before the builder can configure git in the new
# container; this environment makes git trust the workspace for them whoever owns it. It is "command"
# scope config, which git honours for safe.directory. A devcontainer has a single user, so "*" is safe.
LIFECYCLE_GIT_ENV = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"}
# Run as root in a new container: git trusts the workspace folder ($1) whoever owns it, and, when $2 is
# "banner", the shell script on stdin becomes a login-shell banner (also sourced by interactive bash).
# A fixed text: values arrive as arguments and stdin, never spliced in.
SETUP_SCRIPT = (
    "if command -v git >/dev/null 2>&1 && ! git config --system --get-all safe.directory 2>/dev/null"
    ' | grep -qxF -- "$1"; then git config --system --add safe.directory "$1" || exit 1; fi; '
    '[ "$2" = banner ] || exit 0; '
    f"mkdir -p /etc/profile.d && cat > {BANNER_PATH} && chmod 0644 {BANNER_PATH} || exit 1; "
    "[ -f /etc/bash.bashrc ] || exit 0; "
    f"grep -qF {BANNER_PATH} /etc/bash.bashrc || echo '[ -r {BANNER_PATH} ] && . {BANNER_PATH}' >> /etc/bash.bashrc"
)

# run as root: the folders ($2...) become the user's ($1) while root owns them; a fixed text, values as arguments
OWN_SCRIPT = 'user=$1; shift; for dir in "$@"; do [ "$(stat -c %u "$dir")" = 0 ] && chown "$user:" "$dir"; done; true'


@dataclass(frozen=True)
class Spec:
    """One container to bring up for the workspace."""

    role: str
    config_path: str
    override: bool  # the config is given with --override-config (the repository's is not used)
    config_hash: str
    remote_folder: str  # where the CLI will mount the workspace, unless the config says otherwise
    banner: str = ""  # a profile script to install (the fallback's), or nothing
    runs_host_code: bool = False  # an initializeCommand: the repository's code runs beside the builder
    compose_project: str = ""  # a compose config: the workspace's project (engine/compose.py)
    services: tuple[str, ...] = ()  # the services its compose files define
    builds_service: bool = False  # the compose files build the devcontainer's service from a Dockerfile
    override_config: str = ""  # the config's content with the admin's additions (up/additions.py), if any
    persist_targets: tuple[str, ...] = ()  # folders the admin's named volumes are mounted at


@dataclass(frozen=True)
class Additions:
    fields: dict[str, Any]  # what goes over the config's own: runArgs and mounts, each extended
    persist_targets: tuple[str, ...] = ()

    def rehash(self, config_hash: str) -> str:
        """The config hash of the config with these additions (itself when there are none)."""
        if not self.fields:
            return config_hash
        mixed = config_hash + json.dumps(self.fields, sort_keys=True)
        return hashlib.sha256(mixed.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def identity_labels(workspace: str, role: str, config_hash: str) -> dict[str, str]:
    return {
        LABEL_LOCAL_FOLDER: workspace,
        LABEL_WORKSPACE: workspace,
        LABEL_ROLE: role,
        LABEL_CONFIG: config_hash,
    }


def default_remote_folder(workspace: str, config: dict[str, Any]) -> str:
    folder = config.get("workspaceFolder")
    if isinstance(folder, str) and folder.startswith("/") and "${" not in folder:
        return folder
    return "/workspaces/" + workspace.rstrip("/").rsplit("/", 1)[-1]


def banner_script(remote_folder: str, error_log: str) -> str:
    """A profile script: the first interactive shell shows the banner at the head of the error log,
    later ones a one-line reminder; nothing once the log is gone (the real devcontainer runs again)."""
    log_path = shlex.quote(f"{remote_folder}/{error_log}")
    return f"""# Installed by devcontainer-builder: this container runs the fallback image because the
# devcontainer build failed. The banner is the head of the error log, up to its first '----' line.
# Interactive shells on a terminal only: the devcontainer CLI probes the environment with `bash -lic`
# and no terminal, and that must not count as the user's first shell.
case $- in *i*) ;; *) return 0 2>/dev/null || exit 0 ;; esac
[ -t 1 ] || return 0 2>/dev/null || exit 0
if [ -z "${{_DEVCONTAINER_BUILD_ERROR_SHOWN:-}}" ] && [ -r {log_path} ]; then
  _DEVCONTAINER_BUILD_ERROR_SHOWN=1
  _devcontainer_seen="${{HOME:-/tmp}}/.devcontainer-build-error-seen"
  if [ ! -e "$_devcontainer_seen" ]; then
    sed -n '/^----/q;p' {log_path}
    : > "$_devcontainer_seen" 2>/dev/null
  else
    echo "devcontainer-builder: this workspace still runs the fallback image; see "{log_path}
  fi
  unset _devcontainer_seen
fi
"""


def configure(engine: Engine, log: Log, container: str, folder: str, banner: str = "") -> bool:
    """The builder's setup inside a new container, in one `docker exec` as root."""
    result = engine.exec(
        container,
        ["sh", "-c", SETUP_SCRIPT, "sh", folder, "banner" if banner else ""],
        stdin=banner.encode() if banner else None,
    )
    if not result.ok:
        log.warn(
            f"could not finish setting up container {container[:12]} ({last_line(result.stderr)}); git may "
            "report 'dubious ownership' in the workspace" + (" and no login banner shows the failure" if banner else "")
        )
    return result.ok


def own_volumes(engine: Engine, log: Log, container: str, user: str, folders: tuple[str, ...]) -> None:
    """The admin's persisted volumes, mounted at folders new volumes give to root, become the remote
    user's (only the mount points: what is inside keeps its owners)."""
    if not folders or user in ("", "root", "0"):
        return
    result = engine.exec(container, ["sh", "-c", OWN_SCRIPT, "sh", user, *folders])
    if not result.ok:
        log.warn(f"could not give {', '.join(folders)} to {user} ({last_line(result.stderr)}); they stay root's")


def configure_when_started(engine: Engine, log: Log, workspace: str, spec: Spec) -> tuple[str, str] | None:
    """Set up the container the CLI has just started, while it goes on with probes and hooks; returns
    (container, folder) when done. The outcome may name another folder; then the caller does it again."""
    try:
        found = engine.workspace_containers(workspace)
    except BuildFailed:
        return None
    for container in found:
        ours = container.role == spec.role and container.config_hash == spec.config_hash
        if (
            ours
            and container.state == "running"
            and configure(engine, log, container.id, spec.remote_folder, spec.banner)
        ):
            return container.id, spec.remote_folder
    return None
