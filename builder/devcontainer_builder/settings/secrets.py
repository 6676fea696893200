"""Secrets off the process environment, from the first instruction on.

A template hands the builder its secrets (GH_TOKEN, CODER_AGENT_TOKEN, an SSH key, a password in the
repository URL) as environment variables. A process's initial environment stays readable in
/proc/<pid>/environ for its whole life - deleting the variables in Python does not clear it - and a
repository's initializeCommand runs beside the builder and can walk up to it. So before anything else
the builder re-executes itself without those variables and receives their values on a pipe; the new
process's /proc/<pid>/environ holds no secret. The same pipe carries secrets from `serve` to the `up`
it starts for a rebuild.

The values then live only in the builder's memory, which the process protects by being non-dumpable:
another process of the same user can no longer read /proc/<pid>/mem or environ, nor ptrace it.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Mapping, MutableMapping

FD_VAR = "DEVCONTAINER_BUILDER_SECRETS_FD"
REPOSITORY_VAR = "DEVCONTAINER_REPOSITORY"
PIPE_SIZE = 1024 * 1024  # F_SETPIPE_SZ: room for every secret at once, so the writer never blocks
_F_SETPIPE_SZ = 1031
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36

# what this process received; read by the command line when it loads settings
received: dict[str, str] = {}


def secret_names() -> frozenset[str]:
    from devcontainer_builder.settings.options import SECRET_ENV  # noqa: PLC0415 - light start-up path

    return SECRET_ENV


def carries_password(url: str) -> bool:
    """A repository URL with a password in it (https://user:token@host/...) is a secret by value."""
    try:
        return bool(urllib.parse.urlsplit(url.strip()).password)
    except ValueError:
        return False


def in_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The secrets present in an environment: secret settings, and a repository URL with a password."""
    found = {name: environ[name] for name in secret_names() if environ.get(name)}
    if carries_password(environ.get(REPOSITORY_VAR, "")):
        found[REPOSITORY_VAR] = environ[REPOSITORY_VAR]
    return found


def handover(values: Mapping[str, str]) -> int:
    """A pipe holding the values as JSON; returns its read end, inheritable, for a child to receive."""
    read_end, write_end = os.pipe()
    data = json.dumps(dict(values)).encode()
    try:
        import fcntl  # noqa: PLC0415

        fcntl.fcntl(write_end, _F_SETPIPE_SZ, max(PIPE_SIZE, len(data) + 1))
    except OSError:
        pass  # the default 64 KiB holds every realistic set of secrets
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(write_end, view) :]
    finally:
        os.close(write_end)
    os.set_inheritable(read_end, True)
    return read_end


def receive(environ: MutableMapping[str, str]) -> dict[str, str]:
    """Read the secrets a parent handed over (and forget where they came from); {} when none."""
    number = environ.pop(FD_VAR, "")
    os.unsetenv(FD_VAR)
    if not number.isdigit():
        return {}
    fd = int(number)
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return {}
    finally:
        try:  # noqa: SIM105 - contextlib costs an import on the start-up path
            os.close(fd)
        except OSError:
            pass
    try:
        values = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in values.items()} if isinstance(values, dict) else {}


def clean_environment(environ: Mapping[str, str], secrets: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in environ.items() if key not in secrets}


def _prctl(option: int, value: int) -> bool:
    import ctypes  # noqa: PLC0415 - once per process

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def protect_process() -> None:
    """Non-dumpable: other processes of this user cannot read this one's memory or environment. And a
    child subreaper: whatever a child leaves behind (a daemon a hook started) becomes this process's
    child, so it can be found and stopped when the step that started it ends."""
    _prctl(_PR_SET_DUMPABLE, 0)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
