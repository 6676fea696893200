"""Every setting of the builder, declared once: the fields of `Settings`.

Each field names its environment variable, its default, its help and its click type (how its text is
parsed). The CLI's flags, the `options` command and docs/configuration.md's table are generated from these fields,
so a setting cannot exist in one place and be missing from another. Secrets have no flag on purpose: a
flag would put the value in every process listing.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import click

from devcontainer_builder.errors import InputError
from devcontainer_builder.settings import types
from devcontainer_builder.settings.gitref import NO_REPOSITORY, Repository

DEFAULT_FALLBACK_IMAGE = "codercom/enterprise-base:ubuntu"
WORKSPACES_ROOT = "/workspaces"
DEFAULT_STATE_DIR = "/workspaces/.devcontainer-builder"
MODES = ("up", "serve", "up-serve")
PRIVILEGES = ("privileged", "security-opt", "host-namespaces", "devices", "initialize-command")
DAY = 86_400
IDES = ("code-server", "none")
CODE_SERVER_VERSION = "4.139.1"
CODE_SERVER_RELEASE = (
    f"https://github.com/coder/code-server/releases/download/v{CODE_SERVER_VERSION}/"
    f"code-server-{CODE_SERVER_VERSION}-linux-amd64.tar.gz"
)
OPEN_VSX = "https://open-vsx.org/vscode/gallery"


@dataclass(frozen=True)
class Option:
    """One setting as the CLI, the `options` command and docs/configuration.md show it."""

    name: str
    env: str
    help: str
    type: click.ParamType[Any]
    default: Any
    doc_default: str = ""
    required: bool = False
    secret: bool = False
    switch: bool = False  # a flag without a value (--rebuild)
    env_only: bool = False  # no flag: a value too long or multi-line for a command line
    commands: tuple[str, ...] = ("up",)
    advanced: bool = False  # plumbing the templates set: --help and the docs list it after a user's options

    @property
    def flag(self) -> str | None:
        return None if self.secret or self.env_only else "--" + self.name.replace("_", "-")

    @property
    def shown_default(self) -> str:
        if self.doc_default:
            return self.doc_default
        if self.default in (None, "", (), NO_REPOSITORY):
            return "none"
        return str(self.default)


def setting(
    env: str,
    help: str,
    type: click.ParamType[Any],
    default: Any,
    *,
    doc_default: str = "",
    required: bool = False,
    secret: bool = False,
    switch: bool = False,
    env_only: bool = False,
    commands: tuple[str, ...] = ("up",),
    advanced: bool = False,
) -> Any:
    """A Settings field carrying its Option (the name is filled in from the field)."""
    spec = {
        "env": env,
        "help": help,
        "type": type,
        "default": default,
        "doc_default": doc_default,
        "required": required,
        "secret": secret,
        "switch": switch,
        "env_only": env_only,
        "commands": commands,
        "advanced": advanced,
    }
    return field(default=default, metadata={"option": spec})


# the heading of the plumbing (Option.advanced) in --help, `options` and docs/configuration.md
ADVANCED_HEADING = "Advanced options (the plumbing the Coder templates set; rarely set by hand)"
UP_SERVE = ("up", "serve", "rebuild")
STATE_USERS = ("up", "serve", "rebuild", "status")


@dataclass(frozen=True)
class Settings:
    mode: str = setting(
        "DEVCONTAINER_BUILDER_MODE",
        "What the builder image does when started without arguments: up (build, then exit), serve (the "
        "supervisor), or up-serve (up, then serve in the same container: a Docker host's template).",
        click.Choice(MODES),
        "up",
        env_only=True,
        commands=("entrypoint",),
    )
    repository: Repository = setting(
        "DEVCONTAINER_REPOSITORY",
        "Git URL (https, ssh, scp-style, file) or local path of the repository to build. Required.",
        types.RepositoryUrl(),
        NO_REPOSITORY,
        required=True,
        commands=UP_SERVE,
    )
    branch: str = setting(
        "DEVCONTAINER_BRANCH",
        "Branch to check out. Changing it later switches the workspace to the new branch when no local change "
        "is at stake.",
        types.Branch(),
        "",
        doc_default="the remote's default branch",
        commands=UP_SERVE,
    )
    workspace_folder: str = setting(
        "DEVCONTAINER_WORKSPACE_FOLDER",
        "Where the repository is cloned; mounted into the devcontainer. On a machine without /workspaces: "
        "~/workspaces/<repo name>.",
        types.Folder(),
        "",
        doc_default="/workspaces/<repo name>",
        commands=UP_SERVE,
    )
    use_existing_folder: bool = setting(
        "DEVCONTAINER_USE_EXISTING_FOLDER",
        "Use a workspace folder that already holds files but no clone of DEVCONTAINER_REPOSITORY (files without "
        "git, a clone of another repository) as it is, mounted read-write into the devcontainer. Unset, such a "
        "folder is refused (exit 2): a typo must not hand a folder of the host to the repository. System folders "
        "(/etc, /usr, /var, other users' homes, ...) are refused even then.",
        click.BOOL,
        False,
        switch=True,
        commands=UP_SERVE,
    )
    config: str = setting(
        "DEVCONTAINER_CONFIG",
        "devcontainer.json to use, relative to the repository root.",
        types.ConfigPath(),
        "",
        doc_default="the spec's lookup order",
        commands=UP_SERVE,
    )
    cache_from: tuple[str, ...] = setting(
        "DEVCONTAINER_CACHE_FROM",
        "Layer cache sources passed to the build as --cache-from, separated by spaces "
        "(e.g. type=registry,ref=registry.example/app:cache).",
        types.Words(),
        (),
        commands=UP_SERVE,
    )
    cache_to: str = setting(
        "DEVCONTAINER_CACHE_TO",
        "Layer cache destination passed as --cache-to. Needs docker buildx; a registry export also needs an "
        "engine with the containerd image store. The builder warns and drops it when the engine cannot.",
        types.CacheTo(),
        "",
        commands=UP_SERVE,
    )
    fallback_image: str = setting(
        "DEVCONTAINER_FALLBACK_IMAGE",
        "Image of the recovery container a failed build falls back to, and of repositories with no devcontainer "
        "config and no recognised project type. Needs curl, wget or busybox for Coder's agent.",
        types.Image(),
        DEFAULT_FALLBACK_IMAGE,
        commands=UP_SERVE,
    )
    docker_path: str = setting(
        "DEVCONTAINER_DOCKER_PATH",
        "Container engine CLI: docker or podman (or a path to one). Unset: the engine of the workspace's last "
        "build, else docker when the Docker engine answers at /var/run/docker.sock (or DOCKER_HOST is set), else "
        "podman when it is installed. The choice is logged and recorded in state.json.",
        types.DockerPath(),
        "",
        doc_default="auto",
        commands=STATE_USERS,
    )
    state_dir: str = setting(
        "DEVCONTAINER_STATE_DIR",
        "state.json, events.jsonl, build.log and the workspace lock. One state dir per workspace. On a machine "
        "without /workspaces: ~/.local/state/devcontainer-builder/<repo name>.",
        types.Folder(),
        "",
        doc_default=DEFAULT_STATE_DIR,
        commands=STATE_USERS,
        advanced=True,
    )
    build_timeout: int = setting(
        "DEVCONTAINER_BUILD_TIMEOUT",
        "Seconds one `devcontainer up` may take before its whole process tree is killed.",
        types.Number(1, 7 * DAY),
        1800,
        commands=UP_SERVE,
    )
    ca_bundle: str = setting(
        "DEVCONTAINER_CA_BUNDLE",
        "Extra CA certificates in PEM - a file's path or the PEM text itself - for a proxy that intercepts TLS or "
        "an internal Git server: trusted beside the system's by git, the devcontainer CLI and the connection to "
        "Coder.",
        types.CertificateBundle(),
        "",
        commands=UP_SERVE,
    )
    engine_timeout: int = setting(
        "DEVCONTAINER_ENGINE_TIMEOUT",
        "Seconds to wait at start for the container engine to answer (a DinD sidecar may still be starting).",
        types.Number(0, DAY),
        60,
        commands=UP_SERVE,
        advanced=True,
    )
    clone_depth: int = setting(
        "DEVCONTAINER_CLONE_DEPTH",
        "Shallow-clone depth; 0 clones the full history.",
        types.Number(0, 2**31 - 1),
        0,
        commands=UP_SERVE,
    )
    git_timeout: int = setting(
        "DEVCONTAINER_GIT_TIMEOUT",
        "Seconds one git command may take (clone, fetch, ...).",
        types.Number(1, DAY),
        600,
        commands=UP_SERVE,
    )
    git_retries: int = setting(
        "DEVCONTAINER_GIT_RETRIES",
        "Attempts for a git network operation that fails with a network error.",
        types.Number(1, 100),
        3,
        commands=UP_SERVE,
    )
    workspace_uid: int = setting(
        "DEVCONTAINER_WORKSPACE_UID",
        "Owner of the files the builder creates in the workspace (clone, generated config) when it runs as "
        "root. Matches the default non-root user of the devcontainers images and codercom/enterprise-base.",
        types.Number(0, 2**31 - 2),
        1000,
        commands=UP_SERVE,
        advanced=True,
    )
    workspace_gid: int = setting(
        "DEVCONTAINER_WORKSPACE_GID",
        "Group of the files the builder creates in the workspace.",
        types.Number(0, 2**31 - 2),
        1000,
        commands=UP_SERVE,
        advanced=True,
    )
    git_username: str = setting(
        "DEVCONTAINER_GIT_USERNAME",
        "User name sent with GH_TOKEN (GitHub ignores it; GitLab wants oauth2 for OAuth tokens).",
        types.UserName(),
        "x-access-token",
        commands=UP_SERVE,
    )
    gh_token: str = setting(
        "GH_TOKEN",
        "Token for private https repositories. Given to git through a credential helper, never in a URL, "
        "argument, file or any environment a repository's command can read.",
        types.Secret(),
        "",
        secret=True,
        commands=UP_SERVE,
    )
    ssh_private_key: str = setting(
        "DEVCONTAINER_SSH_PRIVATE_KEY",
        "Base64-encoded SSH private key for ssh URLs. Handed to ssh through a memory file, never written to disk.",
        types.SshKeyBase64(),
        "",
        secret=True,
        commands=UP_SERVE,
    )
    ssh_private_key_path: str = setting(
        "DEVCONTAINER_SSH_PRIVATE_KEY_PATH",
        "Path to an SSH private key file for ssh URLs.",
        types.ExistingFile(),
        "",
        commands=UP_SERVE,
    )
    image_node: str = setting(
        "DEVCONTAINER_IMAGE_NODE",
        "Image of the config generated for a repository with package.json and no devcontainer config.",
        types.Image(),
        "mcr.microsoft.com/devcontainers/javascript-node:22",
        commands=UP_SERVE,
    )
    image_python: str = setting(
        "DEVCONTAINER_IMAGE_PYTHON",
        "Image generated for pyproject.toml or requirements.txt.",
        types.Image(),
        "mcr.microsoft.com/devcontainers/python:3",
        commands=UP_SERVE,
    )
    image_go: str = setting(
        "DEVCONTAINER_IMAGE_GO",
        "Image generated for go.mod.",
        types.Image(),
        "mcr.microsoft.com/devcontainers/go:1",
        commands=UP_SERVE,
    )
    image_rust: str = setting(
        "DEVCONTAINER_IMAGE_RUST",
        "Image generated for Cargo.toml.",
        types.Image(),
        "mcr.microsoft.com/devcontainers/rust:1",
        commands=UP_SERVE,
    )
    image_ruby: str = setting(
        "DEVCONTAINER_IMAGE_RUBY",
        "Image generated for Gemfile.",
        types.Image(),
        "mcr.microsoft.com/devcontainers/ruby:3",
        commands=UP_SERVE,
    )
    rebuild: bool = setting(
        "DEVCONTAINER_REBUILD",
        "Remove the existing container and build again even if the config did not change (the template's "
        '"Rebuild devcontainer" start option).',
        click.BOOL,
        False,
        switch=True,
    )
    rebuild_full: bool = setting(
        "DEVCONTAINER_REBUILD_FULL",
        "Like DEVCONTAINER_REBUILD, and build without the layer cache (--build-no-cache, no --cache-from).",
        click.BOOL,
        False,
        switch=True,
    )
    rebuild_id: str = setting(
        "DEVCONTAINER_REBUILD_ID",
        "The identity of the rebuild request (a template gives one per workspace build). With it, "
        "DEVCONTAINER_REBUILD and DEVCONTAINER_REBUILD_FULL are honoured once for that identity: a pod or "
        "container started again later with the same environment does not rebuild again.",
        types.Text(200),
        "",
        advanced=True,
    )
    network: str = setting(
        "DEVCONTAINER_NETWORK",
        "Network of the workspace's container, e.g. host so that its ports are reachable at a VM's address. "
        "Added to the config the CLI gets (runArgs --network), never written into the repository's "
        "devcontainer.json; not applied to Docker Compose configs. Unset: the engine's default network.",
        types.Network(),
        "",
        commands=UP_SERVE,
    )
    persist: tuple[str, ...] = setting(
        "DEVCONTAINER_PERSIST",
        "Folders inside the container kept in named volumes across rebuilds, separated by spaces, e.g. "
        "~/.vscode-server ~/.local/share/code-server. ~ is the remote user's home. Each volume is created once, "
        "mounted into every container of the workspace and never removed by the builder.",
        types.ContainerPaths(),
        (),
        commands=UP_SERVE,
    )
    ide: str = setting(
        "DEVCONTAINER_IDE",
        "The editor started inside the devcontainer (and the fallback): code-server, run as the remote user in "
        "the workspace folder on the container's loopback (127.0.0.1:13337, reached through Coder's agent), with "
        "the config's customizations.vscode extensions and settings; or none.",
        click.Choice(IDES),
        "none",
        commands=UP_SERVE,
    )
    ide_source: str = setting(
        "DEVCONTAINER_IDE_SOURCE",
        "Where the builder takes code-server from: an http(s) URL (the release, or the admin's mirror) or a file "
        "on the builder's side, a .tar.gz of code-server's standalone release layout (bin/code-server in one top "
        "folder). Fetched once, checked against DEVCONTAINER_IDE_SHA256 and kept in a volume of the workspace; "
        "the repository never chooses it.",
        types.UrlOrFile(CODE_SERVER_RELEASE),
        CODE_SERVER_RELEASE,
        commands=UP_SERVE,
    )
    ide_sha256: str = setting(
        "DEVCONTAINER_IDE_SHA256",
        "The SHA-256 of DEVCONTAINER_IDE_SOURCE's tarball (required with DEVCONTAINER_IDE=code-server: nothing "
        "unverified runs in a workspace).",
        types.Sha256(),
        "",
        commands=UP_SERVE,
    )
    extensions_gallery: str = setting(
        "DEVCONTAINER_EXTENSIONS_GALLERY",
        "The Open VSX-compatible gallery code-server installs the config's extensions from (its serviceUrl; "
        "itemUrl and resourceUrlTemplate are derived from it the way Open VSX lays them out), or none for "
        "DEVCONTAINER_EXTENSIONS_FOLDER alone.",
        types.GalleryUrl(),
        OPEN_VSX,
        commands=UP_SERVE,
    )
    extensions_folder: str = setting(
        "DEVCONTAINER_EXTENSIONS_FOLDER",
        "A folder of .vsix files on the builder's side (air-gapped sites): an extension found there (by the "
        "publisher, name and version in its package.json) is installed from it, before any gallery is asked.",
        types.ExistingFolder(),
        "",
        commands=UP_SERVE,
    )
    dotfiles_repository: str = setting(
        "DEVCONTAINER_DOTFILES_REPOSITORY",
        "The user's dotfiles: a git repository the devcontainer CLI clones into the devcontainer and installs as "
        "the remote user after the config's hooks (--dotfiles-repository): an https, git or ssh URL, "
        "git@host:owner/repo, or owner/repo on GitHub. Not a path (the clone runs inside the container) and no "
        "credentials in the URL. A failing install is a warning.",
        types.DotfilesRepository(),
        "",
        commands=UP_SERVE,
    )
    dotfiles_install_command: str = setting(
        "DEVCONTAINER_DOTFILES_INSTALL_COMMAND",
        "The script in the dotfiles repository to run (--dotfiles-install-command); by default the CLI looks for "
        "install.sh, setup.sh, bootstrap.sh and the like.",
        types.DotfilesInstallCommand(),
        "",
        commands=UP_SERVE,
    )
    allowed_mounts: tuple[str, ...] = setting(
        "DEVCONTAINER_ALLOWED_MOUNTS",
        "Admin policy: host paths a config's bind mounts may come from, besides the workspace folder, separated "
        "by spaces; * allows any. Anything else is refused (an error and the fallback).",
        types.PathList(),
        (),
        commands=UP_SERVE,
    )
    allowed_capabilities: tuple[str, ...] = setting(
        "DEVCONTAINER_ALLOWED_CAPABILITIES",
        "Admin policy: Linux capabilities a config may add (capAdd, --cap-add), e.g. SYS_PTRACE; ALL allows any.",
        types.Capabilities(),
        (),
        commands=UP_SERVE,
    )
    allowed_privileges: tuple[str, ...] = setting(
        "DEVCONTAINER_ALLOWED_PRIVILEGES",
        "Admin policy: what else a config may use, from: privileged (--privileged, the engine's socket), "
        "security-opt (seccomp, AppArmor, build entitlements), host-namespaces (host network, pid, ipc, uts, "
        "userns), devices (--device, --gpus), initialize-command (run initializeCommand in the builder, with the "
        "engine's socket, instead of in its sandbox: a throwaway container with only the workspace folder).",
        types.Choices(PRIVILEGES),
        (),
        commands=UP_SERVE,
    )
    coder_agent_url: str = setting(
        "CODER_AGENT_URL",
        "Coder's access URL, as the template's coder_agent gets it. With CODER_AGENT_TOKEN the build log streams "
        "to the workspace's build log in Coder.",
        types.AgentUrl(),
        "",
        commands=UP_SERVE,
        advanced=True,
    )
    coder_agent_token: str = setting(
        "CODER_AGENT_TOKEN",
        "The workspace agent's token (a UUID). Used for the log API and handed to the agent inside the "
        "devcontainer; never printed, stored or put in the container's configuration.",
        types.Uuid(),
        "",
        secret=True,
        commands=UP_SERVE,
    )
    coder_init_script: str = setting(
        "CODER_INIT_SCRIPT",
        "The agent's init script (coder_agent.init_script). With it, the builder starts Coder's agent inside the "
        "running devcontainer (or fallback) as its remote user, once.",
        types.Secret(),
        "",
        env_only=True,
        commands=UP_SERVE,
    )
    coder_log_level: str = setting(
        "DEVCONTAINER_CODER_LOG_LEVEL",
        "Lowest level streamed to Coder (Coder keeps 1 MiB of log per agent; debug lines would use it up).",
        types.Level(),
        "info",
        commands=UP_SERVE,
        advanced=True,
    )
    log_level: str = setting(
        "DEVCONTAINER_LOG_LEVEL",
        "Lowest level printed on the terminal (trace, debug, info, warn, error). build.log keeps everything.",
        types.Level(),
        "info",
        commands=UP_SERVE,
    )
    serve_address: tuple[str, int] = setting(
        "DEVCONTAINER_SERVE_ADDRESS",
        "Where `serve` listens: host:port. Loopback by default; any other address exposes the status page and "
        "the rebuild button to whoever can reach it. `up` keeps the port from being published by the devcontainer.",
        types.Address(),
        ("127.0.0.1", 7480),
        doc_default="127.0.0.1:7480",
        commands=UP_SERVE,
        advanced=True,
    )
    serve_hosts: tuple[str, ...] = setting(
        "DEVCONTAINER_SERVE_HOSTS",
        "Host names, besides loopback ones (localhost, 127.0.0.1, ::1), that `serve` answers to without the page's "
        "key, separated by spaces: the names it is reached by when DEVCONTAINER_SERVE_ADDRESS is not loopback. "
        "Any other Host header is refused, so a web page cannot reach the supervisor by DNS rebinding.",
        types.HostNames(),
        (),
        commands=("serve",),
        advanced=True,
    )
    serve_agent_init_script: str = setting(
        "DEVCONTAINER_SERVE_AGENT_INIT_SCRIPT",
        "The init script of a second Coder agent (the template's `builder` agent) that `serve` runs in its own "
        "container and keeps running: the status page's app and a terminal that work while the devcontainer is "
        "down. Needs DEVCONTAINER_SERVE_AGENT_TOKEN and CODER_AGENT_URL.",
        types.Secret(),
        "",
        env_only=True,
        commands=("serve",),
    )
    serve_agent_token: str = setting(
        "DEVCONTAINER_SERVE_AGENT_TOKEN",
        "The token of the agent DEVCONTAINER_SERVE_AGENT_INIT_SCRIPT starts (coder_agent.token); it reaches that "
        "agent only.",
        types.Secret(),
        "",
        secret=True,
        commands=("serve",),
    )
    serve_page_key: str = setting(
        "DEVCONTAINER_SERVE_PAGE_KEY",
        "The key in the status page's address (`/k/KEY/`), which every change over TCP needs. The templates "
        "set it to the value in their status app's URL (derived from the builder agent's token, which the "
        "devcontainer never holds). Without it: derived from DEVCONTAINER_SERVE_AGENT_TOKEN, else random for "
        "this supervisor (serve.json, readable by its owner only, gives the page's URL).",
        types.PageKey(),
        "",
        secret=True,
        commands=("serve",),
    )
    keepalive_attempts: int = setting(
        "DEVCONTAINER_KEEPALIVE_ATTEMPTS",
        "Restarts in a row that `serve` tries (backing off from 5 s to 2 min) before the workspace reads "
        "`failed`; it keeps trying every 2 min after that. A restart counts as good once the container has "
        "stayed up for 15 s.",
        types.Number(1, 1000),
        5,
        commands=("serve",),
    )

    @property
    def redactable(self) -> list[str]:
        """Every secret value the builder knows, for redaction: secret settings and a URL's password."""
        found = [str(getattr(self, option.name)) for option in OPTIONS if option.secret and getattr(self, option.name)]
        if self.repository.password:
            found.append(self.repository.password)
        return found


