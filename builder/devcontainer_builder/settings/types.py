"""How each setting's text becomes a value: click parameter types, so the same conversion serves an
environment variable and a flag, and `--help` shows each one's form.

Every type is bounded: numbers have a range, text a length, paths PATH_MAX. A value out of bounds is
an input error (exit 2) naming the setting, never an overflow or a silent reinterpretation.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import urllib.parse
from typing import Any

import click

from devcontainer_builder.settings import gitref

PATH_MAX = 4096
NAME_MAX = 255
TEXT_MAX = 4096
SECRET_MAX = 64 * 1024  # an SSH key, a token: far below; a pipe's buffer holds this much
URL_MAX = 2048


class Number(click.IntRange):
    """A whole number from `low` to `high`, written in ASCII digits only: int() would also take " 5",
    "1_000" and Arabic-Indic digits, which no admin means. Its name shows the bounds in --help."""

    def __init__(self, low: int, high: int) -> None:
        super().__init__(low, high)
        self.name = f"{low}-{high}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not re.fullmatch(r"[0-9]{1,19}", value):
            self.fail(f"{value!r} is not a whole number written with the digits 0-9", param, ctx)
        return super().convert(value, param, ctx)


def reject(value: str, problem: str) -> None:
    """Raise the error click reports for a bad parameter (load() names the variable or flag)."""
    raise click.BadParameter(problem, param_hint=repr(value) if len(value) < 80 else None)


class Text(click.ParamType[str]):
    """One line of text, no NUL, bounded."""

    name = "text"

    def __init__(self, max_length: int = TEXT_MAX) -> None:
        self.max_length = max_length

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if "\x00" in text or "\n" in text or "\r" in text:
            self.fail("must be a single line of text", param, ctx)
        if len(text) > self.max_length:
            self.fail(f"is {len(text)} characters long; at most {self.max_length} are accepted", param, ctx)
        return text


class UserName(Text):
    """A user name for HTTP Basic authentication: one line, and no ':' (it ends the name there)."""

    name = "name"

    def __init__(self) -> None:
        super().__init__(256)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = super().convert(value, param, ctx)
        if not text.strip() or ":" in text or any(c.isspace() or ord(c) < 32 for c in text):
            self.fail(f"must be a user name without ':', spaces or control characters, got {text!r}", param, ctx)
        return text


class Secret(Text):
    """A secret: like text, multi-line allowed (an SSH key), never echoed in a message."""

    name = "secret"

    def __init__(self) -> None:
        super().__init__(SECRET_MAX)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if "\x00" in text or len(text) > self.max_length:
            self.fail(f"must be text without NUL bytes, at most {self.max_length} bytes", param, ctx)
        return text


class PageKey(Secret):
    """The key in the status page's address: long enough not to be guessed, and safe in a URL's path."""

    name = "key"
    PATTERN = re.compile(r"[A-Za-z0-9_-]{32,128}")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = super().convert(value, param, ctx)
        if text and not self.PATTERN.fullmatch(text):
            self.fail("must be 32 to 128 letters, digits, '-' or '_' (the templates give a SHA-256 in hex)", param, ctx)
        return text


class AbsolutePath(click.ParamType[str]):
    name = "path"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if len(str(value).encode()) >= PATH_MAX:
            self.fail(f"is longer than PATH_MAX ({PATH_MAX} bytes)", param, ctx)
        text = Text(PATH_MAX).convert(value, param, ctx).strip()
        if not os.path.isabs(text):
            self.fail(f"must be an absolute path, got {text!r}", param, ctx)
        # normpath keeps a leading `//` (POSIX leaves its meaning to the system; on Linux it is `/`), and
        # dirname("//") is "//": every walk up to "/" would loop for ever
        normal = "/" + os.path.normpath(text).lstrip("/")
        long_parts = [part for part in normal.split("/") if len(part.encode()) > NAME_MAX]
        if long_parts:
            self.fail(f"has a path component longer than {NAME_MAX} bytes ({long_parts[0][:40]}...)", param, ctx)
        return normal


# the host's own folders: a workspace here would give the repository the host (the devcontainer mounts it
# read-write, and its user has sudo)
SYSTEM_TREES = ("/etc", "/usr", "/proc", "/sys", "/dev", "/boot", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
                "/libx32", "/run", "/var/lib", "/var/run", "/var/log", "/var/cache", "/var/spool", "/var/mail",
                "/var/backups", "/snap")  # fmt: skip
SYSTEM_ROOTS = ("/", "/var", "/home", "/root", "/tmp", "/var/tmp", "/srv", "/opt", "/mnt", "/media")  # noqa: S108


def system_folder(path: str, roots: tuple[str, ...] = ()) -> str:
    """What makes path (as written, and where its links lead) a folder of the host or of another user
    rather than one a workspace may have; "" for a folder of its own. `roots` are more folders that hold
    others' (the workspaces' root, the state dir's parents)."""
    for where in dict.fromkeys((os.path.normpath(path), os.path.realpath(path))):
        if where in SYSTEM_ROOTS or where in roots:
            return "a folder that holds others'"
        tree = next((top for top in SYSTEM_TREES if where == top or where.startswith(top + "/")), "")
        if tree:
            return f"a system folder (under {tree})"
        home = _home_of_another(where)
        if home:
            return f"inside {home[1]}, the home of the user {home[0]}"
    return ""


