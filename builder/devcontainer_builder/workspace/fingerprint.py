"""What a devcontainer is built from, as one hash.

`config_hash` - the container's identity, on its label - covers the config file, its Dockerfile,
every file in the config's folder (.devcontainer or .devcontainer/<name>) and its local features: a
change there replaces the container on the next `up`. Every file is hashed, however many there are,
within bounds that no real config folder comes near; past them the config is refused with a message,
never silently cut short. Only regular files are read (a link to a FIFO or to /dev/zero cannot hang
or flood the builder).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from typing import Any

from devcontainer_builder.errors import BuildFailed
from devcontainer_builder.workspace import layout

SKIP = {"devcontainer-lock.json"}
MAX_FILES = 50_000
MAX_BYTES = 1024**3
CHUNK = 1024 * 1024


def identity_files(config_path: str, data: dict[str, Any]) -> list[str]:
    """The files whose content is the container's identity."""
    found = {config_path}
    dockerfile = layout.dockerfile_of(config_path, data)
    if dockerfile:
        found.add(dockerfile)
    folders = [folder for folder in [layout.config_folder(config_path)] if folder]
    folders += [feature for feature in layout.local_features(config_path, data) if os.path.isdir(feature)]
    for folder in folders:
        found.update(path for path in layout.walk(folder) if os.path.basename(path) not in SKIP)
    return sorted(os.path.abspath(path) for path in found)


def digest(paths: Iterable[str], root: str) -> str:
    """sha256 over (path relative to root, content) of each file, in order; 16 hex digits."""
    total = hashlib.sha256()
    size = 0
    for count, path in enumerate(paths, 1):
        if count > MAX_FILES:
            raise BuildFailed(
                f"the devcontainer config depends on more than {MAX_FILES} files; keep data out of the config's "
                "folder.",
                step="config",
            )
        total.update(os.path.relpath(path, root).encode("utf-8", "surrogateescape") + b"\0")
        try:
            info = os.stat(path)
        except OSError:
            total.update(b"missing\0")
            continue
        if not stat.S_ISREG(info.st_mode):
            total.update(b"not a regular file\0")
            continue
        size += info.st_size
        if size > MAX_BYTES:
            raise BuildFailed(
                f"the devcontainer config's files add up to more than {MAX_BYTES // 1024**2} MiB; keep data out "
                "of the config's folder.",
                step="config",
            )
        content = hashlib.sha256()
        try:
            with open(path, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    content.update(chunk)
        except OSError:
            total.update(b"unreadable\0")
            continue
        total.update(content.digest())
    return total.hexdigest()[:16]


def config_hash(workspace: str, config_path: str, data: dict[str, Any]) -> str:
    return digest(identity_files(config_path, data), workspace)
