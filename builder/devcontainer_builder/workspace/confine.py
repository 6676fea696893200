"""The repository builds only what is inside it.

A config, its Dockerfile, its build context, its local features and its compose files must all resolve
inside the repository, symbolic links included: `"context": "../../.."` would send the host's files
(and other workspaces' state) to the engine, and a `.devcontainer` that is a link to a host folder
would build someone else's config. A refusal is a BuildFailed (step `config`) naming the path; the
workspace then comes up on the fallback image.
"""

from __future__ import annotations

import os
from typing import Any

from devcontainer_builder.errors import BuildFailed
from devcontainer_builder.workspace import layout


def inside(root: str, path: str) -> bool:
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip("/") + "/")


def require_inside(root: str, path: str, what: str) -> str:
    """path's real location, when it is inside root; else BuildFailed naming both."""
    real = os.path.realpath(path)
    if inside(root, path):
        return real
    shown = os.path.relpath(path, root)
    via = (
        " through a symbolic link"
        if os.path.realpath(os.path.dirname(path)) != os.path.dirname(os.path.abspath(path)) or os.path.islink(path)
        else ""
    )
    raise BuildFailed(
        f"{what} {shown} resolves to {real}{via}, outside the repository ({root}). The builder builds only what "
        "is inside the repository: keep the file there, or point the config at a copy inside it.",
        step="config",
    )


def check_links(root: str, folder: str, what: str) -> None:
    """No symbolic link under folder may lead outside root (its target could be copied into an image)."""
    for path in layout.walk(folder):
        if os.path.islink(path):
            require_inside(root, path, f"{what}: the link")


def check_config(workspace: str, config_path: str, data: dict[str, Any]) -> None:
    """Everything the config makes the CLI read from the host stays inside the repository."""
    require_inside(workspace, config_path, "the config")
    dockerfile = layout.dockerfile_of(config_path, data)
    if dockerfile:
        require_inside(workspace, dockerfile, "the Dockerfile")
        require_inside(workspace, layout.context_of(config_path, data), "the build context")
    for feature in layout.local_features(config_path, data):
        require_inside(workspace, feature, "the local feature")
        if os.path.isdir(feature):
            check_links(workspace, feature, "the local feature")
    for compose in layout.compose_files(config_path, data):
        require_inside(workspace, compose, "the compose file")
    folder = layout.config_folder(config_path)
    if folder:
        check_links(workspace, folder, "the config folder")