# where no state dir goes; /var/lib/<name> and /run/<name> are where services keep theirs
OS_TREES = ("/etc", "/usr", "/proc", "/sys", "/dev", "/boot", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


def state_folder(path: str) -> str:
    """What makes path (as written, and where its links lead) no place for the builder's state; "" if none."""
    for where in dict.fromkeys((os.path.normpath(path), os.path.realpath(path))):
        if where in SYSTEM_ROOTS:
            return "a folder that holds others'"
        tree = next((top for top in OS_TREES if where == top or where.startswith(top + "/")), "")
        if tree:
            return f"a system folder (under {tree})"
    return ""


def _home_of_another(path: str) -> tuple[str, str] | None:
    import pwd  # noqa: PLC0415 - only a workspace folder is checked against the users

    me = os.geteuid()
    for user in pwd.getpwall():
        home = os.path.normpath(user.pw_dir or "/")
        if user.pw_uid != me and home != "/" and (path == home or path.startswith(home + "/")):
            return user.pw_name, home
    return None


class Folder(AbsolutePath):
    """A folder the builder will create or use: not a file, and no file where a parent should be."""

    name = "folder"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        path = super().convert(value, param, ctx)
        probe = path
        while True:
            if os.path.lexists(probe) and not os.path.isdir(probe):
                where = "is" if probe == path else f"lies under {probe}, which is"
                self.fail(f"{path} {where} a file, not a folder", param, ctx)
            parent = os.path.dirname(probe)
            if parent == probe:  # the root, however spelled
                return path
            probe = parent


class ExistingFile(AbsolutePath):
    name = "file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        path = super().convert(value, param, ctx)
        if not os.path.isfile(path):
            self.fail(f"{path} does not exist or is not a file", param, ctx)
        if not os.access(path, os.R_OK):
            self.fail(f"{path} is not readable by the builder (uid {os.getuid()})", param, ctx)
        return path


class CertificateBundle(click.ParamType[str]):
    """CA certificates in PEM: a file's path, or the PEM text itself (a template's variable); at most
    4 MiB, at least one certificate."""

    name = "pem"
    limit = 4 * 1024 * 1024

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if text.lstrip().startswith("-----BEGIN"):
            content = text.encode("utf-8", "replace")
        else:
            path = ExistingFile().convert(text, param, ctx)
            with open(path, "rb") as handle:
                content = handle.read(self.limit + 1)
            text = path
        if len(content) > self.limit or b"-----BEGIN CERTIFICATE-----" not in content:
            self.fail(
                "is not a PEM bundle of CA certificates (-----BEGIN CERTIFICATE-----), as a file or as text", param, ctx
            )
        return text


class ConfigPath(click.ParamType[str]):
    name = "path"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = Text(PATH_MAX).convert(value, param, ctx).strip()
        if os.path.isabs(text) or text.startswith("~"):
            self.fail(f"must be a path inside the repository, relative to its root, got {text!r}", param, ctx)
        normal = os.path.normpath(text)
        if normal == ".." or normal.startswith("../"):
            self.fail(f"must stay inside the repository, got {text!r}", param, ctx)
        if os.path.basename(normal) not in ("devcontainer.json", ".devcontainer.json"):
            self.fail(
                "must name a file called devcontainer.json or .devcontainer.json (the devcontainer CLI refuses "
                f"other names), got {text!r}",
                param,
                ctx,
            )
        return normal


# an image reference as the engines parse it (distribution/reference): [registry[:port]/]path[:tag][@digest],
# the path lower-case
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_REGISTRY = rf"(?:{_LABEL}(?:\.{_LABEL})*(?::[0-9]{{1,5}})?/)"
_IMAGE = re.compile(
    rf"{_REGISTRY}?{_PATH_PART}(?:/{_PATH_PART})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)


class Image(click.ParamType[str]):
    name = "image"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = Text(512).convert(value, param, ctx).strip()
        if not _IMAGE.fullmatch(text):
            self.fail(f"must be an image reference such as debian:trixie-slim or registry.example:5000/team/app:1 "
                      f"(the name in lower case), got {text!r}", param, ctx)  # fmt: skip
        return text


class Words(click.ParamType[tuple[str, ...]]):
    """Space-separated words, none of which may look like a flag."""

    name = "words"

    def __init__(self, limit: int = 32) -> None:
        self.limit = limit

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        if isinstance(value, tuple):
            value = " ".join(value)
        words = tuple(Text().convert(value, param, ctx).split())
        if len(words) > self.limit:
            self.fail(f"has {len(words)} entries; at most {self.limit} are accepted", param, ctx)
        for word in words:
            if word.startswith("-"):
                self.fail(f"{word!r} starts with '-': it would be read as a flag", param, ctx)
        return words


HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_NAME = re.compile(rf"{HOST_LABEL}(?:\.{HOST_LABEL})*")


class HostNames(Words):
    """Space-separated host names as a Host header carries them: DNS names or IP addresses, nothing else."""

    name = "host names"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        words = super().convert(value, param, ctx)
        for word in words:
            if not _is_ip(word) and not (len(word) <= 253 and HOST_NAME.fullmatch(word)):
                self.fail(
                    f"{word!r} is not a host name: give DNS names (dev.example.com) or IP addresses, without "
                    "wildcards, schemes, ports or paths",
                    param,
                    ctx,
                )
        return words


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class CacheTo(click.ParamType[str]):
    name = "ref"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        refs = Words().convert(value, param, ctx)
        if len(refs) > 1:
            self.fail("takes one cache destination (the devcontainer CLI accepts a single --cache-to)", param, ctx)
        return refs[0] if refs else ""


class DockerPath(click.ParamType[str]):
    name = "path"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = Text(PATH_MAX).convert(value, param, ctx).strip()
        if text and os.path.basename(text) not in ("docker", "podman"):
            self.fail(f"must be docker or podman (or a path to one of them), got {text!r}", param, ctx)
        return text


class SshKeyBase64(click.ParamType[str]):
    name = "base64"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = Secret().convert(value, param, ctx)
        try:
            key = base64.b64decode("".join(text.split()), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            self.fail("must be a base64-encoded private key (for example: base64 -w0 ~/.ssh/id_ed25519)", param, ctx)
        if "PRIVATE KEY" not in key:
            self.fail("decodes to something that is not a private key (no 'PRIVATE KEY' header)", param, ctx)
        return key


class Level(click.Choice[str]):
    def __init__(self) -> None:
        super().__init__(["trace", "debug", "info", "warn", "error"], case_sensitive=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip().lower()
        return str(super().convert("warn" if text == "warning" else text, param, ctx))


class Uuid(click.ParamType[str]):
    name = "uuid"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        import uuid  # noqa: PLC0415 - it imports platform: only when Coder is configured

        try:
            return str(uuid.UUID(str(value).strip()))
        except ValueError:
            self.fail("is not a UUID; Coder's agent tokens are UUIDs (the template's coder_agent token)", param, ctx)


class RepositoryUrl(click.ParamType[gitref.Repository]):
    name = "url"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> gitref.Repository:
        if isinstance(value, gitref.Repository):
            return value
        text = str(value)
        if len(text) > URL_MAX:
            self.fail(f"is {len(text)} characters long; at most {URL_MAX} are accepted", param, ctx)
        try:
            return gitref.parse_repository(text)
        except ValueError as err:
            self.fail(str(err), param, ctx)


class Branch(click.ParamType[str]):
    name = "name"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return gitref.validate_branch(str(value))
        except ValueError as err:
            self.fail(str(err), param, ctx)


class Address(click.ParamType[tuple[str, int]]):
    """host:port for the supervisor's API: an IP address (or localhost) and a port."""

    name = "host:port"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, int]:
        text = Text(300).convert(value, param, ctx)
        host, sep, port_text = text.rpartition(":")
        if not sep or not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
            self.fail(f"must be host:port with a port from 1 to 65535, got {text!r}", param, ctx)
        bracketed = host.startswith("[") and host.endswith("]")
        host = host[1:-1] if bracketed else host
        if ":" in host and not bracketed:
            self.fail(f"write an IPv6 address in brackets, as [{host}]:{port_text}; got {text!r}", param, ctx)
        if host != "localhost":
            import ipaddress  # noqa: PLC0415 - only `serve` reads an address

            try:
                found = ipaddress.ip_address(host) if host.isascii() else None
            except ValueError:
                found = None
            if found is None or (bracketed and found.version != 6):
                self.fail(f"must name an IP address (or localhost), got {host!r}", param, ctx)
        return host, int(port_text)


_PORT = re.compile(r"[0-9]{1,5}")
# Linux's capabilities (capabilities(7)): a name outside this list is a typo the engine would refuse later
CAPABILITIES = frozenset((
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE", "ALL",
))  # fmt: skip


class Capabilities(click.ParamType[tuple[str, ...]]):
    name = "names"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        names = []
        for word in Words(64).convert(value, param, ctx):
            name = word.upper().removeprefix("CAP_")
            if name not in CAPABILITIES:
                self.fail(f"{word!r} is not a Linux capability (such as SYS_PTRACE; see capabilities(7))", param, ctx)
            names.append(name)
        return tuple(names)


class PathList(click.ParamType[tuple[str, ...]]):
    name = "paths"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        words = Words(64).convert(value, param, ctx)
        if words == ("*",):
            return words
        for word in words:
            if ".." in word.split("/"):
                self.fail(f"{word!r} may not hold '..': name the folder itself", param, ctx)
        return tuple(AbsolutePath().convert(word, param, ctx) for word in words)


class Network(click.ParamType[str]):
    """A container network mode or network name (host, bridge, none, pasta, slirp4netns, or a name)."""

    name = "network"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = Text(128).convert(value, param, ctx).strip()
        if text and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", text):
            self.fail(
                f"must be a network mode (host, bridge, none, pasta, slirp4netns) or a network's name, got {text!r}",
                param,
                ctx,
            )
        return text


class ContainerPaths(click.ParamType[tuple[str, ...]]):
    """Space-separated folders inside the container: absolute, or ~/... for the remote user's home."""

    name = "paths"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        paths = []
        for word in Words(16).convert(value, param, ctx):
            parts = word.split("/")
            if not (word.startswith("/") or word.startswith("~/")) or word.rstrip("/") in ("", "~"):
                self.fail(f"{word!r} must be a folder inside the container: /absolute/path or ~/path", param, ctx)
            if ".." in parts or any(c in word for c in ",=:"):
                self.fail(f"{word!r} may not hold '..', ',', '=' or ':'", param, ctx)
            paths.append(word.rstrip("/"))
        return tuple(dict.fromkeys(paths))


class Choices(click.ParamType[tuple[str, ...]]):
    """Space-separated words, each one of a fixed set."""

    name = "words"

    def __init__(self, choices: tuple[str, ...]) -> None:
        self.choices = choices

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        words = Words().convert(value, param, ctx)
        unknown = [word for word in words if word not in self.choices]
        if unknown:
            self.fail(f"{unknown[0]!r} is not one of {', '.join(self.choices)}", param, ctx)
        return tuple(dict.fromkeys(words))


class WebUrl(click.ParamType[str]):
    """An http(s) URL without spaces, control characters, user name or password, bounded."""

    name = "url"

    def __init__(self, example: str, no_credentials: str = "it would be shown in logs") -> None:
        self.example = example
        self.no_credentials = no_credentials  # why a user name or password is refused

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        if len(text) > URL_MAX:
            self.fail(f"is {len(text)} characters long; at most {URL_MAX} are accepted", param, ctx)
        if any(c.isspace() or ord(c) < 32 for c in text):
            self.fail("must be a URL without spaces or control characters", param, ctx)
        parts = urllib.parse.urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.hostname.startswith("-"):
            self.fail(f"must be an http(s) URL such as {self.example}", param, ctx)
        if parts.username or parts.password:
            self.fail(f"must not carry a user name or password ({self.no_credentials})", param, ctx)
        try:
            _ = parts.port
        except ValueError:
            self.fail("has an invalid port", param, ctx)
        return text


class AgentUrl(WebUrl):
    """Coder's access URL: a WebUrl, without its trailing slash."""

    def __init__(self) -> None:
        super().__init__("https://coder.example.com", "the agent authenticates with its token")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return super().convert(str(value).strip().rstrip("/"), param, ctx)


class UrlOrFile(click.ParamType[str]):
    """An http(s) URL, or the absolute path of a readable file on the builder's side."""

    name = "url-or-file"

    def __init__(self, example: str) -> None:
        self.example = example

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        if text.startswith("/"):
            return ExistingFile().convert(text, param, ctx)
        if "://" not in text:
            self.fail(f"must be an http(s) URL such as {self.example} or the absolute path of a file", param, ctx)
        return WebUrl(self.example).convert(text, param, ctx)


class Sha256(click.ParamType[str]):
    """A SHA-256 digest: 64 hexadecimal digits (a leading sha256: is accepted)."""

    name = "sha256"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip().lower().removeprefix("sha256:")
        if not re.fullmatch(r"[0-9a-f]{64}", text):
            self.fail("must be a SHA-256 digest: 64 hexadecimal digits", param, ctx)
        return text


class GalleryUrl(click.ParamType[str]):
    """An Open VSX-compatible gallery's serviceUrl, or none (no gallery: only the .vsix folder)."""

    name = "url|none"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        if text == "none":
            return text
        return WebUrl("https://open-vsx.org/vscode/gallery").convert(text, param, ctx).rstrip("/")


class ExistingFolder(AbsolutePath):
    name = "folder"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        path = super().convert(value, param, ctx)
        if not os.path.isdir(path):
            self.fail(f"{path} does not exist or is not a folder", param, ctx)
        if not os.access(path, os.R_OK | os.X_OK):
            self.fail(f"{path} is not readable by the builder (uid {os.getuid()})", param, ctx)
        return path


# The devcontainer CLI pastes the dotfiles repository unquoted into a shell script in the container
# (`git clone --depth 1 <it> ~/dotfiles`): only characters that are literal in an unquoted shell word
# reach it. Anything else in a URL can be percent-encoded.
SHELL_LITERAL_URL = re.compile(r"[A-Za-z0-9._~:/@%+=,-]+")
# the install command is pasted inside '...' and "..." (and into a comment line): a path's characters only
SHELL_LITERAL_PATH = re.compile(r"[A-Za-z0-9._/+-]+")


class DotfilesRepository(click.ParamType[str]):
    """What the devcontainer CLI's --dotfiles-repository takes: an http(s), git or ssh URL, scp-style
    git@host:owner/repo, or owner/repo (a GitHub repository). The CLI clones it inside the container, so a
    path (or file:// URL) of the builder's side is refused: it does not exist there, and the container
    is never given one of the builder's paths."""

    name = "repository"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = Text(URL_MAX).convert(value, param, ctx).strip()
        if any(c.isspace() for c in text) or text.startswith("-"):
            self.fail("must be a git URL or owner/repo, without spaces or a leading '-'", param, ctx)
        if text.startswith(("/", ".", "~", "file:")):
            self.fail(
                "must be a git URL (https://, ssh://, git://, git@host:owner/repo) or owner/repo, not a path: the "
                "devcontainer CLI clones the dotfiles inside the devcontainer, where a path of the builder's side "
                "does not exist (and the container is never given one). Serve the repository over https or ssh",
                param,
                ctx,
            )
        if "://" in text:
            parts = urllib.parse.urlsplit(text)
            if parts.scheme not in ("http", "https", "ssh", "git"):
                self.fail(f"has the scheme {parts.scheme!r}; use https, ssh or git", param, ctx)
            # a user name is where a token goes in an http(s) URL; over ssh it names the account (git@)
            if parts.password or (parts.username and parts.scheme != "ssh"):
                self.fail(
                    "must not carry credentials (a user name or password: a token there would be shown in logs, "
                    "the devcontainer CLI's command line and the container's ~/dotfiles/.git/config); give a public "
                    "repository, or an ssh URL the workspace's key can clone",
                    param,
                    ctx,
                )
        elif not (
            re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", text)
            or re.fullmatch(r"[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+:[^\s]+", text)  # scp-style git@host:owner/repo
        ):
            self.fail("must be a git URL (https://..., ssh://..., git@host:owner/repo) or owner/repo", param, ctx)
        if not SHELL_LITERAL_URL.fullmatch(text):
            self.fail(
                "holds a character the devcontainer CLI would hand to a shell in the container (it pastes the "
                "repository unquoted into `git clone`): only letters, digits and . _ ~ : / @ % + = , - are "
                "accepted; percent-encode anything else",
                param,
                ctx,
            )
        return text


class DotfilesInstallCommand(click.ParamType[str]):
    """The script in the dotfiles repository the CLI runs: a path, which the CLI pastes into quoted shell
    words in the container, so only a path's plain characters are accepted."""

    name = "script"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = Text(256).convert(value, param, ctx).strip()
        if text and not SHELL_LITERAL_PATH.fullmatch(text):
            self.fail(
                "must be the path of a script in the dotfiles repository, such as install.sh or setup/install.sh: "
                "the devcontainer CLI pastes it into a shell script in the container, so only letters, digits "
                "and . _ / + - are accepted",
                param,
                ctx,
            )
        return text
