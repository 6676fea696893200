"""The options table is the one source of truth: parsing, every problem reported at once, README."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from devcontainer_builder.cli import main
from devcontainer_builder.errors import InputError
from devcontainer_builder.settings import options as opts
from support.settings_table import markdown_table

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def load(**env: str) -> opts.Settings:
    return opts.load("up", {}, env)


def problems(**env: str) -> list[str]:
    with pytest.raises(InputError) as caught:
        load(**env)
    return caught.value.problems


def test_defaults_follow_the_product_contract(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(opts, "WORKSPACES_ROOT", str(tmp_path))  # a template's /workspaces volume
    settings = load(DEVCONTAINER_REPOSITORY="https://github.com/acme/widgets.git")
    assert settings.workspace_folder == f"{tmp_path}/widgets"
    assert settings.state_dir == f"{tmp_path}/.devcontainer-builder"
    assert opts.DEFAULT_STATE_DIR == "/workspaces/.devcontainer-builder"
    assert settings.branch == ""
    assert settings.docker_path == ""  # auto: engine/detect.py
    assert settings.fallback_image == opts.DEFAULT_FALLBACK_IMAGE
    assert settings.build_timeout == 1800
    assert settings.cache_from == ()


def test_without_a_workspaces_folder_the_defaults_are_in_the_users_home(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(opts, "WORKSPACES_ROOT", str(tmp_path / "missing"))  # someone's own machine
    settings = opts.load("up", {}, {"DEVCONTAINER_REPOSITORY": "https://h/acme/widgets.git", "HOME": "/home/ada"})
    assert settings.workspace_folder == "/home/ada/workspaces/widgets"
    assert settings.state_dir == "/home/ada/.local/state/devcontainer-builder/widgets"


def test_a_workspaces_folder_that_exists_stays_the_default_even_when_read_only(tmp_path, monkeypatch) -> None:
    """A volume mounted read-only is an error to report, not a reason to clone where a restart won't look."""
    root = tmp_path / "ro"
    root.mkdir(mode=0o555)
    monkeypatch.setattr(opts, "WORKSPACES_ROOT", str(root))
    assert load(DEVCONTAINER_REPOSITORY="https://h/acme/widgets.git").workspace_folder == f"{root}/widgets"


def test_a_missing_repository_names_the_variable_and_the_fix() -> None:
    (problem,) = problems()
    assert "DEVCONTAINER_REPOSITORY is not set" in problem
    assert "--repository" in problem


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        DEVCONTAINER_REPOSITORY="-x",
        DEVCONTAINER_BUILD_TIMEOUT="soon",
        DEVCONTAINER_WORKSPACE_FOLDER="relative/path",
        DEVCONTAINER_CONFIG="../elsewhere/devcontainer.json",
        DEVCONTAINER_CLONE_DEPTH="-1",
        DEVCONTAINER_DOCKER_PATH="nerdctl",
    )
    text = "\n".join(found)
    for name in (
        "DEVCONTAINER_REPOSITORY",
        "DEVCONTAINER_BUILD_TIMEOUT",
        "DEVCONTAINER_WORKSPACE_FOLDER",
        "DEVCONTAINER_CONFIG",
        "DEVCONTAINER_CLONE_DEPTH",
        "DEVCONTAINER_DOCKER_PATH",
    ):
        assert name in text
    assert len(found) == 6


@pytest.mark.parametrize(
    "url",
    ["--upload-pack=touch /tmp/pwned", "-x", "ext::sh -c touch% /tmp/pwned", "fd::17", "ftp://host/repo.git",
     "https://host/repo.git\n--upload-pack=x", "https://-oProxyCommand=x/repo", "ssh://-oProxyCommand=x/repo"],
)  # fmt: skip
def test_hostile_repository_urls_are_refused(url: str) -> None:
    (problem,) = problems(DEVCONTAINER_REPOSITORY=url)
    assert "DEVCONTAINER_REPOSITORY" in problem


@pytest.mark.parametrize(
    "branch", ["--upload-pack=touch /tmp/pwned", "-x", "a..b", "with space", "x.lock", "@{-1}", "trailing/", "a~1"]
)
def test_branch_names_git_would_refuse_are_refused(branch: str) -> None:
    (problem,) = problems(DEVCONTAINER_REPOSITORY="https://h/r.git", DEVCONTAINER_BRANCH=branch)
    assert "DEVCONTAINER_BRANCH" in problem


@pytest.mark.parametrize(
    ("url", "kind", "name"),
    [
        ("https://github.com/acme/app.git", "https", "app"),
        ("git@github.com:acme/app.git", "scp", "app"),
        ("ssh://git@host:2222/srv/app", "ssh", "app"),
        ("file:///srv/git/app.git", "file", "app"),
        ("/srv/git/app", "local", "app"),
    ],
)
def test_repository_forms(url: str, kind: str, name: str) -> None:
    repository = load(DEVCONTAINER_REPOSITORY=url).repository
    assert (repository.kind, repository.name) == (kind, name)


