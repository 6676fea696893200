"""The docs say what the code does: every pinned dependency is named (and why) in docs/development.md, and
every file the builder writes in the state dir is listed once in docs/state.md."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "builder" / "devcontainer_builder"
FOLDERS = {"compose", "generated", "ide"}  # what the code names without a slash but makes a folder of


def test_every_pinned_dependency_is_named_in_the_development_guide() -> None:
    project = tomllib.loads((ROOT / "builder" / "pyproject.toml").read_text())["project"]
    pinned = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    names = [re.split(r"[=<>\[]", requirement)[0] for requirement in pinned]
    guide = (ROOT / "docs" / "development.md").read_text()
    dependencies = guide[guide.index("## Dependencies") :].lower()
    assert len(names) >= 15, names
    assert [name for name in names if f"`{name.lower()}`" not in dependencies] == []


def state_files() -> set[str]:
    """What the code names in the state dir: StateDir's own files and every dirs.file("...") (a folder's
    first part only: generated/fallback/devcontainer.json is under generated/)."""
    store = (PACKAGE / "state" / "store.py").read_text()
    found = set(re.findall(r'os\.path\.join\(self\.path, "([^"]+)"\)', store))
    for path in PACKAGE.rglob("*.py"):
        for name in re.findall(r'dirs\.file\(f?"([^"]+)"\)', path.read_text()):
            found.add(name.split("/")[0] + "/" if "/" in name or name in FOLDERS else name)
    return found


def test_every_file_of_the_state_dir_is_listed_once_in_the_state_page() -> None:
    page = (ROOT / "docs" / "state.md").read_text()
    listing = page[page.index("## The state directory") : page.index("## A disk that fills up")]
    bullets = re.findall(r"^- (.*?)(?=^- |\Z)", listing, re.M | re.S)
    files = state_files()
    assert {"state.json", "serve.json", "compose/", "generated/", "ide/"} <= files, files
    for name in files:
        # a folder is listed by its name or by the files in it (`generated/fallback/devcontainer.json`)
        token = f"`{name}" if name.endswith("/") else f"`{name}`"
        listed = [bullet for bullet in bullets if token in bullet]
        # state.json is also named where its lock is: a reference, not a second listing
        assert len(listed) == 1 or (name == "state.json" and len(listed) == 2), (name, len(listed))
