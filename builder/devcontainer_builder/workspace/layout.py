"""Where a devcontainer config's parts are: its Dockerfile, build context, folder, local features.

Read from the parsed config; nothing here checks or reads the files themselves (confine.py and
fingerprint.py do)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from devcontainer_builder.errors import BuildFailed

WALK_LIMIT = 50_000  # entries looked at in one folder tree (a config folder, a local feature)


def build_section(data: dict[str, Any]) -> dict[str, Any]:
    build = data.get("build")
    return build if isinstance(build, dict) else {}


def dockerfile_of(config_path: str, data: dict[str, Any]) -> str | None:
    """The absolute path of the config's Dockerfile, or None for an image or compose config."""
    dockerfile = build_section(data).get("dockerfile") or data.get("dockerFile")
    return os.path.join(os.path.dirname(config_path), dockerfile) if isinstance(dockerfile, str) else None


def context_of(config_path: str, data: dict[str, Any]) -> str:
    context = build_section(data).get("context") or data.get("context") or "."
    folder = os.path.dirname(config_path)
    return os.path.normpath(os.path.join(folder, context if isinstance(context, str) else "."))


def config_folder(config_path: str) -> str | None:
    """The config's own folder when it is .devcontainer or .devcontainer/<name> (not the repository root)."""
    folder = os.path.dirname(config_path)
    if os.path.basename(folder) == ".devcontainer" or os.path.basename(os.path.dirname(folder)) == ".devcontainer":
        return folder
    return None


def local_features(config_path: str, data: dict[str, Any]) -> list[str]:
    """Absolute paths of the local features (keys that are paths) a config uses."""
    features = data.get("features")
    if not isinstance(features, dict):
        return []
    folder = os.path.dirname(config_path)
    return [os.path.normpath(os.path.join(folder, key)) for key in features if key.startswith(("./", "../", "/"))]


def compose_files(config_path: str, data: dict[str, Any]) -> list[str]:
    value = data.get("dockerComposeFile")
    names = (
        [value]
        if isinstance(value, str)
        else [item for item in value if isinstance(item, str)]
        if isinstance(value, list)
        else []
    )
    return [os.path.normpath(os.path.join(os.path.dirname(config_path), name)) for name in names]


def walk(folder: str) -> Iterator[str]:
    """Every file (and link) under folder, without following links into other folders; bounded."""
    seen = 0
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            seen += 1
            if seen > WALK_LIMIT:
                raise BuildFailed(
                    f"{folder} holds more than {WALK_LIMIT} files; a devcontainer folder is small. Move data out "
                    "of it.",
                    step="config",
                )
            yield os.path.join(root, name)