def test_a_password_in_the_url_is_taken_out_of_it_and_treated_as_a_secret() -> None:
    settings = load(DEVCONTAINER_REPOSITORY="https://bot:s3cret-pass@git.example/acme/app.git")
    assert settings.repository.url == "https://git.example/acme/app.git"
    assert settings.repository.password == "s3cret-pass"
    assert "s3cret-pass" in settings.redactable


def test_flags_win_over_the_environment() -> None:
    settings = opts.load("up", {"branch": "dev"}, {"DEVCONTAINER_REPOSITORY": "/r", "DEVCONTAINER_BRANCH": "main"})
    assert settings.branch == "dev"


def test_ssh_key_must_be_base64_of_a_private_key() -> None:
    (problem,) = problems(DEVCONTAINER_REPOSITORY="/r", DEVCONTAINER_SSH_PRIVATE_KEY="not base64!")
    assert "base64" in problem
    (problem,) = problems(
        DEVCONTAINER_REPOSITORY="/r", DEVCONTAINER_SSH_PRIVATE_KEY=base64.b64encode(b"hello").decode()
    )
    assert "not a private key" in problem


def test_state_dir_inside_the_workspace_is_refused() -> None:
    (problem,) = problems(
        DEVCONTAINER_REPOSITORY="/r",
        DEVCONTAINER_WORKSPACE_FOLDER="/workspaces/app",
        DEVCONTAINER_STATE_DIR="/workspaces/app/.state",
    )
    assert "inside the workspace folder" in problem


def test_secrets_have_no_flag() -> None:
    secret = [option for option in opts.OPTIONS if option.secret]
    assert {option.env for option in secret} >= {"GH_TOKEN", "DEVCONTAINER_SSH_PRIVATE_KEY"}
    assert all(option.flag is None for option in secret)
    flags = {param.name for param in main.commands["up"].params}
    assert "gh_token" not in flags and "ssh_private_key" not in flags


def test_every_non_secret_option_of_up_is_a_flag() -> None:
    flags = {param.name for param in main.commands["up"].params}
    expected = {option.name for option in opts.options_for("up") if option.flag}
    assert flags == expected


@pytest.mark.parametrize("command", ["up", "serve", "rebuild", "status"])
def test_help_shows_a_users_options_first_and_the_plumbing_in_a_group_after_them(command: str) -> None:
    text = CliRunner().invoke(main, [command, "--help"], terminal_width=110).output
    user, heading, plumbing = text.partition(opts.ADVANCED_HEADING)

    def flags(section: str) -> set[str]:
        return set(re.findall(r"^  (--[a-z0-9-]+)", section, flags=re.MULTILINE)) - {"--help"}

    every = {name for param in main.commands[command].params for name in param.opts if name.startswith("--")}
    advanced = {option.flag for option in opts.options_for(command) if option.flag and option.advanced}
    assert flags(plumbing) == advanced
    assert flags(user) == every - advanced - {"--help"}, "the command's own options and a user's settings"
    assert heading or not flags(plumbing)
    assert "--help" in user, "the usual options, --help among them, come first"


def test_the_plumbing_is_what_the_templates_set() -> None:
    assert [option.env for option in opts.OPTIONS if option.advanced] == [
        "DEVCONTAINER_STATE_DIR",
        "DEVCONTAINER_ENGINE_TIMEOUT",
        "DEVCONTAINER_WORKSPACE_UID",
        "DEVCONTAINER_WORKSPACE_GID",
        "DEVCONTAINER_REBUILD_ID",
        "CODER_AGENT_URL",
        "DEVCONTAINER_CODER_LOG_LEVEL",
        "DEVCONTAINER_SERVE_ADDRESS",
        "DEVCONTAINER_SERVE_HOSTS",
    ]
    up = CliRunner().invoke(main, ["up", "--help"], terminal_width=110).output
    assert opts.ADVANCED_HEADING in up


def test_the_documented_table_is_the_generated_one() -> None:
    text = REFERENCE.read_text()
    start = text.index("<!-- options:start -->\n") + len("<!-- options:start -->\n")
    end = text.index("<!-- options:end -->")
    assert text[start:end] == markdown_table(), "docs/configuration.md's table is stale: run `make docs`"


@pytest.mark.parametrize("text", ["١٢", " 5", "5 ", "1_000", "+5", "0x10", "1e3", "99999999999999999999"])
def test_numbers_are_plain_ascii_digits(text: str) -> None:
    found = problems(DEVCONTAINER_REPOSITORY="https://example.com/r.git", DEVCONTAINER_BUILD_TIMEOUT=text)
    assert any("DEVCONTAINER_BUILD_TIMEOUT" in problem for problem in found), found


def test_a_number_in_range_is_taken_and_help_shows_the_range() -> None:
    settings = load(DEVCONTAINER_REPOSITORY="https://example.com/r.git", DEVCONTAINER_BUILD_TIMEOUT="600")
    assert settings.build_timeout == 600
    option = next(option for option in opts.OPTIONS if option.env == "DEVCONTAINER_BUILD_TIMEOUT")
    assert option.type.name == "1-604800"


