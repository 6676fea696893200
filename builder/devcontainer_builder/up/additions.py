"""What the admin adds to every container of the workspace, never written into the repository's
devcontainer.json: the container's network (DEVCONTAINER_NETWORK) and named volumes that keep editor and
tool state across rebuilds (DEVCONTAINER_PERSIST).

The CLI reads a config's content from --override-config but resolves its relative paths (Dockerfile,
build context, local features) against --config, so the builder hands it the repository's config as
--config and a copy with the additions (in the state dir) as --override-config. The additions count in
the container's config hash: changing them replaces the container, and its volumes carry over.

A `~/` folder needs the remote user's home before the container exists. The builder takes the user from
devcontainer.json (remoteUser, else containerUser), else from the image's devcontainer.metadata label when
the image is already local, else the user of the workspace's last build, else root; the home is /root
for root and /home/<user> otherwise, as in the devcontainers and Coder images. An absolute path avoids the
guess.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from devcontainer_builder.engine import compose, containers
from devcontainer_builder.engine.containers import Additions, Spec
from devcontainer_builder.ide.container import ROOT as IDE_ROOT
from devcontainer_builder.system import files
from devcontainer_builder.up.context import Run


@dataclass(frozen=True)
class Persisted:
    entry: str  # as the admin wrote it (~/.vscode-server)
    volume: str  # the named volume, one per workspace and entry
    target: str  # the folder in the container


def volume_name(workspace: str, entry: str) -> str:
    """<project>-<slug>-<hash>: the workspace's (as compose names its project) and the entry's."""
    slug = re.sub(r"[^a-z0-9_.-]+", "-", entry.lower()).strip("-._")[:40] or "folder"
    digest = hashlib.sha256(entry.encode("utf-8", "surrogateescape")).hexdigest()[:6]
    return f"{compose.project_name(workspace)}-{slug}-{digest}"


def home_of(user: str) -> str:
    return "/root" if user in ("", "root", "0") else f"/home/{user}"


# a user name a home folder can be made of: the repository writes it (remoteUser, its image's label), and
# it goes into a mount's target
PLAIN_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")


def remote_user(run: Run, data: dict[str, Any]) -> str:
    """Who the remote user will be (see the module's docstring); only a plain user name counts."""
    image = data.get("image")
    candidates = (
        lambda: data.get("remoteUser"),
        lambda: data.get("containerUser"),
        lambda: run.engine.image_user(image) if isinstance(image, str) and image else "",  # an engine call: late
        lambda: run.previous.remote_user,
    )
    for candidate in candidates:
        value = candidate()
        if isinstance(value, str) and PLAIN_USER.fullmatch(value):
            return value
    return "root"


def persisted(run: Run, data: dict[str, Any]) -> list[Persisted]:
    entries = run.settings.persist
    if not entries:
        return []
    home = home_of(remote_user(run, data)) if any(e.startswith("~/") for e in entries) else ""
    folder = run.settings.workspace_folder
    remote = containers.default_remote_folder(folder, data)
    found = []
    for entry in entries:
        target = home + entry[1:] if entry.startswith("~/") else entry
        if target == remote or target.startswith(remote + "/") or remote.startswith(target + "/"):
            run.log.warn(f"DEVCONTAINER_PERSIST's {entry} is {target}, the workspace folder or around it: not "
                         "persisted (a volume there would hide the repository's clone)")  # fmt: skip
            continue
        found.append(Persisted(entry, volume_name(folder, entry), target))
    return found


def for_config(run: Run, data: dict[str, Any], *, compose_config: bool = False) -> Additions:
    """What the admin adds to a config with this content."""
    settings = run.settings
    if compose_config:
        if settings.network or settings.persist:
            run.log.warn(
                "DEVCONTAINER_NETWORK and DEVCONTAINER_PERSIST do not apply to Docker Compose configs: declare "
                "the network and the volumes in the compose file"
            )
        return Additions({})
    added: dict[str, Any] = {}
    if settings.network:
        added["runArgs"] = [*_list(data, "runArgs"), f"--network={settings.network}"]
    volumes = persisted(run, data)
    if settings.ide != "none":
        # the editor's tree and its extensions: fetched and installed once per workspace, not per container
        volumes.append(Persisted("ide", volume_name(run.settings.workspace_folder, IDE_ROOT), IDE_ROOT))
    if volumes:
        targets = {volume.target for volume in volumes}
        own = []
        for mount in _list(data, "mounts"):
            if _target(mount) in targets:
                run.log.warn(f"the repository's mount at {_target(mount)} gives way to DEVCONTAINER_PERSIST's volume")
                continue
            own.append(mount)
        mounts = [f"type=volume,source={v.volume},target={v.target}" for v in volumes]
        added["mounts"] = [*own, *mounts]
        for volume in volumes:
            run.log.info(f"keeping {volume.entry} in volume {volume.volume} (at {volume.target})")
    return Additions(added, tuple(v.target for v in volumes if v.target != IDE_ROOT))


def apply(run: Run, spec: Spec, data: dict[str, Any], additions: Additions, *, rewrite: bool = False) -> Spec:
    """spec with the additions given to the CLI (spec itself when there are none, unless `rewrite`: data
    is not the repository's config as it is - its initializeCommand already ran, up/initialize.py). Its
    config hash is the caller's: one that has the additions in it (Additions.rehash), or, for a container
    recreated as it was (restart.py), the one it was labelled with."""
    if not additions.fields and not rewrite:
        return spec
    path = run.dirs.file(f"generated/{spec.role}-additions/devcontainer.json")
    files.make_dirs(os.path.dirname(path))
    files.write_atomic(path, json.dumps({**data, **additions.fields}, indent=2) + "\n", sync=False)
    targets = additions.persist_targets
    if spec.override:  # a config of the builder's own: the copy replaces it
        return dataclasses.replace(spec, config_path=path, persist_targets=targets)
    return dataclasses.replace(spec, override_config=path, persist_targets=targets)


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    return value if isinstance(value, list) else []


def _target(mount: Any) -> str:
    """Where a config's mount (a string or an object) goes in the container."""
    if isinstance(mount, dict):
        return str(mount.get("target") or mount.get("destination") or "").rstrip("/")
    for part in str(mount).split(","):
        key, _, value = part.partition("=")
        if key.strip().lower() in ("target", "dst", "destination"):
            return value.strip().rstrip("/")
    return ""
