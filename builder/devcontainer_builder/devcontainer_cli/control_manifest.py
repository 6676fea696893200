"""The devcontainer CLI's control manifest, refreshed with a bound before the CLI runs.

Every `devcontainer up` reads containers.dev's control manifest (disallowed features, feature
advisories) from a cache file it refreshes once it is five minutes old - with no timeout. Behind a
proxy or firewall that holds connections open instead of refusing them, that request never ends, and
neither would `up`, nor the fallback after it. So the builder refreshes the cache itself, bounded,
the way the CLI would: a fetched manifest is written for the CLI to use; when the fetch fails the
cached one is kept (its time touched) or the CLI's own empty default written - what the CLI does
after a failed fetch - and the CLI, finding a fresh cache, skips its own request.

The CLI's cache is under $TMPDIR, which a pod loses at every start: the builder keeps its own copy in the
state dir. With a copy known, no run waits for containers.dev: the copy is given to the CLI and the fetch
goes on beside the build, updating both for the next run (a pod whose DNS never answers would otherwise
spend the whole bound of every start on it).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import stat
import time
from collections.abc import Mapping
from typing import Any

from devcontainer_builder.log import Log
from devcontainer_builder.system.files import write_atomic
from devcontainer_builder.system.proc import Pending

URL = "https://containers.dev/static/devcontainer-control-manifest.json"
FILE_NAME = "control-manifest.json"
CLI_MAX_AGE = 300.0  # the CLI refetches a cache older than this
REFRESH_AGE = 240.0  # refresh a little early: the CLI reads it a few seconds after us
CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = 5.0
DEADLINE = 10.0  # for the whole fetch, however slowly a server trickles bytes
EMPTY: dict[str, list[Any]] = {"disallowedFeatures": [], "featureAdvisories": []}
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def cli_folder(env: Mapping[str, str]) -> str | None:
    """The CLI's own folder for this user (its control-manifest cache, its feature build contexts): Node's
    os.tmpdir() joined with devcontainercli-<user name>. None when the user has no name (the CLI cannot
    run either)."""
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return None
    tmp = env.get("TMPDIR") or env.get("TMP") or env.get("TEMP") or "/tmp"  # noqa: S108 - the CLI's own place
    if len(tmp) > 1 and tmp.endswith("/"):
        tmp = tmp[:-1]
    return os.path.join(tmp, f"devcontainercli-{user}")


def cache_path(env: Mapping[str, str]) -> str | None:
    """Where the CLI, run with `env` as this user, keeps the manifest."""
    folder = cli_folder(env)
    return os.path.join(folder, FILE_NAME) if folder else None


def missing_after_run(env: Mapping[str, str]) -> str:
    """After a CLI run that found a fresh cache: "" when the cache file is still where the builder puts
    it, else a sentence saying the CLI must keep it elsewhere now (a CLI upgrade moved it), so the bounded
    refresh no longer protects the build from a proxy that holds containers.dev open."""
    path = cache_path(env)
    if path is None or os.path.isfile(path):
        return ""
    return (
        f"the devcontainer CLI's control manifest cache is not at {path} after the CLI ran: this CLI version keeps "
        "it elsewhere, so the builder's bounded refresh does not apply and a proxy that holds containers.dev open "
        "can hang the build until DEVCONTAINER_BUILD_TIMEOUT. Pin the CLI the builder was tested with."
    )


def _fetch() -> dict[str, Any]:
    import requests  # noqa: PLC0415 - needed once in five minutes: every other `up` starts faster

    # proxies and NO_PROXY come from the environment, as the CLI takes them; certificates from the
    # system store (Node's bundled roots are the same Mozilla set) unless REQUESTS_CA_BUNDLE names one
    verify = os.environ.get("REQUESTS_CA_BUNDLE") or (SYSTEM_CA_BUNDLE if os.path.exists(SYSTEM_CA_BUNDLE) else True)
    response = requests.get(
        URL,
        timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
        headers={"user-agent": "devcontainers-vscode", "accept": "application/json"},
        verify=verify,
    )
    response.raise_for_status()
    data = response.json()
    if not isinstance(data, dict):
        raise ValueError("the manifest is not a JSON object")
    return data


def _foreign_folder(folder: str) -> str:
    """Why the builder must not write in the CLI's folder, or "": in a shared /tmp another user can create
    devcontainercli-<our name> first, as a link to somewhere of their choosing, or as their own folder."""
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return ""
    except OSError as err:
        return f"{folder}: {err.strerror}"
    if not stat.S_ISDIR(info.st_mode):
        return f"{folder} is not a folder (a symbolic link?)"
    if info.st_uid != os.geteuid():
        return f"{folder} belongs to another user (uid {info.st_uid})"
    return ""


def _known(path: str) -> dict[str, Any] | None:
    """A manifest written before (the CLI's cache or the builder's copy), or None."""
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(path: str, data: dict[str, Any]) -> None:
    """A manifest as the CLI writes its cache."""
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def _fetch_and_keep(paths: tuple[str, ...]) -> dict[str, Any]:
    data = _fetch()
    for path in paths:
        with contextlib.suppress(OSError):  # a copy for later runs: they fetch again
            _write(path, data)
    return data


def refresh(log: Log, env: Mapping[str, str], keep: str = "") -> str:
    """Make sure the CLI finds a fresh manifest and will not fetch one itself; returns what was done:
    "fresh", "fetched", "kept" (not fetched in time, a copy known before given to the CLI), "default"
    (fetch failed, empty one written) or "skipped" (no cache path, or it cannot be written: the CLI is
    left to itself). `keep`: the builder's own copy, which outlives the CLI's cache."""
    path = cache_path(env)
    if path is None:
        return "skipped"
    refusal = _foreign_folder(os.path.dirname(path))
    if refusal:
        log.warn(f"not refreshing the devcontainer CLI's control manifest: {refusal}")
        return "skipped"
    try:
        age = time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        age = None
    except OSError:
        return "skipped"
    if age is not None and 0 <= age < REFRESH_AGE:
        return "fresh"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError as err:
        log.debug(f"cannot write the devcontainer CLI's control manifest cache {path}: {err}")
        return "skipped"
    known = (_known(path) if age is not None else None) or (_known(keep) if keep else None)
    targets = (path, keep) if keep else (path,)
    try:
        if known is not None:
            # the copy now; the fetch finishes beside the build (or not: a daemon thread) for the next run
            _write(path, known)
            Pending(_fetch_and_keep, targets)
            log.debug("gave the devcontainer CLI the control manifest known before; it is fetched beside the build")
            return "kept"
        fetch = Pending(_fetch_and_keep, targets)
        if fetch.done(DEADLINE):  # else left to finish in the background; nobody waits for it
            try:
                fetch.result()  # written by the fetch, with the builder's copy
                log.debug(f"fetched the devcontainer CLI's control manifest from {URL}")
                return "fetched"
            except Exception as err:  # any failure is the CLI's "failed to fetch": carry on without it
                why = f"{type(err).__name__}: {err}"
        else:
            why = f"no answer within {DEADLINE:.0f} s"
        for target in targets:
            _write(target, EMPTY)
    except OSError as err:
        log.debug(f"cannot write the devcontainer CLI's control manifest cache {path}: {err}")
        return "skipped"
    log.info(
        f"containers.dev's control manifest could not be fetched ({why}); using an empty one, as the devcontainer "
        "CLI would, so that the CLI does not wait on it"
    )
    return "default"
