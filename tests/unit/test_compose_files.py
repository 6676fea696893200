"""What compose would read for a config, checked before compose reads it: real files, real links."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from devcontainer_builder.errors import BuildFailed
from devcontainer_builder.workspace import compose_files, config

APP = "services:\n  app:\n    image: x\n"


def workspace(tmp_path: Path, files: dict[str, str], **settings: object) -> tuple[Path, Path]:
    ws = tmp_path / "ws"
    for name, text in files.items():
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        (ws / name).write_text(text)
    path = ws / ".devcontainer" / "devcontainer.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"dockerComposeFile": "compose.yml", "service": "app", **settings}))
    return ws, path


def load(ws: Path, path: Path) -> dict:
    return config.load(str(path), str(ws))


def refusal(ws: Path, path: Path) -> str:
    with pytest.raises(BuildFailed) as failed:
        load(ws, path)
    assert failed.value.step == "config"
    return failed.value.message


def test_a_compose_config_lists_what_compose_reads_and_builds(tmp_path: Path) -> None:
    ws, path = workspace(tmp_path, {
        ".devcontainer/compose.yml": "include:\n  - db.yml\nservices:\n  app:\n    build: .\n    env_file: app.env\n",
        ".devcontainer/db.yml": "services:\n  db:\n    extends: {file: base.yml, service: base}\n",
        ".devcontainer/base.yml": "services:\n  base:\n    image: x\n",
        ".devcontainer/app.env": "A=1\n",
        ".devcontainer/.env": "TAG=1\n",
        ".devcontainer/Dockerfile": "FROM x\n",
    })  # fmt: skip
    load(ws, path)
    project = compose_files.read(str(path), json.loads(path.read_text()), str(ws))
    folder = ws / ".devcontainer"
    assert project.services == ["db", "app"], "a service only extended is not one of the project"
    assert project.inputs == sorted(
        str(folder / name) for name in ("compose.yml", "db.yml", "base.yml", "app.env", ".env", "Dockerfile")
    )


@pytest.mark.parametrize(
    ("compose", "fragment"),
    [
        ("include:\n  - /etc/compose.yml\n" + APP, "included compose file /etc/compose.yml"),
        ("include:\n  - path: ../../outside.yml\n" + APP, "outside the repository"),
        (APP + "    env_file: /etc/shadow\n", "env file /etc/shadow"),
        (
            APP + "    env_file:\n      - path: ~/.docker/config.json\n        required: false\n",
            "outside the repository",
        ),
        (APP + "    extends:\n      file: /etc/x.yml\n      service: y\n", "extended compose file"),
        (APP + "    env_file: ${HOME}/.env\n", "through a variable"),
        ("include:\n  - ${X:-db.yml}\n" + APP, "through a variable"),
        ("services: [\n", "not valid YAML: expected"),
        ("- a\n- b\n", "must hold a mapping"),
        (APP.replace("app", "web"), "names the service 'app', which its compose files do not define"),
    ],
)
def test_compose_files_may_read_nothing_outside_the_repository(tmp_path: Path, compose: str, fragment: str) -> None:
    (tmp_path / "outside.yml").write_text(APP)
    ws, path = workspace(tmp_path, {".devcontainer/compose.yml": compose})
    assert fragment in refusal(ws, path)


def test_a_link_to_a_host_file_is_followed_and_refused(tmp_path: Path) -> None:
    (tmp_path / "host.env").write_text("SECRET=1\n")
    ws, path = workspace(tmp_path, {".devcontainer/compose.yml": APP + "    env_file: app.env\n"})
    os.symlink(tmp_path / "host.env", ws / ".devcontainer" / "app.env")
    assert "really" in refusal(ws, path) and str(tmp_path / "host.env") in refusal(ws, path)


def test_composes_own_tags_and_yaml_anchors_are_read(tmp_path: Path) -> None:
    compose = (
        "x-base: &base\n  image: x\n  env_file: base.env\n"
        "services:\n  app:\n    <<: *base\n    ports: !reset []\n    environment: !override {A: '1'}\n"
    )
    ws, path = workspace(tmp_path, {".devcontainer/compose.yml": compose, ".devcontainer/base.env": "B=2\n"})
    load(ws, path)
    project = compose_files.read(str(path), json.loads(path.read_text()))
    assert str(ws / ".devcontainer" / "base.env") in project.env_files


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"service": ""}, 'names no "service"'),
        ({"runServices": "app"}, '"runServices" must be a list'),
        ({"runServices": ["app", "cache"]}, "names the service 'cache'"),
        ({"dockerComposeFile": ["compose.yml", 3]}, '"dockerComposeFile" must be a file name'),
        ({"dockerComposeFile": "../../../etc/compose.yml"}, "outside the repository"),
        ({"dockerComposeFile": "missing.yml"}, "which does not exist"),
    ],
)
def test_the_config_names_its_files_and_services(tmp_path: Path, settings: dict, fragment: str) -> None:
    ws, path = workspace(tmp_path, {".devcontainer/compose.yml": APP}, **settings)
    assert fragment in refusal(ws, path)


def test_include_cycles_and_floods_end(tmp_path: Path) -> None:
    files = {
        ".devcontainer/compose.yml": "include:\n  - a.yml\n" + APP,
        ".devcontainer/a.yml": "include:\n  - compose.yml\n",
    }
    ws, path = workspace(tmp_path, files)
    load(ws, path)  # a cycle is read once per file (compose reports cycles itself)
    flood = {f".devcontainer/f{i}.yml": f"include:\n  - f{i + 1}.yml\n" for i in range(80)}
    ws2, path2 = workspace(tmp_path / "2", {".devcontainer/compose.yml": "include:\n  - f0.yml\n" + APP, **flood})
    assert "more than 64 files" in refusal(ws2, path2)
