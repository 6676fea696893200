"""The environment of every child process, built from an allow-list - never the builder's own
environment minus a deny-list.

A repository's devcontainer.json reads the devcontainer CLI's environment through ${localEnv:...},
and its initializeCommand inherits it: anything in it can be copied into the container. So children
get only what their tool needs to work (PATH, locale, proxies, CA bundles, how to reach the engine)
plus the run marker (reaper.py). Secrets are never in an allow-list; git gets its credentials from
git.py, the agent its token on stdin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from devcontainer_builder.system import reaper

BASE = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
)
NETWORK = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
)
ENGINE = (
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "DOCKER_BUILDKIT",
    "BUILDKIT_PROGRESS",
    "BUILDX_BUILDER",
    # Podman, rootless included
    "CONTAINER_HOST",
    "CONTAINER_CONNECTION",
    "CONTAINERS_CONF",
    "CONTAINERS_STORAGE_CONF",
    "CONTAINERS_REGISTRIES_CONF",
    "REGISTRY_AUTH_FILE",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "DBUS_SESSION_BUS_ADDRESS",
)


def allowed(environ: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    return {name: environ[name] for name in names if name in environ}


def for_engine(environ: Mapping[str, str], workspace: str) -> dict[str, str]:
    """docker / podman and the devcontainer CLI: reach the engine and registries, nothing else."""
    env = allowed(environ, (*BASE, *NETWORK, *ENGINE))
    env[reaper.MARKER] = reaper.marker(workspace)
    return env


def for_git(environ: Mapping[str, str], workspace: str) -> dict[str, str]:
    """git (git.py adds its private HOME and configuration): reach the remote, nothing else."""
    env = allowed(environ, (*BASE, *NETWORK))
    env[reaper.MARKER] = reaper.marker(workspace)
    return env


def minimal(environ: Mapping[str, str]) -> dict[str, str]:
    """A local tool that needs nothing but PATH and a locale."""
    return allowed(environ, ("PATH", "LANG", "LC_ALL"))
