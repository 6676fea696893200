"""initializeCommand's forms, read as the devcontainer CLI reads them, for the sandbox (up/initialize.py)."""

from __future__ import annotations

import pytest
from devcontainer_builder.errors import BuildFailed
from devcontainer_builder.up import initialize
from devcontainer_builder.up.initialize import Command

FOLDER = {"localWorkspaceFolder": "/workspaces/app", "localWorkspaceFolderBasename": "app"}


def test_a_string_runs_through_sh_an_array_as_it_is_and_an_object_each_of_its_values() -> None:
    assert initialize.commands("touch .env", FOLDER) == [Command("", ["/bin/sh", "-c", "touch .env"])]
    assert initialize.commands(["mkdir", "-p", "x y"], FOLDER) == [Command("", ["mkdir", "-p", "x y"])]
    assert initialize.commands({"a": "touch .env", "b": ["mkdir", "b"], "empty": []}, FOLDER) == [
        Command("a", ["/bin/sh", "-c", "touch .env"]),
        Command("b", ["mkdir", "b"]),
    ]


@pytest.mark.parametrize("value", ["", "   ", [], {}, None])
def test_nothing_to_run_is_not_present(value: object) -> None:
    assert not initialize.present(value)


def test_the_folder_is_substituted_and_the_builders_environment_is_not_read() -> None:
    command = "cp ${localWorkspaceFolder}/a ${localWorkspaceFolderBasename} ${localEnv:GH_TOKEN} ${localEnv:X:dflt}"
    (found,) = initialize.commands(command, FOLDER)
    assert found.argv[-1] == "cp /workspaces/app/a app  dflt"


@pytest.mark.parametrize("value", [["touch", 1], 42, {"a": {"nested": "x"}}])
def test_a_malformed_command_is_a_config_failure_naming_it(value: object) -> None:
    with pytest.raises(BuildFailed, match="initializeCommand") as failure:
        initialize.commands(value, FOLDER)
    assert failure.value.step == "config"
