"""A folder of .vsix files the admin provides: which extension (publisher.name@version) each one is,
read from the package.json inside it, never from its file name."""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass

from devcontainer_builder.ide.customizations import Wanted

MAX_FILES = 2000
MAX_MANIFEST = 1024 * 1024


@dataclass(frozen=True)
class Package:
    id: str  # publisher.name
    version: str
    path: str


def index(folder: str) -> list[Package]:
    """Every readable .vsix in the folder (not its subfolders); unreadable ones are left out."""
    if not folder:
        return []
    try:
        names = sorted(name for name in os.listdir(folder) if name.lower().endswith(".vsix"))[:MAX_FILES]
    except OSError:
        return []
    found = []
    for name in names:
        path = os.path.join(folder, name)
        package = read(path)
        if package is not None:
            found.append(package)
    return found


def read(path: str) -> Package | None:
    try:
        with zipfile.ZipFile(path) as archive:
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
    return Package(f"{publisher}.{name}", str(version), path)


def choose(packages: list[Package], wanted: Wanted) -> Package | None:
    """The pinned version, or the newest one there is."""
    matching = [package for package in packages if package.id.lower() == wanted.key]
    if wanted.version:
        return next((package for package in matching if package.version == wanted.version), None)
    return max(matching, key=lambda package: _version_key(package.version), default=None)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in version.split("-", 1)[0].split("."))
