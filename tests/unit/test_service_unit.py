"""The VM unit's start limit follows the builder's own limits: systemd must never kill a boot's `up` that
the builder allows (its wait for the workspace lock, then a run of its own), at the env file's timeouts,
read as systemd reads that file."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from devcontainer_builder.errors import InputError
from devcontainer_builder.host import envfile, systemd
from devcontainer_builder.settings import limits
from devcontainer_builder.settings.options import Settings, load_only

SERVICE = systemd.Service(
    "devcontainer-builder",
    "coder",
    1000,
    "coder",
    "/home/coder",
    "/etc/w.env",
    "/b",
    "/bin",
)


def start_limit_of(timings: Settings) -> int:
    text = systemd.unit_text(dataclasses.replace(SERVICE, timings=timings))
    (value,) = re.findall(r"^TimeoutStartSec=(\d+)$", text, re.MULTILINE)
    return int(value)


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"DEVCONTAINER_BUILD_TIMEOUT": "7200", "DEVCONTAINER_GIT_RETRIES": "10"},
        {
            "DEVCONTAINER_ENGINE_TIMEOUT": "900",
            "DEVCONTAINER_GIT_TIMEOUT": "60",
            "DEVCONTAINER_BUILD_TIMEOUT": "60",
        },
    ],
)
def test_the_unit_waits_for_the_lock_and_a_whole_up_of_its_own(
    env: dict[str, str],
) -> None:
    timings = load_only(systemd.TIMINGS, env)
    allowed = start_limit_of(timings)
    # what one `up` may spend holding the lock: the engine's wait, every git attempt, the initializeCommand
    # and the build, each at its setting's bound
    one_run = timings.engine_timeout + timings.git_timeout * (timings.git_retries + 3) + 2 * timings.build_timeout
    assert limits.run_limit(timings) >= one_run
    assert limits.lock_timeout(timings) >= limits.run_limit(timings), "a waiting up outlasts a slow holder"
    assert allowed == limits.lock_timeout(timings) + limits.run_limit(timings)
    assert f"lock's wait ({limits.lock_timeout(timings)} s)" in systemd.unit_text(
        dataclasses.replace(SERVICE, timings=timings)
    ), "the unit says why"


def test_at_the_defaults_the_unit_outlasts_what_used_to_kill_the_boots_up() -> None:
    defaults = Settings()
    # before: TimeoutStartSec=3600, while the lock alone could be waited for 5,520 s
    assert start_limit_of(defaults) >= 5520 + defaults.build_timeout


def test_the_env_files_timeouts_are_read_as_systemd_reads_them(tmp_path: Path) -> None:
    env = tmp_path / "workspace.env"
    env.write_text(
        "# the workspace's settings\n"
        'DEVCONTAINER_REPOSITORY="https://github.com/acme/app.git"\n'
        "DEVCONTAINER_BUILD_TIMEOUT=600\n"
        'CODER_INIT_SCRIPT="#!/bin/sh\nDEVCONTAINER_BUILD_TIMEOUT=5\nDEVCONTAINER_GIT_RETRIES=\\"9\\"\n"\n'
        "DEVCONTAINER_BUILD_TIMEOUT = '7200'\n"  # a later assignment wins
    )
    timings = systemd.env_timings(str(env))
    assert (timings.build_timeout, timings.git_retries, timings.git_timeout) == (
        7200,
        3,
        600,
    )


def test_a_timeout_the_builder_would_refuse_is_refused_at_install_naming_the_file(
    tmp_path: Path,
) -> None:
    env = tmp_path / "workspace.env"
    env.write_text('DEVCONTAINER_BUILD_TIMEOUT="soon"\nGH_TOKEN="ghp_secret"\n')
    with pytest.raises(InputError) as caught:
        systemd.env_timings(str(env))
    assert f"in {env}: DEVCONTAINER_BUILD_TIMEOUT" in caught.value.message
    assert "ghp_secret" not in caught.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A=1\nB=two words  \n", {"A": "1", "B": "two words"}),
        ("# A=1\n; B=2\n   C = 3\n", {"C": "3"}),
        ("A\nB=2\n", {"B": "2"}),  # a line without = is no assignment
        ("A='single \\n $x \"q\"'\n", {"A": 'single \\n $x "q"'}),
        ('A="a \\" b \\\\ c \\$d \\`e \\x"\n', {"A": 'a " b \\ c $d `e \\x'}),
        ('A="first\nsecond"\nB=3', {"A": "first\nsecond", "B": "3"}),
        (
            "A=one\\\ntwo\n",
            {"A": "onetwo"},
        ),  # a backslash before a newline continues the line
        ('A="one\\\ntwo"\n', {"A": "onetwo"}),
        ("A=x\\ y\\\\z\n", {"A": "x y\\z"}),
        ('A=\nB=""\n', {"A": "", "B": ""}),
        ("A=pre\"quoted\"'single'post\n", {"A": "prequotedsinglepost"}),
        ("# comment \\\ncontinued=1\nA=2\n", {"A": "2"}),
        ('A="unterminated', {"A": "unterminated"}),
    ],
)
def test_systemds_environment_file_syntax(text: str, expected: dict[str, str]) -> None:
    assert envfile.parse(text) == expected
