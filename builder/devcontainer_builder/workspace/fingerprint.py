"""What a devcontainer is built from, as one hash.

`config_hash` - the container's identity, on its label - covers the config file, its Dockerfile,
every file in the config's folder (.devcontainer or .devcontainer/<name>), its local features, and for
a compose config every compose file, env file and Dockerfile the project reads (compose_files.py): a
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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devcontainer_builder.errors import BuildFailed
from devcontainer_builder.workspace import confine, layout

if TYPE_CHECKING:
    from devcontainer_builder.workspace import compose_files

SKIP = {"devcontainer-lock.json"}
MAX_FILES = 50_000
MAX_BYTES = 1024**3
CHUNK = 1024 * 1024
# a build-context file bigger than this is followed by size and time, not read: a 20 GB data file that
# a Dockerfile COPYs must not keep the supervisor reading for a minute after each save
BIG_FILE = 64 * 1024**2


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
    if layout.compose_files(config_path, data):
        found.update(compose_project(config_path, data).inputs)
    return sorted(os.path.abspath(path) for path in found)


def compose_project(config_path: str, data: dict[str, Any]) -> compose_files.Project:
    """What a compose config's files read and build, as far as can be read (nothing is refused here:
    config.load checks, this only lists)."""
    from devcontainer_builder.workspace import compose_files  # noqa: PLC0415 - yaml, for compose configs only

    return compose_files.read(config_path, data)


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
        content = _content_hash(path)
        total.update(content.digest() if content is not None else b"unreadable\0")
    return total.hexdigest()[:16]


def _content_hash(path: str) -> hashlib._Hash | None:
    """sha256 of the file's bytes, read in chunks; None when it cannot be read."""
    content = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                content.update(chunk)
    except OSError:
        return None
    return content


def config_hash(workspace: str, config_path: str, data: dict[str, Any]) -> str:
    return digest(identity_files(config_path, data), workspace)


# -- everything a build takes, for rebuild suggestions ---------------------------------------------


@dataclass
class Inputs:
    """The files a build of the config takes, with their digests: the config, its folder, its Dockerfile,
    its local features, and what the Dockerfile's COPY/ADD take from the build context."""

    files: dict[str, str]  # path relative to the workspace -> content digest
    folders: list[str]  # absolute folders whose entries matter (new files in them count)
    truncated: bool = False  # the build context holds more files than are followed one by one

    @property
    def digest(self) -> str:
        total = hashlib.sha256()
        for name in sorted(self.files):
            total.update(f"{name}\0{self.files[name]}\0".encode("utf-8", "surrogateescape"))
        return total.hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {"files": self.files, "folders": self.folders, "truncated": self.truncated}

    @staticmethod
    def from_json(data: object) -> Inputs | None:
        if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
            return None
        files = {str(k): str(v) for k, v in data["files"].items()}
        folders = [str(f) for f in data.get("folders", []) if isinstance(f, str)]
        return Inputs(files, folders, bool(data.get("truncated")))


def changed_files(baseline: Inputs, current: Inputs) -> list[str]:
    """Paths added, removed or changed since the baseline."""
    names = set(baseline.files) | set(current.files)
    return sorted(name for name in names if baseline.files.get(name) != current.files.get(name))


class Digests:
    """Content digests of files, recomputed only when a file's size, time or inode changed."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[tuple[int, int, int], str]] = {}

    def of(self, path: str) -> str:
        try:
            info = os.stat(path)
        except OSError:
            info = None
        if info is None or not stat.S_ISREG(info.st_mode):
            try:  # a link to a folder (COPY takes the link itself) or to nothing: its target is what counts
                return "link " + hashlib.sha256(os.readlink(path).encode("utf-8", "surrogateescape")).hexdigest()[:16]
            except OSError:
                return "missing" if info is None else "not a regular file"
        key = (info.st_size, info.st_mtime_ns, info.st_ino)
        if info.st_size > BIG_FILE:
            return f"big {info.st_size} {info.st_mtime_ns}"
        known = self._known.get(path)
        if known and known[0] == key:
            return known[1]
        content = _content_hash(path)
        if content is None:
            return "unreadable"
        digest = content.hexdigest()[:16]
        self._known[path] = (key, digest)
        return digest


def build_inputs(
    workspace: str, config_path: str, digests: Digests | None = None, baseline: Inputs | None = None
) -> Inputs:
    """What a build of config_path takes, read from the files as they are now. A config that does not
    parse (half-way through an edit) still counts as itself and its folder - fixing it is a change worth
    a rebuild - and the baseline's other files count as they are now, since it cannot say which it
    takes: the rest of the comparison stays right meanwhile."""
    from devcontainer_builder.workspace import dockerfile, jsonc  # noqa: PLC0415 - keeps `up`'s start-up lean

    digests = digests or Digests()
    try:
        data = jsonc.loads(jsonc.read(config_path))
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):
        if baseline is not None:
            before = [os.path.join(workspace, name) for name in baseline.files]
            inputs = build_inputs(workspace, config_path, digests, None)
            inputs.files.update({os.path.relpath(path, workspace): digests.of(path) for path in before})
            inputs.folders = sorted(set(inputs.folders) | set(baseline.folders))
            return inputs
        data = {}
    try:
        paths = identity_files(config_path, data)
    except BuildFailed:
        paths = [config_path]
    folders = {os.path.dirname(config_path)}
    folders.update(os.path.dirname(path) for path in paths)
    truncated = False
    builds: list[tuple[str | None, str]] = [
        (layout.dockerfile_of(config_path, data), layout.context_of(config_path, data))
    ]
    if layout.compose_files(config_path, data):
        builds = [(build.dockerfile, build.context) for build in compose_project(config_path, data).builds]
    for source, context in builds:
        if source and confine.inside(workspace, source) and context and confine.inside(workspace, context):
            taken = dockerfile.sources(source, context)
            truncated = truncated or taken.truncated
            paths = sorted(set(paths) | set(taken.files))
            folders.update(os.path.dirname(path) for path in taken.files)
            folders.update(taken.folders)
            folders.add(context)
    files = {os.path.relpath(path, workspace): digests.of(path) for path in paths}
    return Inputs(files, sorted(folders), truncated)


def dockerfile_limit() -> int:
    """How many build-context files are followed one by one (past it, a periodic check finds changes)."""
    from devcontainer_builder.workspace import dockerfile  # noqa: PLC0415

    return dockerfile.MAX_FILES
