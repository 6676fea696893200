"""Bad values for every setting and command, each of which must exit 2 with a message naming it.

One table, run for real through the builder's command line (tests/test_hostile.py) and counted in
docs/security.md (tests/unit/test_security_report.py checks the count there). `{sandbox}` is the test's
own folder. The environment is the tests' base one plus a valid repository, workspace folder and state
dir in the sandbox, so each case holds one bad value (or the one pair of values that clash).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

TOKEN = "8c0e3c1e-5a1b-4c55-9d1e-0f6a3b2c1d4e"


@dataclass(frozen=True)
class BadInput:
    id: str
    env: dict[str, str]
    named: str  # what the message must name
    argv: tuple[str, ...] = ("up",)
    secret: str = ""  # a value that must not be echoed


def up(case_id: str, named: str, **env: str) -> BadInput:
    return BadInput(case_id, env, named)


def on(command: str, case_id: str, named: str, **env: str) -> BadInput:
    return BadInput(case_id, env, named, (command,))


def service(case_id: str, named: str, *args: str) -> BadInput:
    return BadInput(case_id, {}, named, ("install-service", *args))


NOT_A_KEY = base64.b64encode(b"just some text\n").decode()
R = "DEVCONTAINER_REPOSITORY"
B = "DEVCONTAINER_BRANCH"
W = "DEVCONTAINER_WORKSPACE_FOLDER"

BAD_INPUTS: tuple[BadInput, ...] = (
    # the repository
    up("repo-upload-pack", R, DEVCONTAINER_REPOSITORY="--upload-pack=touch /tmp/dcb-pwned"),
    up("repo-dash", R, DEVCONTAINER_REPOSITORY="-x"),
    up("repo-ext", R, DEVCONTAINER_REPOSITORY="ext::sh -c touch% /tmp/dcb-pwned"),
    up("repo-fd", R, DEVCONTAINER_REPOSITORY="fd::17"),
    up("repo-ftp", R, DEVCONTAINER_REPOSITORY="ftp://host/repo.git"),
    up("repo-newline", R, DEVCONTAINER_REPOSITORY="https://host/repo.git\n--upload-pack=x"),
    up("repo-ssh-option-host", R, DEVCONTAINER_REPOSITORY="ssh://-oProxyCommand=x/repo"),
    up("repo-space-in-host", R, DEVCONTAINER_REPOSITORY="https://git ex.com/acme/app.git"),
    up("repo-quote-in-host", R, DEVCONTAINER_REPOSITORY="https://git'ex.com/acme/app.git"),
    up("repo-space-in-scp-host", R, DEVCONTAINER_REPOSITORY="git@git ex.com:acme/app.git"),
    up("repo-bad-port", R, DEVCONTAINER_REPOSITORY="https://git.example:99999/acme/app.git"),
    up("repo-no-host", R, DEVCONTAINER_REPOSITORY="https:///acme/app.git"),
    up("repo-unset", "DEVCONTAINER_REPOSITORY is not set", DEVCONTAINER_REPOSITORY=""),
    up("repo-too-long", R, DEVCONTAINER_REPOSITORY="https://git.example/" + "x" * 3000),
    up("repo-not-a-url", R, DEVCONTAINER_REPOSITORY="acme/app"),
    # the branch
    up("branch-head", B, DEVCONTAINER_BRANCH="HEAD"),
    up("branch-100k", B, DEVCONTAINER_BRANCH="b" * 100_000),
    up("branch-dots", B, DEVCONTAINER_BRANCH="a..b"),
    up("branch-dash", B, DEVCONTAINER_BRANCH="-x"),
    up("branch-upload-pack", B, DEVCONTAINER_BRANCH="--upload-pack=touch /tmp/dcb-pwned"),
    up("branch-space", B, DEVCONTAINER_BRANCH="with space"),
    up("branch-reflog", B, DEVCONTAINER_BRANCH="@{-1}"),
    up("branch-lock", B, DEVCONTAINER_BRANCH="x.lock"),
    # the workspace folder
    up("folder-relative", W, DEVCONTAINER_WORKSPACE_FOLDER="relative"),
    up("folder-path-max", "longer than PATH_MAX", DEVCONTAINER_WORKSPACE_FOLDER="/" + "a" * 5000),
    up("folder-name-max", "longer than 255", DEVCONTAINER_WORKSPACE_FOLDER="/x/" + "b" * 300),
    up("folder-root", W, DEVCONTAINER_WORKSPACE_FOLDER="/"),
    up("folder-etc", "never a workspace", DEVCONTAINER_WORKSPACE_FOLDER="/etc"),
    up("folder-usr", "never a workspace", DEVCONTAINER_WORKSPACE_FOLDER="/usr/local/src"),
    up("folder-var", "never a workspace", DEVCONTAINER_WORKSPACE_FOLDER="/var"),
    up("folder-proc-cwd", "never a workspace", DEVCONTAINER_WORKSPACE_FOLDER="/proc/self/cwd/x"),
    up("folder-another-home", "never a workspace", DEVCONTAINER_WORKSPACE_FOLDER="/home/dcb-user/app"),
    up("folder-workspaces", "never a workspace", DEVCONTAINER_WORKSPACE_FOLDER="/workspaces"),
    up("folder-state-parent", "inside the workspace folder", DEVCONTAINER_WORKSPACE_FOLDER="{sandbox}/state"),
    up("folder-under-file", "a file, not a folder", DEVCONTAINER_WORKSPACE_FOLDER="{sandbox}/a-file/app"),
    up("folder-existing-files", "already exists and is not a clone", DEVCONTAINER_WORKSPACE_FOLDER="{sandbox}/full"),
    # the state dir and the config
    up("state-relative", "DEVCONTAINER_STATE_DIR", DEVCONTAINER_STATE_DIR="state"),
    up("state-in-workspace", "inside the workspace folder", DEVCONTAINER_STATE_DIR="{sandbox}/workspaces/app/.s"),
    up("state-under-file", "a file, not a folder", DEVCONTAINER_STATE_DIR="{sandbox}/a-file/state"),
    up("config-outside", "DEVCONTAINER_CONFIG", DEVCONTAINER_CONFIG="../../etc/devcontainer.json"),
    up("config-absolute", "DEVCONTAINER_CONFIG", DEVCONTAINER_CONFIG="/etc/devcontainer.json"),
    up("config-other-name", "DEVCONTAINER_CONFIG", DEVCONTAINER_CONFIG=".devcontainer/config.json"),
    # numbers
    up("timeout-overflow", "DEVCONTAINER_BUILD_TIMEOUT", DEVCONTAINER_BUILD_TIMEOUT="9" * 25),
    up("timeout-word", "DEVCONTAINER_BUILD_TIMEOUT", DEVCONTAINER_BUILD_TIMEOUT="soon"),
    up("timeout-arabic-digits", "DEVCONTAINER_BUILD_TIMEOUT", DEVCONTAINER_BUILD_TIMEOUT="١٢"),
    up("timeout-zero", "DEVCONTAINER_BUILD_TIMEOUT", DEVCONTAINER_BUILD_TIMEOUT="0"),
    up("timeout-exponent", "DEVCONTAINER_BUILD_TIMEOUT", DEVCONTAINER_BUILD_TIMEOUT="1e3"),
    up("uid-minus-one", "DEVCONTAINER_WORKSPACE_UID", DEVCONTAINER_WORKSPACE_UID="4294967295"),
    up("gid-negative", "DEVCONTAINER_WORKSPACE_GID", DEVCONTAINER_WORKSPACE_GID="-1"),
    up("depth-overflow", "DEVCONTAINER_CLONE_DEPTH", DEVCONTAINER_CLONE_DEPTH="99999999999"),
    up("retries", "DEVCONTAINER_GIT_RETRIES", DEVCONTAINER_GIT_RETRIES="1000000"),
    up("git-timeout-hex", "DEVCONTAINER_GIT_TIMEOUT", DEVCONTAINER_GIT_TIMEOUT="0x10"),
    up("engine-timeout-space", "DEVCONTAINER_ENGINE_TIMEOUT", DEVCONTAINER_ENGINE_TIMEOUT=" 5"),
    up("keepalive-word-up", "DEVCONTAINER_KEEPALIVE_ATTEMPTS", DEVCONTAINER_KEEPALIVE_ATTEMPTS="abc"),
    on("serve", "keepalive-word-serve", "DEVCONTAINER_KEEPALIVE_ATTEMPTS", DEVCONTAINER_KEEPALIVE_ATTEMPTS="abc"),
    on("status", "keepalive-word-status", "DEVCONTAINER_KEEPALIVE_ATTEMPTS", DEVCONTAINER_KEEPALIVE_ATTEMPTS="abc"),
    # images
    up("fallback-empty", "DEVCONTAINER_FALLBACK_IMAGE is set but empty", DEVCONTAINER_FALLBACK_IMAGE=""),
    up("fallback-blank", "DEVCONTAINER_FALLBACK_IMAGE", DEVCONTAINER_FALLBACK_IMAGE="  "),
    up("fallback-upper-case", "DEVCONTAINER_FALLBACK_IMAGE", DEVCONTAINER_FALLBACK_IMAGE="Debian:Trixie"),
    up("fallback-semicolon", "DEVCONTAINER_FALLBACK_IMAGE", DEVCONTAINER_FALLBACK_IMAGE="debian;id"),
    up("fallback-dash", "DEVCONTAINER_FALLBACK_IMAGE", DEVCONTAINER_FALLBACK_IMAGE="--privileged"),
    up("fallback-space", "DEVCONTAINER_FALLBACK_IMAGE", DEVCONTAINER_FALLBACK_IMAGE="debian trixie"),
    up("image-node-url", "DEVCONTAINER_IMAGE_NODE", DEVCONTAINER_IMAGE_NODE="https://registry.example/node"),
    on("serve", "fallback-upper-case-serve", "DEVCONTAINER_FALLBACK_IMAGE", DEVCONTAINER_FALLBACK_IMAGE="A"),
    # the engine and the cache
    up("docker-path-other", "DEVCONTAINER_DOCKER_PATH", DEVCONTAINER_DOCKER_PATH="nerdctl"),
    up("cache-to-two", "DEVCONTAINER_CACHE_TO", DEVCONTAINER_CACHE_TO="type=inline type=local,dest=/x"),
    up("cache-from-flag", "DEVCONTAINER_CACHE_FROM", DEVCONTAINER_CACHE_FROM="--push"),
    # Coder
    BadInput(
        "agent-url-password",
        {"CODER_AGENT_URL": "https://user:hunter22@coder.example", "CODER_AGENT_TOKEN": TOKEN},
        "CODER_AGENT_URL",
        secret="hunter22",
    ),
    up("agent-url-space", "CODER_AGENT_URL", CODER_AGENT_URL="https://coder.example/a b", CODER_AGENT_TOKEN=TOKEN),
    up(
        "agent-url-length",
        "CODER_AGENT_URL",
        CODER_AGENT_URL="https://c.example/" + "x" * 3000,
        CODER_AGENT_TOKEN=TOKEN,
    ),
    up("agent-url-scheme", "CODER_AGENT_URL", CODER_AGENT_URL="ftp://coder.example", CODER_AGENT_TOKEN=TOKEN),
    up("agent-token-not-uuid", "CODER_AGENT_TOKEN", CODER_AGENT_URL="https://coder.example", CODER_AGENT_TOKEN="x"),
    up("agent-url-alone", "go together", CODER_AGENT_URL="https://coder.example"),
    up("init-script-alone", "CODER_INIT_SCRIPT", CODER_INIT_SCRIPT="#!/bin/sh\necho hi\n"),
    up("coder-log-level", "DEVCONTAINER_CODER_LOG_LEVEL", DEVCONTAINER_CODER_LOG_LEVEL="chatty"),
    up("log-level", "DEVCONTAINER_LOG_LEVEL", DEVCONTAINER_LOG_LEVEL="loud"),
    on(
        "serve",
        "serve-agent-alone",
        "DEVCONTAINER_SERVE_AGENT_INIT_SCRIPT",
        DEVCONTAINER_SERVE_AGENT_INIT_SCRIPT="#!/bin/sh\n",
    ),
    # the supervisor's address
    up("serve-address-port", "DEVCONTAINER_SERVE_ADDRESS", DEVCONTAINER_SERVE_ADDRESS="0.0.0.0:99999"),
    on("serve", "serve-address-name", "DEVCONTAINER_SERVE_ADDRESS", DEVCONTAINER_SERVE_ADDRESS="host.example:80"),
    on("rebuild", "serve-address-ipv6", "DEVCONTAINER_SERVE_ADDRESS", DEVCONTAINER_SERVE_ADDRESS="::1:7480"),
    # `//` is the root to Linux, and its own parent to os.path: a walk up to "/" once never ended
    up("workspace-double-slash", "DEVCONTAINER_WORKSPACE_FOLDER", DEVCONTAINER_WORKSPACE_FOLDER="//etc"),
    on("status", "state-dir-double-slash", "DEVCONTAINER_STATE_DIR", DEVCONTAINER_STATE_DIR="//"),
    # the state dir is the builder's: never a system folder, nor one that holds others'
    up("state-dir-system", "DEVCONTAINER_STATE_DIR", DEVCONTAINER_STATE_DIR="/etc/dcb-state"),
    up("state-dir-proc", "DEVCONTAINER_STATE_DIR", DEVCONTAINER_STATE_DIR="/proc/self/cwd/state"),
    # the key that guards every change over TCP: one letter would be guessed within the rate limit
    BadInput(
        "serve-page-key-short",
        {"DEVCONTAINER_SERVE_PAGE_KEY": "k3yZ9"},
        "DEVCONTAINER_SERVE_PAGE_KEY",
        ("serve",),
        "k3yZ9",
    ),
    # a Host header is a name: a wildcard, a URL or a path would never match, and hide the admin's mistake
    on("serve", "serve-hosts-wildcard", "DEVCONTAINER_SERVE_HOSTS", DEVCONTAINER_SERVE_HOSTS="*"),
    on("serve", "serve-hosts-url", "DEVCONTAINER_SERVE_HOSTS", DEVCONTAINER_SERVE_HOSTS="http://dev.example"),
    on("serve", "serve-hosts-path", "DEVCONTAINER_SERVE_HOSTS", DEVCONTAINER_SERVE_HOSTS="dev.example/path"),
    # the admin's additions and policy
    up("network-container", "DEVCONTAINER_NETWORK", DEVCONTAINER_NETWORK="container:other"),
    up("network-two", "DEVCONTAINER_NETWORK", DEVCONTAINER_NETWORK="host,other"),
    up("persist-relative", "DEVCONTAINER_PERSIST", DEVCONTAINER_PERSIST="relative/state"),
    up("persist-dots", "DEVCONTAINER_PERSIST", DEVCONTAINER_PERSIST="/a/../etc"),
    up("persist-mount-options", "DEVCONTAINER_PERSIST", DEVCONTAINER_PERSIST="/a,type=bind,source=/"),
    up("persist-colon", "DEVCONTAINER_PERSIST", DEVCONTAINER_PERSIST="/data:/host"),
    up("persist-home", "DEVCONTAINER_PERSIST", DEVCONTAINER_PERSIST="~"),
    up("mounts-dots", "DEVCONTAINER_ALLOWED_MOUNTS", DEVCONTAINER_ALLOWED_MOUNTS="/srv/data/../../etc"),
    up("mounts-relative", "DEVCONTAINER_ALLOWED_MOUNTS", DEVCONTAINER_ALLOWED_MOUNTS="data"),
    up("capability-unknown", "DEVCONTAINER_ALLOWED_CAPABILITIES", DEVCONTAINER_ALLOWED_CAPABILITIES="SYS_PTRAC"),
    up("capability-made-up", "DEVCONTAINER_ALLOWED_CAPABILITIES", DEVCONTAINER_ALLOWED_CAPABILITIES="ROOT_ACCESS"),
    up("capability-dashes", "DEVCONTAINER_ALLOWED_CAPABILITIES", DEVCONTAINER_ALLOWED_CAPABILITIES="sys-admin"),
    up("privilege-unknown", "DEVCONTAINER_ALLOWED_PRIVILEGES", DEVCONTAINER_ALLOWED_PRIVILEGES="root"),
    # git credentials
    up("git-user-colon", "DEVCONTAINER_GIT_USERNAME", DEVCONTAINER_GIT_USERNAME="bot:hunter22"),
    up("git-user-space", "DEVCONTAINER_GIT_USERNAME", DEVCONTAINER_GIT_USERNAME="the bot"),
    up("ssh-key-not-base64", "DEVCONTAINER_SSH_PRIVATE_KEY", DEVCONTAINER_SSH_PRIVATE_KEY="not base64!"),
    up("ssh-key-not-a-key", "DEVCONTAINER_SSH_PRIVATE_KEY", DEVCONTAINER_SSH_PRIVATE_KEY=NOT_A_KEY),
    up(
        "ssh-key-path-missing",
        "DEVCONTAINER_SSH_PRIVATE_KEY_PATH",
        DEVCONTAINER_SSH_PRIVATE_KEY_PATH="/nonexistent/key",
    ),
    up("ca-bundle-missing", "DEVCONTAINER_CA_BUNDLE", DEVCONTAINER_CA_BUNDLE="/nonexistent/ca.pem"),
    up("ca-bundle-not-pem", "DEVCONTAINER_CA_BUNDLE", DEVCONTAINER_CA_BUNDLE="/etc/hostname"),
    # the user's dotfiles: the devcontainer CLI clones them in the container, pasting the values into a shell script
    BadInput(
        "dotfiles-token-as-user",
        {"DEVCONTAINER_DOTFILES_REPOSITORY": "https://ghp_dotfilestoken0123456789@github.com/me/dots"},
        "DEVCONTAINER_DOTFILES_REPOSITORY must not carry credentials",
        secret="ghp_dotfilestoken0123456789",
    ),
    up("dotfiles-builder-path", "not a path", DEVCONTAINER_DOTFILES_REPOSITORY="{sandbox}/dotfiles.git"),
    up("dotfiles-file-url", "not a path", DEVCONTAINER_DOTFILES_REPOSITORY="file:///srv/dotfiles.git"),
    up(
        "dotfiles-gitweb-semicolon",
        "DEVCONTAINER_DOTFILES_REPOSITORY holds a character",
        DEVCONTAINER_DOTFILES_REPOSITORY="https://git.example/?p=dots.git;touch${IFS}/tmp/dcb-pwned",
    ),
    up("dotfiles-substitution", "DEVCONTAINER_DOTFILES_REPOSITORY", DEVCONTAINER_DOTFILES_REPOSITORY="me/$(id)"),
    up(
        "dotfiles-install-quote",
        "DEVCONTAINER_DOTFILES_INSTALL_COMMAND",
        DEVCONTAINER_DOTFILES_REPOSITORY="me/dots",
        DEVCONTAINER_DOTFILES_INSTALL_COMMAND="x.sh';touch /tmp/dcb-pwned;'",
    ),
    # switches and modes
    up("rebuild-maybe", "DEVCONTAINER_REBUILD", DEVCONTAINER_REBUILD="maybe"),
    up("use-existing-perhaps", "DEVCONTAINER_USE_EXISTING_FOLDER", DEVCONTAINER_USE_EXISTING_FOLDER="perhaps"),
    up("mode-unknown", "DEVCONTAINER_BUILDER_MODE", DEVCONTAINER_BUILDER_MODE="both"),
    up("rebuild-id-newline", "DEVCONTAINER_REBUILD_ID", DEVCONTAINER_REBUILD_ID="a\nb"),
    on("status", "status-state-relative", "DEVCONTAINER_STATE_DIR", DEVCONTAINER_STATE_DIR="state"),
    # install-service
    service("unit-dir-relative", "--unit-dir must be an absolute path", "--unit-dir", "units"),
    service("unit-dir-missing", "is not an existing folder", "--unit-dir", "{sandbox}/missing"),
    service("unit-dir-world-writable", "writable by others than root", "--unit-dir", "{sandbox}/open"),
    service("service-name-path", "plain unit name", "--name", "../evil", "--unit-dir", "{sandbox}/units"),
    service("service-user-missing", "there is no user", "--user", "nobody-here"),
    service("service-user-root", "not root", "--user", "root"),
    service("env-file-relative", "must be an absolute path", "--env-file", "workspace.env"),
    service("env-file-readable", "must be root's with mode 0600", "--env-file", "{sandbox}/readable.env"),
)
