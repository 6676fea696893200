"""Validation of the two git inputs a user controls: the repository URL and the branch name.

Both end up as arguments of git commands, so anything git could read as an option, a remote helper
(`ext::` runs arbitrary commands) or a malformed ref is refused here, before any command runs.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass

from devcontainer_builder.system import environment, proc

ALLOWED_SCHEMES = ("https", "http", "ssh", "git", "file")
_TRANSPORT_HELPER = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SCP_LIKE = re.compile(r"^(?:[^@/\s]+@)?[^:/\s]+:(?!//)")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Repository:
    url: str  # what git is given: no user name or password in it
    kind: str  # https, http, ssh, git, file, scp or local
    name: str  # folder name for the default workspace folder
    username: str = ""
    password: str = ""  # from https://user:password@host/...: handled like GH_TOKEN, never stored

    @property
    def credential_scope(self) -> str:
        """scheme://host[:port]: the only place a token may be sent."""
        parts = urllib.parse.urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    def __str__(self) -> str:
        return self.url


NO_REPOSITORY = Repository(url="", kind="none", name="workspace")  # the setting is unset
BRANCH_MAX = 1024  # git itself allows longer names, but no filesystem stores a loose ref that long


# a DNS name or an IP address (urlsplit gives an IPv6 address without its brackets): no spaces, no quotes
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*|\[?[0-9A-Fa-f:.]+\]?")


def parse_repository(value: str) -> Repository:
    value = value.strip()
    if not value:
        raise ValueError("is empty")
    if any(ord(c) < 32 or c == "\x7f" for c in value):
        raise ValueError("contains control characters (newlines, tabs, ...)")
    if value.startswith("-"):
        raise ValueError(f"starts with '-' ({value!r}): git would read it as an option such as --upload-pack")
    if _TRANSPORT_HELPER.match(value):
        raise ValueError(
            f"uses a remote-helper transport ({value.split('::', 1)[0]}::), which can run arbitrary commands; "
            "use an https, ssh or file URL"
        )
    scheme_match = _SCHEME.match(value)
    if scheme_match:
        scheme = scheme_match.group(1).lower()
        if scheme not in ALLOWED_SCHEMES:
            raise ValueError(f"uses the {scheme}:// transport; allowed are {', '.join(ALLOWED_SCHEMES)}")
        return _parse_url(value, scheme)
    if value.startswith(("/", "./", "../", "~")) or value in (".", ".."):
        path = os.path.abspath(os.path.expanduser(value))
        return Repository(url=path, kind="local", name=_folder_name(path))
    if _SCP_LIKE.match(value):
        host, _, path = value.partition(":")
        if host.split("@")[-1].startswith("-"):
            raise ValueError(f"has a host starting with '-' ({value!r})")
        if not _HOST.fullmatch(host.split("@")[-1]):
            raise ValueError(f"has a host that is not a host name or an IP address ({host.split('@')[-1]!r})")
        return Repository(url=value, kind="scp", name=_folder_name(path))
    raise ValueError(
        f"is not a git URL or an absolute path ({value!r}); use https://host/org/repo.git, "
        "git@host:org/repo.git, file:///path or /path"
    )


def _parse_url(value: str, scheme: str) -> Repository:
    parts = urllib.parse.urlsplit(value)
    if scheme != "file" and not parts.hostname:
        raise ValueError(f"has no host ({value!r})")
    if parts.hostname and parts.hostname.startswith("-"):
        raise ValueError(f"has a host starting with '-' ({value!r})")
    if parts.hostname and not _HOST.fullmatch(parts.hostname):
        raise ValueError(f"has a host that is not a host name or an IP address ({parts.hostname!r})")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"has a port that is not a number from 1 to 65535 ({value!r})") from None
    username = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    if scheme == "ssh" and username:
        netloc = f"{parts.username}@{netloc}"
        username = ""
    if password and scheme == "ssh":
        raise ValueError("has a password in an ssh URL; use an SSH key (DEVCONTAINER_SSH_PRIVATE_KEY)")
    clean = urllib.parse.urlunsplit((scheme, netloc, parts.path, parts.query, ""))
    return Repository(url=clean, kind=scheme, name=_folder_name(parts.path), username=username, password=password)


def _folder_name(path: str) -> str:
    base = path.rstrip("/").rsplit("/", 1)[-1]
    if base.endswith(".git"):
        base = base[:-4]
    base = _NAME_CHARS.sub("-", base).strip(".-")
    return base or "workspace"


def validate_branch(value: str) -> str:
    value = value.strip()
    if value.startswith("refs/heads/"):
        value = value[len("refs/heads/") :]
    if not value:
        raise ValueError("is empty")
    if len(value.encode()) > BRANCH_MAX or any(len(part.encode()) > 255 for part in value.split("/")):
        raise ValueError(
            f"is {len(value.encode())} bytes long; branch names are at most {BRANCH_MAX} bytes, 255 per '/' part"
        )
    if value in ("HEAD", "FETCH_HEAD", "ORIG_HEAD", "MERGE_HEAD") or any(ord(c) < 32 for c in value):
        raise ValueError(f"is not a branch name ({value[:60]!r})")
    if value.startswith("-"):
        raise ValueError(f"starts with '-' ({value!r}): git would read it as an option")
    if "@{" in value or value == "@":
        raise ValueError(f"is not a branch name ({value!r})")
    # git is the authority on what a ref may be called; refs/heads/ avoids the @{-1} expansion
    # that `check-ref-format --branch` does.
    result = proc.run(
        ["git", "check-ref-format", f"refs/heads/{value}"], timeout=10, env=environment.minimal(os.environ), cwd="/"
    )
    if result.returncode != 0:
        raise ValueError(
            f"is not a valid branch name ({value[:200]!r}): git refuses names with spaces, '..', '~', '^', ':', "
            "'?', '*', '[', a trailing '.lock' or '/', and similar"
        )
    return value
