"""The two places where the devcontainer CLI's Podman command lines fail where Docker's would not, fixed
by the guard (policy.py) after its checks. Like policy.py it imports only os and sys (and subprocess,
only when it has to ask Podman).

- `--userns=keep-id`: the CLI adds it for a non-root remote user; rootful Podman refuses it ("keep-id
  is only supported in rootless mode"). Run by root, the container's uids are the host's, as with
  Docker, so there is nothing to keep: the option goes.
- `BASE_IMAGE=localhost/NAME`: to give the remote user the workspace owner's uid the CLI builds
  FROM its image, prefixed with `localhost/` for Podman when the name has no registry (it assumes a
  local build; devcontainers/cli#804). An image pulled under a short name (`node:20`,
  `codercom/enterprise-base:ubuntu`) is not there, and Podman tries to pull it from a registry called
  localhost. When `localhost/NAME` is not in the store but NAME is, the build starts FROM NAME's image ID.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

KEEP_ID = "--userns=keep-id"
BASE_IMAGE_ARG = "BASE_IMAGE=localhost/"
QUERY_TIMEOUT = 60.0


def without_keep_id(args: list[str], start: int, image_at: int) -> list[str]:
    """args with --userns=keep-id[:...] dropped from the run options (args[start:image_at])."""
    kept = [arg for arg in args[start:image_at] if not (arg == KEEP_ID or arg.startswith(KEEP_ID + ":"))]
    return [*args[:start], *kept, *args[image_at:]]


def image_id(podman: str, name: str) -> str:
    """The ID of a local image, or "" when the store has none of that name."""
    try:
        result = subprocess.run(
            [podman, "image", "inspect", "--format", "{{.Id}}", name],
            capture_output=True,
            text=True,
            timeout=QUERY_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def local_base_image(args: Sequence[str], find: Callable[[str], str]) -> list[str]:
    """args with `--build-arg BASE_IMAGE=localhost/NAME` pointed at NAME's image ID when only NAME is
    in the store (`find` answers an image's ID, or "")."""
    out = list(args)
    for i in range(1, len(out)):
        if out[i - 1] != "--build-arg" or not out[i].startswith(BASE_IMAGE_ARG):
            continue
        qualified = out[i].partition("=")[2]
        if find(qualified):
            continue
        found = find(qualified[len("localhost/") :])
        if found:
            out[i] = f"BASE_IMAGE={found}"
    return out