def test_status_finds_the_state_dir_up_would_use_from_the_same_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    env = {"DEVCONTAINER_REPOSITORY": "https://example.com/acme/widgets.git"}
    assert opts.load("status", {}, env).state_dir == opts.load("up", {}, env).state_dir


@pytest.mark.parametrize(
    ("address", "expected"),
    [("127.0.0.1:7480", ("127.0.0.1", 7480)), ("[::1]:9000", ("::1", 9000)), ("localhost:80", ("localhost", 80))],
)
def test_the_serve_address_takes_ip_addresses_and_bracketed_ipv6(address: str, expected: tuple) -> None:
    env = {"DEVCONTAINER_REPOSITORY": "https://example.com/r.git", "DEVCONTAINER_SERVE_ADDRESS": address}
    assert opts.load("serve", {}, env).serve_address == expected


@pytest.mark.parametrize(
    ("address", "fragment"),
    [
        (" 127.0.0.1:7480", "IP address"),  # a stray space is a typo, not a host
        ("127.0.0.1:7480 ", "port"),
        ("127.0.0.1:\u0667\u0664\u0668\u0660", "port"),  # Arabic-Indic digits are digits to str.isdigit
        ("\u0661\u0662\u0667.0.0.1:80", "IP address"),
        ("::1:7480", "brackets"),
        ("[127.0.0.1]:80", "IP address"),
        ("host.example:80", "IP address"),
    ],
)
def test_a_serve_address_that_is_not_plainly_host_and_port_is_refused(address: str, fragment: str) -> None:
    with pytest.raises(InputError) as caught:
        opts.load("serve", {}, {"DEVCONTAINER_SERVE_ADDRESS": address})
    assert fragment in " ".join(caught.value.problems)


def test_the_quick_status_path_finds_the_state_dir_the_settings_would(tmp_path: Path) -> None:
    from devcontainer_builder import launch

    assert launch.WORKSPACES_STATE_DIR == opts.DEFAULT_STATE_DIR
    (tmp_path / "state.json").write_text('{"status": "degraded", "error": {"step": "build", "message": "x"}}')
    assert launch.quick_status(["status", "--short", "--state-dir", str(tmp_path)], {}) == 0
    assert launch.quick_status(["status", "--short"], {"DEVCONTAINER_STATE_DIR": str(tmp_path)}) == 0
    assert launch.quick_status(["status", "--short", "--json"], {}) is None, "anything else: the full command"
    assert launch.quick_status(["status", "--short", "--state-dir", "relative"], {}) is None


def test_a_malformed_agent_token_is_one_problem_not_two() -> None:
    found = problems(
        DEVCONTAINER_REPOSITORY="https://example.com/r.git",
        CODER_AGENT_URL="https://coder.example.com",
        CODER_AGENT_TOKEN="not-a-uuid",
    )
    assert len(found) == 1 and found[0].startswith("CODER_AGENT_TOKEN"), found


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("container:other", "network mode"), ("ns:/proc/1/ns/net", "network mode"), ("host,other", "network mode"),
     ("-host", "network mode")],
)  # fmt: skip
def test_a_network_is_a_mode_or_a_name_never_another_containers(value: str, fragment: str) -> None:
    found = problems(DEVCONTAINER_REPOSITORY="https://example.com/r.git", DEVCONTAINER_NETWORK=value)
    assert any("DEVCONTAINER_NETWORK" in p and fragment in p for p in found), found


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("relative/state", "/absolute/path or ~/path"), ("~root/x", "/absolute/path or ~/path"), ("~", "/absolute"),
     ("/", "/absolute"), ("/a/../etc", "may not hold '..'"), ("/a,type=bind,source=/", "may not hold"),
     ("~/x=y", "may not hold")],
)  # fmt: skip
def test_persisted_folders_are_container_paths_that_cannot_smuggle_mount_options(value: str, fragment: str) -> None:
    found = problems(DEVCONTAINER_REPOSITORY="https://example.com/r.git", DEVCONTAINER_PERSIST=value)
    assert any("DEVCONTAINER_PERSIST" in p and fragment in p for p in found), found


def test_persisted_folders_are_kept_once_each_in_order() -> None:
    settings = load(DEVCONTAINER_REPOSITORY="https://example.com/r.git",
                    DEVCONTAINER_PERSIST="~/.vscode-server /opt/state/ ~/.vscode-server")  # fmt: skip
    assert settings.persist == ("~/.vscode-server", "/opt/state")


def test_a_state_dir_reached_through_a_link_into_the_workspace_is_refused(tmp_path: Path) -> None:
    """A link (/workspaces on a data disk, say) must not put the state - checked copies the supervisor's
    builds trust, its socket - inside the folder the devcontainer gets read-write."""
    (tmp_path / "ws").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "ws")
    found = problems(
        DEVCONTAINER_REPOSITORY="https://h/acme/widgets.git",
        DEVCONTAINER_WORKSPACE_FOLDER=str(tmp_path / "ws"),
        DEVCONTAINER_STATE_DIR=str(tmp_path / "link" / "state"),
    )
    assert any("DEVCONTAINER_STATE_DIR" in p and "inside the workspace folder" in p for p in found), found
