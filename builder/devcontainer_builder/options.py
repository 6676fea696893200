"""Every setting of the builder, declared once.

Each Option names its environment variable, its default, its help and how its text is parsed. The CLI
flags (cli.py), the `options` command and the README's table are all generated from OPTIONS, so a
setting cannot exist in one place and be missing from another. Secrets have no flag on purpose: a flag
would put the value in every process listing.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from devcontainer_builder import gitref
from devcontainer_builder.errors import InputError

DEFAULT_FALLBACK_IMAGE = "codercom/enterprise-base:ubuntu"
DEFAULT_STATE_DIR = "/workspaces/.devcontainer-builder"
WORKSPACES_ROOT = "/workspaces"
LOG_LEVELS = ("trace", "debug", "info", "warn", "error")


def _text(value: str) -> str:
    if "\x00" in value or "\n" in value:
        raise ValueError("must be a single line of text")
    return value


def _whole_number(minimum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            raise ValueError(f"must be a whole number, got {value!r}") from None
        if number < minimum:
            raise ValueError(f"must be {minimum} or more, got {number}")
        return number

    return parse


_positive_int = _whole_number(1)
_non_negative_int = _whole_number(0)


def _absolute_path(value: str) -> str:
    value = _text(value)
    if not os.path.isabs(value):
        raise ValueError(f"must be an absolute path, got {value!r}")
    return os.path.normpath(value)


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"must be true or false, got {value!r}")


def _cache_refs(value: str) -> tuple[str, ...]:
    refs = tuple(value.split())
    for ref in refs:
        if ref.startswith("-"):
            raise ValueError(f"{ref!r} starts with '-': it would be read as a flag")
    return refs


def _cache_ref(value: str) -> str:
    refs = _cache_refs(value)
    if len(refs) > 1:
        raise ValueError("takes one cache destination (the devcontainer CLI accepts a single --cache-to)")
    return refs[0] if refs else ""


def _docker_path(value: str) -> str:
    value = _text(value.strip())
    if os.path.basename(value) not in ("docker", "podman"):
        raise ValueError(f"must be docker or podman (or a path to one of them), got {value!r}")
    return value


def _config_path(value: str) -> str:
    value = _text(value.strip())
    if os.path.isabs(value) or value.startswith("~"):
        raise ValueError(f"must be a path inside the repository, relative to its root, got {value!r}")
    normal = os.path.normpath(value)
    if normal == ".." or normal.startswith("../"):
        raise ValueError(f"must stay inside the repository, got {value!r}")
    if os.path.basename(normal) not in ("devcontainer.json", ".devcontainer.json"):
        raise ValueError(
            f"must name a file called devcontainer.json or .devcontainer.json (the devcontainer CLI "
            f"refuses other names), got {value!r}"
        )
    return normal


def _ssh_key_b64(value: str) -> str:
    try:
        key = base64.b64decode("".join(value.split()), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("must be a base64-encoded private key (for example: base64 -w0 ~/.ssh/id_ed25519)") from None
    if "PRIVATE KEY" not in key:
        raise ValueError("decodes to something that is not a private key (no 'PRIVATE KEY' header)")
    return key


def _existing_file(value: str) -> str:
    path = _absolute_path(value)
    if not os.path.isfile(path):
        raise ValueError(f"{path} does not exist or is not a file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{path} is not readable by the builder (uid {os.getuid()})")
    return path


def _level(value: str) -> str:
    lowered = value.strip().lower()
    if lowered == "warning":
        lowered = "warn"
    if lowered not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return lowered


def _http_url(value: str) -> str:
    value = _text(value.strip()).rstrip("/")
    scheme, _, rest = value.partition("://")
    if scheme not in ("http", "https") or not rest or rest.startswith(("/", "-")):
        raise ValueError(f"must be an http(s) URL such as https://coder.example.com, got {value!r}")
    return value


def _uuid(value: str) -> str:
    import uuid  # noqa: PLC0415 - only when Coder is configured

    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise ValueError("is not a UUID; Coder's agent tokens are UUIDs (the template's coder_agent token)") from None


def _image(value: str) -> str:
    value = _text(value.strip())
    if not value or value.startswith("-") or any(c.isspace() for c in value):
        raise ValueError(f"must be an image reference such as debian:trixie-slim, got {value!r}")
    return value


@dataclass(frozen=True)
class Option:
    name: str
    env: str
    help: str
    default: Any = None
    doc_default: str = ""
    parse: Callable[[str], Any] = _text
    required: bool = False
    secret: bool = False
    multiple: bool = False
    switch: bool = False  # a flag without a value (--rebuild)
    env_only: bool = False  # no flag: a value too long or multi-line for a command line
    commands: tuple[str, ...] = ("up",)
    metavar: str = "TEXT"

    @property
    def flag(self) -> str | None:
        return None if self.secret or self.env_only else "--" + self.name.replace("_", "-")

    @property
    def shown_default(self) -> str:
        if self.doc_default:
            return self.doc_default
        if self.default in (None, "", ()):
            return "none"
        return str(self.default)


PROJECT_TYPE_IMAGES = {
    "node": "mcr.microsoft.com/devcontainers/javascript-node:22",
    "python": "mcr.microsoft.com/devcontainers/python:3",
    "go": "mcr.microsoft.com/devcontainers/go:1",
    "rust": "mcr.microsoft.com/devcontainers/rust:1",
    "ruby": "mcr.microsoft.com/devcontainers/ruby:3",
}

MODES = ("up",)


def _mode(value: str) -> str:
    value = value.strip()
    if value not in MODES:
        raise ValueError(f"must be one of {', '.join(MODES)}, got {value!r}")
    return value


OPTIONS: tuple[Option, ...] = (
    Option(
        "mode",
        "DEVCONTAINER_BUILDER_MODE",
        "What the builder image does when started without arguments (the template's mode).",
        default="up",
        parse=_mode,
        commands=("entrypoint",),
        env_only=True,
    ),
    Option(
        "repository",
        "DEVCONTAINER_REPOSITORY",
        "Git URL (https, ssh, scp-style, file) or local path of the repository to build. Required.",
        parse=gitref.parse_repository,
        required=True,
        metavar="URL",
    ),
    Option(
        "branch",
        "DEVCONTAINER_BRANCH",
        "Branch to check out. Changing it later switches a clean working tree to the new branch.",
        doc_default="the remote's default branch",
        parse=gitref.validate_branch,
        metavar="NAME",
    ),
    Option(
        "workspace_folder",
        "DEVCONTAINER_WORKSPACE_FOLDER",
        "Where the repository is cloned; mounted into the devcontainer.",
        doc_default="/workspaces/<repo name>",
        parse=_absolute_path,
        metavar="PATH",
    ),
    Option(
        "config",
        "DEVCONTAINER_CONFIG",
        "devcontainer.json to use, relative to the repository root.",
        doc_default="the spec's lookup order",
        parse=_config_path,
        metavar="PATH",
    ),
    Option(
        "cache_from",
        "DEVCONTAINER_CACHE_FROM",
        "Layer cache sources passed to the build as --cache-from, separated by spaces "
        "(e.g. type=registry,ref=registry.example/app:cache).",
        default=(),
        parse=_cache_refs,
        multiple=True,
        metavar="REF",
    ),
    Option(
        "cache_to",
        "DEVCONTAINER_CACHE_TO",
        "Layer cache destination passed as --cache-to. Needs docker buildx; a registry export also needs "
        "an engine with the containerd image store. The builder warns and drops it when the engine cannot.",
        default="",
        parse=_cache_ref,
        metavar="REF",
    ),
    Option(
        "fallback_image",
        "DEVCONTAINER_FALLBACK_IMAGE",
        "Image for repositories with no devcontainer config and no recognised project type.",
        default=DEFAULT_FALLBACK_IMAGE,
        parse=_image,
        metavar="IMAGE",
    ),
    Option(
        "docker_path",
        "DEVCONTAINER_DOCKER_PATH",
        "Container engine CLI: docker or podman.",
        default="docker",
        parse=_docker_path,
        metavar="PATH",
    ),
    Option(
        "state_dir",
        "DEVCONTAINER_STATE_DIR",
        "state.json, events.jsonl, build.log and the workspace lock. One state dir per workspace.",
        default=DEFAULT_STATE_DIR,
        parse=_absolute_path,
        commands=("up", "status"),
        metavar="PATH",
    ),
    Option(
        "build_timeout",
        "DEVCONTAINER_BUILD_TIMEOUT",
        "Seconds one `devcontainer up` may take before its whole process tree is killed.",
        default=1800,
        parse=_positive_int,
        metavar="SECONDS",
    ),
    Option(
        "engine_timeout",
        "DEVCONTAINER_ENGINE_TIMEOUT",
        "Seconds to wait at start for the container engine to answer (a DinD sidecar may still be starting).",
        default=60,
        parse=_non_negative_int,
        metavar="SECONDS",
    ),
    Option(
        "clone_depth",
        "DEVCONTAINER_CLONE_DEPTH",
        "Shallow-clone depth; 0 clones the full history.",
        default=0,
        parse=_non_negative_int,
        metavar="N",
    ),
    Option(
        "git_timeout",
        "DEVCONTAINER_GIT_TIMEOUT",
        "Seconds one git command may take (clone, fetch, ...).",
        default=600,
        parse=_positive_int,
        metavar="SECONDS",
    ),
    Option(
        "git_retries",
        "DEVCONTAINER_GIT_RETRIES",
        "Attempts for a git network operation that fails with a network error.",
        default=3,
        parse=_positive_int,
        metavar="N",
    ),
    Option(
        "workspace_uid",
        "DEVCONTAINER_WORKSPACE_UID",
        "Owner of the files the builder creates in the workspace (clone, generated config). Matches the "
        "default non-root user of the devcontainers images and codercom/enterprise-base.",
        default=1000,
        parse=_non_negative_int,
        metavar="UID",
    ),
    Option(
        "workspace_gid",
        "DEVCONTAINER_WORKSPACE_GID",
        "Group of the files the builder creates in the workspace.",
        default=1000,
        parse=_non_negative_int,
        metavar="GID",
    ),
    Option(
        "git_username",
        "DEVCONTAINER_GIT_USERNAME",
        "User name sent with GH_TOKEN (GitHub ignores it; GitLab wants oauth2 for OAuth tokens).",
        default="x-access-token",
        metavar="NAME",
    ),
    Option(
        "gh_token",
        "GH_TOKEN",
        "Token for private https repositories. Given to git through a credential helper, never in a URL, "
        "argument or file.",
        secret=True,
    ),
    Option(
        "ssh_private_key",
        "DEVCONTAINER_SSH_PRIVATE_KEY",
        "Base64-encoded SSH private key for ssh URLs.",
        parse=_ssh_key_b64,
        secret=True,
    ),
    Option(
        "ssh_private_key_path",
        "DEVCONTAINER_SSH_PRIVATE_KEY_PATH",
        "Path to an SSH private key file for ssh URLs.",
        parse=_existing_file,
        metavar="PATH",
    ),
    Option(
        "image_node",
        "DEVCONTAINER_IMAGE_NODE",
        "Image of the config generated for a repository with package.json and no devcontainer config.",
        default=PROJECT_TYPE_IMAGES["node"],
        parse=_image,
        metavar="IMAGE",
    ),
    Option(
        "image_python",
        "DEVCONTAINER_IMAGE_PYTHON",
        "Image generated for pyproject.toml or requirements.txt.",
        default=PROJECT_TYPE_IMAGES["python"],
        parse=_image,
        metavar="IMAGE",
    ),
    Option(
        "image_go",
        "DEVCONTAINER_IMAGE_GO",
        "Image generated for go.mod.",
        default=PROJECT_TYPE_IMAGES["go"],
        parse=_image,
        metavar="IMAGE",
    ),
    Option(
        "image_rust",
        "DEVCONTAINER_IMAGE_RUST",
        "Image generated for Cargo.toml.",
        default=PROJECT_TYPE_IMAGES["rust"],
        parse=_image,
        metavar="IMAGE",
    ),
    Option(
        "image_ruby",
        "DEVCONTAINER_IMAGE_RUBY",
        "Image generated for Gemfile.",
        default=PROJECT_TYPE_IMAGES["ruby"],
        parse=_image,
        metavar="IMAGE",
    ),
    Option(
        "rebuild",
        "DEVCONTAINER_REBUILD",
        "Remove the existing container and build again even if the config did not change.",
        default=False,
        parse=_bool,
        switch=True,
        metavar="BOOL",
    ),
    Option(
        "coder_agent_url",
        "CODER_AGENT_URL",
        "Coder's access URL, as the template's coder_agent gets it. With CODER_AGENT_TOKEN the build log "
        "streams to the workspace's build log in Coder.",
        parse=_http_url,
        metavar="URL",
    ),
    Option(
        "coder_agent_token",
        "CODER_AGENT_TOKEN",
        "The workspace agent's token (a UUID). Used for the log API only; never printed, stored or put in "
        "the container's configuration.",
        parse=_uuid,
        secret=True,
    ),
    Option(
        "coder_init_script",
        "CODER_INIT_SCRIPT",
        "The agent's init script (coder_agent.init_script). With it, the builder starts Coder's agent inside "
        "the running devcontainer (or fallback) as its remote user, once.",
        parse=lambda value: value,
        env_only=True,
    ),
    Option(
        "coder_log_level",
        "DEVCONTAINER_CODER_LOG_LEVEL",
        "Lowest level streamed to Coder (Coder keeps 1 MiB of log per agent; debug lines would use it up).",
        default="info",
        parse=_level,
        metavar="LEVEL",
    ),
    Option(
        "log_level",
        "DEVCONTAINER_LOG_LEVEL",
        "Lowest level printed on the terminal (trace, debug, info, warn, error). build.log keeps everything.",
        default="info",
        parse=_level,
        commands=("up",),
        metavar="LEVEL",
    ),
)

OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}


def options_for(command: str) -> list[Option]:
    return [option for option in OPTIONS if command in option.commands]


@dataclass(frozen=True)
class Settings:
    """Parsed settings of one command. Attribute access so a misspelt name fails loudly."""

    values: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def secrets(self) -> list[str]:
        """Every secret value known to the builder, for redaction."""
        found = [str(self.values[o.name]) for o in OPTIONS if o.secret and self.values.get(o.name)]
        repository = self.values.get("repository")
        if repository is not None and repository.password:
            found.append(repository.password)
        return found


def load(command: str, flags: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
    """Merge flags over environment over defaults, parse each value, report every problem at once."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems: list[str] = []
    for option in options_for(command):
        raw: Any = None
        source = "default"
        flag_value = flags.get(option.name)
        if flag_value not in (None, ()):
            raw, source = flag_value, f"flag {option.flag}"
            if option.multiple:
                raw = " ".join(raw)
            elif isinstance(raw, bool):
                raw = str(raw).lower()
        elif option.env in environ and environ[option.env] != "":
            raw, source = environ[option.env], f"environment variable {option.env}"
        if raw is None:
            if option.required:
                problems.append(
                    f"{option.env} is not set. {option.help} "
                    f"Set it in the environment{' or pass ' + option.flag if option.flag else ''}."
                )
            values[option.name] = option.default
        else:
            try:
                values[option.name] = option.parse(str(raw))
            except ValueError as err:
                problems.append(f"{option.env} {err}." if source == "default" else f"{source} {err}.")
                values[option.name] = option.default
        sources[option.name] = source
    if command == "up":
        problems += _check_up(values)
    if problems:
        raise InputError(problems)
    return Settings(values, sources)


