"""A folder of .vsix files the admin provides: which extension (publisher.name@version) each one is,
read from the package.json inside it, never from its file name."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from dataclasses import dataclass

from devcontainer_builder.ide.customizations import Wanted
from devcontainer_builder.log import Log

MAX_FILES = 2000
MAX_MANIFEST = 1024 * 1024


@dataclass(frozen=True)
class Package:
    id: str  # publisher.name
    version: str
    path: str


def index(folder: str, log: Log | None = None) -> list[Package]:
    """Every readable .vsix in the folder (not its subfolders); unreadable ones are left out. A symbolic
    link is followed wherever it leads (the folder is the admin's: a Kubernetes ConfigMap or Secret volume
    is made of links, so are `latest.vsix -> x-1.2.vsix` and Nix-managed folders), and the package's path
    is the file it leads to, which `docker cp` copies as a file. Only regular files are read: a named
    pipe or a device called x.vsix would block the read for ever."""
    if not folder:
        return []
    try:
        names = sorted(name for name in os.listdir(folder) if name.lower().endswith(".vsix"))[:MAX_FILES]
    except OSError:
        return []
    found = []
    for name in names:
        path = os.path.join(folder, name)
        package = read(path, log)
        if package is not None:
            found.append(package)
    return found


def read(path: str, log: Log | None = None) -> Package | None:
    try:
        # O_NONBLOCK: opening a named pipe returns at once instead of waiting for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            if log is not None:
                log.warn(f"DEVCONTAINER_EXTENSIONS_FOLDER: {path} is not a regular file (nor a link to one); skipped")
            return None
        try:
            with zipfile.ZipFile(handle) as archive:
                info = archive.getinfo("extension/package.json")
                if info.file_size > MAX_MANIFEST:
                    return None
                data = json.loads(archive.read(info))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None
    publisher, name, version = (
        data.get(key) if isinstance(data, dict) else None for key in ("publisher", "name", "version")
    )
    if not all(isinstance(value, str) and value for value in (publisher, name, version)):
        return None
    return Package(f"{publisher}.{name}", str(version), os.path.realpath(path))


def choose(packages: list[Package], wanted: Wanted) -> Package | None:
    """The pinned version, or the newest one there is."""
    matching = [package for package in packages if package.id.lower() == wanted.key]
    if wanted.version:
        return next((package for package in matching if package.version == wanted.version), None)
    return max(matching, key=lambda package: _version_key(package.version), default=None)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in version.split("-", 1)[0].split("."))
