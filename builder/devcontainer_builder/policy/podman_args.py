"""Where the devcontainer CLI's Podman command lines fail, or do less, than Docker's would: fixed by the
guard (rules.py) after its checks. Like rules.py it imports only the standard library's smallest parts
(subprocess only when it has to ask Podman).

- `--userns=keep-id`: the CLI adds it for a non-root remote user; rootful Podman refuses it ("keep-id
  is only supported in rootless mode"). Run by root, the container's uids are the host's, as with
  Docker, so there is nothing to keep: the option goes.
- `BASE_IMAGE=localhost/NAME`: to give the remote user the workspace owner's uid the CLI builds
  FROM its image, prefixed with `localhost/` for Podman when the name has no registry (it assumes a
  local build; devcontainers/cli#804). An image pulled under a short name (`node:20`,
  `codercom/enterprise-base:ubuntu`) is not there, and Podman tries to pull it from a registry called
  localhost. When `localhost/NAME` is not in the store but NAME is, the build starts FROM NAME's image ID.
- A registry layer cache: buildx's `--cache-from/--cache-to type=registry,ref=HOST/REPO:TAG` is written
  for Podman (buildah) as the repository alone (`HOST/REPO`, where buildah keeps one tag per cached
  layer); a kind of cache buildah has not (local, gha, inline, ...) is dropped, said on stderr. And the
  builder's DEVCONTAINER_CACHE_TO, which the CLI passes only through buildx (Podman 4 has none), is given
  to the image build itself - not to the CLI's own small build that changes the remote user's uid.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

KEEP_ID = "--userns=keep-id"
CACHE_OPTIONS = ("--cache-from", "--cache-to")
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


def cache_repository(value: str) -> str:
    """The repository a cache option names, as buildah takes it; "" for a kind of cache buildah has not."""
    if "=" in value:
        fields = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
        if fields.get("type", "registry") != "registry" or not fields.get("ref"):
            return ""
        value = fields["ref"]
    value = value.split("@", 1)[0]
    slash = value.rfind("/")
    colon = value.rfind(":")
    return value[:colon] if colon > slash else value


def registry_cache(args: list[str], start: int, cache_to: str, warn: Callable[[str], None]) -> list[str]:
    """args (a `build`, its options from args[start]) with cache options written for buildah, and
    cache_to (the builder's own) added to an image build that has none."""
    out = list(args[:start])
    has_cache_to = False
    tags = []
    i = start
    while i < len(args):
        arg = args[i]
        name, sep, inline = arg.partition("=")
        if name in CACHE_OPTIONS and (sep or i + 1 < len(args)):
            value = inline if sep else args[i + 1]
            i += 1 if sep else 2
            repository = cache_repository(value)
            if not repository:
                warn(f"Podman's builds (buildah) cannot use the cache {value!r} ({name}): only a registry; dropped")
                continue
            has_cache_to = has_cache_to or name == "--cache-to"
            out += [name, repository]
            continue
        if arg in ("-t", "--tag") and i + 1 < len(args):
            tags.append(args[i + 1])
        elif arg.startswith(("--tag=", "-t=")):
            tags.append(arg.partition("=")[2])
        out.append(arg)
        i += 1
    own = cache_repository(cache_to) if cache_to else ""
    if own and not has_cache_to and not any(tag.endswith(("-uid", "-uid:latest")) for tag in tags):
        out[start:start] = ["--cache-to", own]
    return out