OPTIONS: tuple[Option, ...] = tuple(
    Option(name=f.name, **f.metadata["option"]) for f in dataclasses.fields(Settings) if "option" in f.metadata
)
SECRET_ENV = frozenset(option.env for option in OPTIONS if option.secret)


def options_for(command: str) -> list[Option]:
    return [option for option in OPTIONS if command in option.commands]


def _convert(option: Option, raw: str, source: str, problems: list[str]) -> Any:
    try:
        return option.type.convert(raw, None, None)
    except click.BadParameter as err:
        problems.append(f"{source} {err.message.rstrip('.')}.")
        return option.default


def load_only(names: Collection[str], environ: Mapping[str, str]) -> Settings:
    """These settings from environ, the rest at their defaults, each converted by its type; every problem
    at once (InputError). For a command that needs a few of another command's settings (install-service:
    the timeouts the service's `up` will run with)."""
    problems: list[str] = []
    values = {
        option.name: _convert(option, environ[option.env], option.env, problems)
        for option in OPTIONS
        if option.name in names and environ.get(option.env, "") != ""
    }
    if problems:
        raise InputError(problems)
    return Settings(**values)


def load(command: str, flags: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
    """Flags over environment over defaults, each value converted by its type; every problem reported at
    once (InputError, exit 2)."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    checked: dict[str, Any] = {}
    for option in OPTIONS:
        if command not in option.commands:
            # another command's setting: checked all the same, so that a value is refused (or taken) by
            # every command alike - `up` does not take what `serve` would refuse later
            if environ.get(option.env, "") != "":
                checked[option.name] = _convert(option, environ[option.env], option.env, problems)
            continue
        flag_value = flags.get(option.name)
        if flag_value not in (None, ()):
            raw = (
                " ".join(flag_value)
                if isinstance(flag_value, tuple)
                else str(flag_value).lower()
                if isinstance(flag_value, bool)
                else str(flag_value)
            )
            values[option.name] = _convert(option, raw, f"flag {option.flag}", problems)
        elif environ.get(option.env, "") != "":
            values[option.name] = _convert(option, environ[option.env], f"{option.env}", problems)
        elif option.required:
            via = f" or pass {option.flag}" if option.flag else ""
            problems.append(f"{option.env} is not set. {option.help} Set it in the environment{via}.")
        elif option.env in environ and isinstance(option.type, types.Image):
            # an empty value is an unset one for every other setting (a template passes "" for "none"); an
            # image cannot be none, and an empty one is a template's mistake, not a wish for the default
            problems.append(f"{option.env} is set but empty: name an image, or unset it for the default "
                            f"({option.default}).")  # fmt: skip
    if command == "status" and "repository" in checked:
        # status takes no repository, but its default state dir is named after it, as up's is: the same
        # environment finds the same state
        values["repository"] = checked["repository"]
    settings = Settings(**values)
    if command in UP_SERVE or command == "status":
        settings, more = _derive(settings, environ)
        problems += more
    if problems:
        raise InputError(problems)
    return settings


def _derive(settings: Settings, environ: Mapping[str, str]) -> tuple[Settings, list[str]]:
    """Defaults that depend on other settings, and checks across settings."""
    problems = []
    changes: dict[str, Any] = {}
    repository = settings.repository
    home_based = not os.path.exists(WORKSPACES_ROOT)
    if repository is not NO_REPOSITORY and not settings.workspace_folder:
        changes["workspace_folder"] = default_workspace_folder(repository, environ, home_based)
    if not settings.state_dir:
        changes["state_dir"] = default_state_dir(repository, environ, home_based)
    settings = dataclasses.replace(settings, **changes)
    if settings.ssh_private_key and settings.ssh_private_key_path:
        problems.append(
            "both DEVCONTAINER_SSH_PRIVATE_KEY and DEVCONTAINER_SSH_PRIVATE_KEY_PATH are set; keep only one."
        )
    if settings.serve_agent_init_script and not (settings.serve_agent_token and settings.coder_agent_url):
        problems.append(
            "DEVCONTAINER_SERVE_AGENT_INIT_SCRIPT is set but DEVCONTAINER_SERVE_AGENT_TOKEN or CODER_AGENT_URL is "
            "not: the builder agent needs both to connect; the template passes all three."
        )
    if settings.coder_init_script and not (settings.coder_agent_url and settings.coder_agent_token):
        problems.append(
            "CODER_INIT_SCRIPT is set but CODER_AGENT_URL or CODER_AGENT_TOKEN is not: the agent needs both to "
            "connect; the template passes all three."
        )
    given = (environ.get("CODER_AGENT_URL", ""), environ.get("CODER_AGENT_TOKEN", ""))
    # a value that was given but is malformed has its own problem already
    if bool(settings.coder_agent_url) != bool(settings.coder_agent_token) and not all(given):
        problems.append(
            "CODER_AGENT_URL and CODER_AGENT_TOKEN go together: set both (as the Coder template does) or neither "
            "(standalone)."
        )
    if settings.ide == "code-server" and not settings.ide_sha256:
        problems.append(
            "DEVCONTAINER_IDE is code-server but DEVCONTAINER_IDE_SHA256 is not set: the builder runs no editor it "
            f"cannot verify. Set it to the SHA-256 of {settings.ide_source} (the release's checksum, or your "
            "mirror's), or set DEVCONTAINER_IDE=none."
        )
    if settings.dotfiles_install_command.startswith("-"):
        problems.append(
            f"DEVCONTAINER_DOTFILES_INSTALL_COMMAND {settings.dotfiles_install_command!r} starts with '-': the "
            "devcontainer CLI would read it as a flag. Name the script in the dotfiles repository, e.g. install.sh."
        )
    if settings.dotfiles_install_command and not settings.dotfiles_repository:
        problems.append(
            "DEVCONTAINER_DOTFILES_INSTALL_COMMAND is set but DEVCONTAINER_DOTFILES_REPOSITORY is not: set the "
            "repository too, or unset the command."
        )
    folder, state_dir = settings.workspace_folder, settings.state_dir
    # as written and where links lead: /workspaces a link to a data disk must not hide the state dir inside
    holds_state = bool(folder) and any(
        inner == outer or inner.startswith(outer.rstrip("/") + "/")
        for inner in dict.fromkeys((state_dir, os.path.realpath(state_dir)))
        for outer in dict.fromkeys((folder, os.path.realpath(folder)))
    )
    state_system = types.state_folder(state_dir) if state_dir else ""
    if state_system:
        problems.append(
            f"DEVCONTAINER_STATE_DIR is {state_dir}, {state_system}: the builder writes its state, logs and locks "
            "there. Give the workspace a state dir of its own, for example /workspaces/.devcontainer-builder."
        )
    if holds_state:
        problems.append(
            f"DEVCONTAINER_STATE_DIR ({state_dir}) is inside the workspace folder ({folder}); it would show up in "
            "the repository and be writable from the devcontainer. Put it beside the workspace folder instead."
        )
    others = (WORKSPACES_ROOT,) if holds_state else (WORKSPACES_ROOT, *_parents(state_dir))
    system = types.system_folder(folder, others) if folder else ""
    if system:
        problems.append(
            f"DEVCONTAINER_WORKSPACE_FOLDER is {folder}, {system}: never a workspace, which the devcontainer gets "
            f"read-write (and its user has sudo). Give the repository a folder of its own, for example "
            f"{WORKSPACES_ROOT}/<repo name>."
        )
    elif folder:
        problems += _folder_problem("DEVCONTAINER_WORKSPACE_FOLDER", folder)
    return settings, problems


def _parents(path: str) -> list[str]:
    found = []
    while path and os.path.dirname(path) != path:  # up to the root, however spelled ("//" is its own parent)
        path = os.path.dirname(path)
        found.append(path)
    return found


def _folder_problem(env: str, folder: str) -> list[str]:
    try:
        types.Folder().convert(folder, None, None)
    except click.BadParameter as err:
        return [f"{env} {err.message}."]
    return []


def _home(environ: Mapping[str, str]) -> str:
    return environ.get("HOME") or os.path.expanduser("~")


def default_workspace_folder(repository: Repository, environ: Mapping[str, str], home_based: bool) -> str:
    """/workspaces/<repo name>, the path a Coder template mounts its volume at. On a machine without
    /workspaces at all (someone trying the builder on their own machine), ~/workspaces/<repo name>. A
    /workspaces that exists but cannot be written stays the default: a volume mounted read-only is an
    error to report, not a reason to clone somewhere the next restart will not find."""
    root = os.path.join(_home(environ), "workspaces") if home_based else WORKSPACES_ROOT
    return os.path.join(root, repository.name)


def default_state_dir(repository: Repository, environ: Mapping[str, str], home_based: bool) -> str:
    """Beside the workspace folders; on a machine without /workspaces, under ~/.local/state."""
    if not home_based:
        return os.path.join(WORKSPACES_ROOT, ".devcontainer-builder")
    base = environ.get("XDG_STATE_HOME") or os.path.join(_home(environ), ".local", "state")
    name = repository.name if repository is not NO_REPOSITORY else "workspace"
    return os.path.join(base, "devcontainer-builder", name)
