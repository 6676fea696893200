"""Config resolution in the documented order, against real folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from devcontainer_builder.errors import BuildFailed
from devcontainer_builder.workspace import config

IMAGES = {"node": "img/node", "python": "img/python", "go": "img/go", "rust": "img/rust", "ruby": "img/ruby"}


def resolve(workspace: Path, requested: str = "") -> config.ResolvedConfig:
    return config.resolve(
        str(workspace),
        requested=requested,
        repo_name="app",
        images=IMAGES,
        fallback_image="fallback/img:1",
        generated_dir=str(workspace.parent / "generated"),
        owner=None,
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_explicit_config_wins(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write(ws / ".devcontainer/devcontainer.json", '{"image": "a"}')
    write(ws / "tools/devcontainer.json", '{"image": "b"}')
    assert resolve(ws, "tools/devcontainer.json").data == {"image": "b"}


def test_the_standard_lookup_order(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write(ws / ".devcontainer.json", '{"image": "root-file"}')
    assert resolve(ws).data["image"] == "root-file"
    write(ws / ".devcontainer/devcontainer.json", '{"image": "folder"}')
    assert resolve(ws).data["image"] == "folder"


def test_a_single_named_config_is_used(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write(ws / ".devcontainer/python/devcontainer.json", '{"image": "py"}')
    resolved = resolve(ws)
    assert resolved.kind == "repository" and resolved.data["image"] == "py"


def test_several_named_configs_need_a_choice(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write(ws / ".devcontainer/a/devcontainer.json", '{"image": "a"}')
    write(ws / ".devcontainer/b/devcontainer.json", '{"image": "b"}')
    with pytest.raises(BuildFailed, match="DEVCONTAINER_CONFIG") as caught:
        resolve(ws)
    assert ".devcontainer/a/devcontainer.json" in caught.value.message


def test_a_missing_explicit_config_is_a_build_failure(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    with pytest.raises(BuildFailed, match="does not exist"):
        resolve(ws, "nope/devcontainer.json")


def test_a_symlink_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    outside = write(tmp_path / "outside/devcontainer.json", '{"image": "x"}')
    (ws / "link").mkdir(parents=True)
    os.symlink(outside, ws / "link/devcontainer.json")
    with pytest.raises(BuildFailed, match="outside the repository"):
        resolve(ws, "link/devcontainer.json")


@pytest.mark.parametrize(
    ("marker", "key", "label"),
    [("package.json", "node", "Node.js"), ("pyproject.toml", "python", "Python"),
     ("requirements.txt", "python", "Python"), ("go.mod", "go", "Go"), ("Cargo.toml", "rust", "Rust"),
     ("Gemfile", "ruby", "Ruby")],
)  # fmt: skip
def test_a_config_is_generated_from_the_project_type(tmp_path: Path, marker: str, key: str, label: str) -> None:
    ws = tmp_path / "ws"
    write(ws / marker, "")
    resolved = resolve(ws)
    assert resolved.kind == "generated"
    assert resolved.path == str(ws / ".devcontainer/devcontainer.json")
    text = Path(resolved.path).read_text()
    assert text.startswith(config.GENERATED_MARKER)
    assert resolved.data == {"name": f"app ({label})", "image": IMAGES[key]}
    assert marker in text


def test_a_generated_config_follows_the_image_setting_but_an_edited_one_is_the_users(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write(ws / "go.mod", "")
    first = resolve(ws)
    IMAGES_CHANGED = dict(IMAGES, go="img/go2")
    second = config.resolve(
        str(ws), requested="", repo_name="app", images=IMAGES_CHANGED, fallback_image="f",
        generated_dir=str(tmp_path / "gen"), owner=None,
    )  # fmt: skip
    assert second.data["image"] == "img/go2" and second.config_hash != first.config_hash
    Path(second.path).write_text('{"image": "mine"}')
    assert resolve(ws).kind == "repository"
    assert resolve(ws).data == {"image": "mine"}


def test_no_config_and_no_project_type_uses_the_fallback_image_without_touching_the_repository(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write(ws / "README.md", "docs only")
    resolved = resolve(ws)
    assert resolved.kind == "default-image" and resolved.override
    assert json.loads(Path(resolved.path).read_text())["image"] == "fallback/img:1"
    assert not (ws / ".devcontainer").exists()


def test_a_truncated_config_fails_with_file_line_and_column(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write(ws / ".devcontainer/devcontainer.json", '{\n  // comment\n  "image": "debian",\n')
    with pytest.raises(BuildFailed) as caught:
        resolve(ws)
    message = caught.value.message
    assert ".devcontainer/devcontainer.json" in message
    assert "line 3" in message and "column" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1, 2]", "JSON object"),
        ('{"name": "x"}', '"image"'),
        ('{"build": {"dockerfile": "Missing"}}', "does not exist"),
    ],
)
def test_configs_the_cli_cannot_use_are_reported(tmp_path: Path, text: str, expected: str) -> None:
    ws = tmp_path / "ws"
    write(ws / ".devcontainer/devcontainer.json", text)
    with pytest.raises(BuildFailed, match=expected):
        resolve(ws)


def test_the_hash_covers_the_dockerfile_and_the_config_folder_but_not_the_lockfile(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write(ws / ".devcontainer/devcontainer.json", '{"build": {"dockerfile": "../Dockerfile"}}')
    write(ws / "Dockerfile", "FROM a\n")
    first = resolve(ws).config_hash
    write(ws / ".devcontainer/devcontainer-lock.json", "{}")
    assert resolve(ws).config_hash == first
    write(ws / "Dockerfile", "FROM b\n")
    second = resolve(ws).config_hash
    assert second != first
    write(ws / ".devcontainer/feature/install.sh", "echo hi\n")
    assert resolve(ws).config_hash != second
