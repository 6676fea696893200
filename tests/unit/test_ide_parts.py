"""The editor's pure parts: the options (bad values are problems, exit 2), what the merged config asks
for, the gallery's URLs, and which .vsix in the admin's folder is which extension."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from devcontainer_builder.errors import InputError
from devcontainer_builder.ide import customizations, gallery, start, vsix
from devcontainer_builder.ide.customizations import Wanted
from devcontainer_builder.settings import options as opts
from support.ide import make_vsix, write_vsix

SHA = "ab" * 32
REPO = {"DEVCONTAINER_REPOSITORY": "/r"}


def problems(**env: str) -> list[str]:
    with pytest.raises(InputError) as caught:
        opts.load("up", {}, {**REPO, **env})
    return caught.value.problems


def test_the_editor_is_off_unless_the_admin_turns_it_on() -> None:
    settings = opts.load("up", {}, REPO)
    assert settings.ide == "none"
    assert settings.extensions_gallery == "https://open-vsx.org/vscode/gallery"
    assert settings.ide_source.endswith(
        f"/v{opts.CODE_SERVER_VERSION}/code-server-{opts.CODE_SERVER_VERSION}-linux-amd64.tar.gz"
    )


def test_code_server_needs_its_sha256() -> None:
    (problem,) = problems(DEVCONTAINER_IDE="code-server")
    assert "DEVCONTAINER_IDE_SHA256 is not set" in problem
    settings = opts.load(
        "up", {}, {**REPO, "DEVCONTAINER_IDE": "code-server", "DEVCONTAINER_IDE_SHA256": "SHA256:" + SHA.upper()}
    )
    assert settings.ide_sha256 == SHA


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DEVCONTAINER_IDE": "vim"}, "DEVCONTAINER_IDE"),
        ({"DEVCONTAINER_IDE_SHA256": "abc"}, "64 hexadecimal digits"),
        ({"DEVCONTAINER_IDE_SOURCE": "ftp://mirror/cs.tar.gz"}, "DEVCONTAINER_IDE_SOURCE"),
        ({"DEVCONTAINER_IDE_SOURCE": "relative/cs.tar.gz"}, "absolute path of a file"),
        ({"DEVCONTAINER_IDE_SOURCE": "/no/such/cs.tar.gz"}, "does not exist"),
        ({"DEVCONTAINER_IDE_SOURCE": "https://u:hunter2@mirror/cs.tar.gz"}, "user name or password"),
        ({"DEVCONTAINER_EXTENSIONS_GALLERY": "open-vsx.org"}, "DEVCONTAINER_EXTENSIONS_GALLERY"),
        ({"DEVCONTAINER_EXTENSIONS_FOLDER": "/no/such/folder"}, "DEVCONTAINER_EXTENSIONS_FOLDER"),
        ({"DEVCONTAINER_DOTFILES_REPOSITORY": "--upload-pack=evil"}, "DEVCONTAINER_DOTFILES_REPOSITORY"),
        ({"DEVCONTAINER_DOTFILES_REPOSITORY": "ext::sh -c evil"}, "DEVCONTAINER_DOTFILES_REPOSITORY"),
        ({"DEVCONTAINER_DOTFILES_INSTALL_COMMAND": "install.sh"}, "DEVCONTAINER_DOTFILES_REPOSITORY is not"),
        ({"DEVCONTAINER_DOTFILES_REPOSITORY": "acme/dots", "DEVCONTAINER_DOTFILES_INSTALL_COMMAND": "--help"}, "flag"),
    ],
    ids=[
        "ide",
        "sha",
        "scheme",
        "relative",
        "missing-file",
        "password",
        "gallery",
        "folder",
        "dotfiles-flag",
        "dotfiles-ext",
        "command-alone",
        "command-flag",
    ],
)
def test_a_bad_editor_setting_is_a_problem_naming_it(env: dict[str, str], named: str) -> None:
    found = "\n".join(problems(**env))
    assert named in found
    assert "hunter2" not in found


def test_dotfiles_accept_what_the_cli_accepts() -> None:
    for value in (
        "https://git.example/ada/dots.git",
        "ada/dots",
        "git@git.example:ada/dots.git",
        "ssh://git@git.example:2222/ada/dots.git",
        "https://git.example/~ada/dots%20and%20more.git",
    ):
        assert opts.load("up", {}, {**REPO, "DEVCONTAINER_DOTFILES_REPOSITORY": value}).dotfiles_repository == value


def test_extensions_are_merged_in_the_clis_order_and_settings_later_wins() -> None:
    label = json.dumps(
        [
            {
                "id": "image",
                "customizations": {
                    "vscode": {"extensions": ["ms-python.python", "acme.old"], "settings": {"a": 1, "b": 1}}
                },
            },
            {"id": "feature", "customizations": {"vscode": {"extensions": ["Acme.Tool@1.2.3", "-acme.old"]}}},
            {"customizations": {"vscode": {"extensions": ["ms-python.python", "not an id", 7], "settings": {"b": 2}}}},
        ]
    )
    found = customizations.from_metadata(label)
    assert found.extensions == (Wanted("ms-python.python"), Wanted("Acme.Tool", "1.2.3"))
    assert str(found.extensions[1]) == "Acme.Tool@1.2.3"
    assert found.settings == {"a": 1, "b": 2}
    assert found.skipped == ("not an id",)


def test_a_label_that_is_not_json_asks_for_nothing() -> None:
    assert customizations.from_metadata("{nope").extensions == ()
    assert customizations.from_metadata("").settings == {}


def test_the_gallery_urls_follow_open_vsx_layout() -> None:
    product = json.loads(gallery.product_json("http://10.0.0.1:8080/vscode/gallery/"))
    assert product == {
        "serviceUrl": "http://10.0.0.1:8080/vscode/gallery",
        "itemUrl": "http://10.0.0.1:8080/vscode/item",
        "resourceUrlTemplate": "http://10.0.0.1:8080/vscode/unpkg/{publisher}/{name}/{version}/{path}",
    }


def test_a_vsix_is_known_by_its_package_json_and_the_pin_or_newest_is_chosen(tmp_path: Path) -> None:
    write_vsix(tmp_path, "acme", "tool", "1.2.0", filename="a.vsix")
    write_vsix(tmp_path, "acme", "tool", "1.10.0", filename="b.vsix")
    write_vsix(tmp_path, "acme", "other", "0.1.0", filename="c.vsix")
    (tmp_path / "broken.vsix").write_bytes(b"not a zip")
    with zipfile.ZipFile(tmp_path / "nopkg.vsix", "w") as archive:
        archive.writestr("extension.vsixmanifest", "<x/>")
    packages = vsix.index(str(tmp_path))
    assert sorted((p.id, p.version) for p in packages) == [
        ("acme.other", "0.1.0"),
        ("acme.tool", "1.10.0"),
        ("acme.tool", "1.2.0"),
    ]
    chosen = vsix.choose(packages, Wanted("ACME.tool"))
    assert chosen is not None and chosen.version == "1.10.0"
    pinned = vsix.choose(packages, Wanted("acme.tool", "1.2.0"))
    assert pinned is not None and pinned.path.endswith("a.vsix")
    assert vsix.choose(packages, Wanted("acme.tool", "9.9.9")) is None
    assert make_vsix("a", "b", "1.0.0")[:2] == b"PK"


@pytest.mark.parametrize(
    ("version", "ok"),
    [("2.36", True), ("2.34", True), ("2.33", False), ("2.31", False), ("3.0", True), ("none", False), ("", False)],
)
def test_glibc_2_34_or_newer_is_needed(version: str, ok: bool) -> None:
    assert start._glibc_ok(version) is ok