def _check_up(values: dict[str, Any]) -> list[str]:
    problems = []
    if values.get("ssh_private_key") and values.get("ssh_private_key_path"):
        problems.append(
            "both DEVCONTAINER_SSH_PRIVATE_KEY and DEVCONTAINER_SSH_PRIVATE_KEY_PATH are set; keep only one."
        )
    if values.get("coder_init_script") and not (values.get("coder_agent_url") and values.get("coder_agent_token")):
        problems.append(
            "CODER_INIT_SCRIPT is set but CODER_AGENT_URL or CODER_AGENT_TOKEN is not: the agent needs both to "
            "connect; the template passes all three."
        )
    if bool(values.get("coder_agent_url")) != bool(values.get("coder_agent_token")):
        problems.append(
            "CODER_AGENT_URL and CODER_AGENT_TOKEN go together: set both (as the Coder template does) or neither "
            "(standalone)."
        )
    repository = values.get("repository")
    if repository is not None and not values.get("workspace_folder"):
        values["workspace_folder"] = os.path.join(WORKSPACES_ROOT, repository.name)
    folder = values.get("workspace_folder")
    state_dir = values.get("state_dir")
    if folder and state_dir and (state_dir == folder or state_dir.startswith(folder.rstrip("/") + "/")):
        problems.append(
            f"DEVCONTAINER_STATE_DIR ({state_dir}) is inside the workspace folder ({folder}); "
            "it would show up in the repository. Put it beside the workspace folder instead."
        )
    if folder == "/" or (folder and os.path.normpath(folder) == WORKSPACES_ROOT):
        problems.append(
            f"DEVCONTAINER_WORKSPACE_FOLDER is {folder}; the repository needs a folder of its own, "
            f"for example {WORKSPACES_ROOT}/<repo name>."
        )
    return problems


def markdown_table() -> str:
    """The README's settings table. tests/test_options.py checks the README holds exactly this."""
    lines = ["| variable | flag | default | meaning |", "|---|---|---|---|"]
    for option in OPTIONS:
        flag = f"`{option.flag}`" if option.flag else "env only (secret)" if option.secret else "env only"
        lines.append(f"| `{option.env}` | {flag} | {option.shown_default} | {option.help} |")
    return "\n".join(lines) + "\n"


def secret_env_names() -> list[str]:
    return [option.env for option in OPTIONS if option.secret]


def update_readme(path: str) -> bool:
    """Replace the table between the README's options markers; True when the file changed."""
    start, end = "<!-- options:start -->\n", "<!-- options:end -->"
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    head, found, rest = text.partition(start)
    if not found or end not in rest:
        raise SystemExit(f"{path} has no {start.strip()} ... {end} markers")
    updated = head + start + markdown_table() + end + rest.split(end, 1)[1]
    if updated != text:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(updated)
    return updated != text


if __name__ == "__main__":
    import sys

    print("README table updated" if update_readme(sys.argv[1]) else "README table already up to date")
