"""The package's layout: which of its parts may import which, and the admin's policy standing alone.

The policy runs as a program of its own (docker-guard runs `python -I -S rules.py`, where the package is not
importable), so nothing in policy/ may import the rest of the package; and every other package imports only
the ones below it, so that a value type, a driver or a constant has one home and no import points upward.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import devcontainer_builder

PACKAGE = Path(devcontainer_builder.__file__).parent
POLICY = PACKAGE / "policy"

# what each part of the package may import (besides itself and the standard library); top-level modules
# are named without .py
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "policy": set(),
    "system": {"errors"},
    "log": {"system"},
    "settings": {"errors", "system"},
    "state": {"log", "system"},
    "workspace": {"errors", "log", "settings", "system"},
    "engine": {"errors", "log", "policy", "system"},
    "devcontainer_cli": {"engine", "errors", "log", "policy", "system"},
    "coder": {"log", "system"},
    "host": {"errors", "settings", "system"},
    "ide": {"engine", "log", "settings", "state", "system"},
    "up": {
        "coder",
        "devcontainer_cli",
        "engine",
        "errors",
        "ide",
        "log",
        "settings",
        "state",
        "system",
        "workspace",
    },
    "supervisor": {
        "coder",
        "engine",
        "errors",
        "ide",
        "log",
        "settings",
        "state",
        "system",
        "workspace",
    },
    "cli": {
        "coder",
        "engine",
        "errors",
        "host",
        "log",
        "settings",
        "state",
        "supervisor",
        "system",
        "up",
    },
    "launch": {"cli", "settings", "state"},
    "__main__": {"launch"},
    "__init__": set(),
}


def part_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported(path: Path) -> set[str]:
    """The modules a file imports, anywhere in it (imports inside functions too), as dotted names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{path}: a relative import (the package's files import by absolute names)")
    return names


def parts_imported(path: Path) -> set[str]:
    prefix = "devcontainer_builder."
    return {name[len(prefix) :].split(".")[0] for name in imported(path) if name.startswith(prefix)}


def test_each_part_imports_only_the_parts_below_it() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        part = part_of(path)
        assert part in ALLOWED, f"{path}: a new part of the package; say what it may import in ALLOWED"
        for other in sorted(parts_imported(path) - ALLOWED[part] - {part}):
            wrong.append(f"{path.relative_to(PACKAGE)} imports {other}")
    assert not wrong, "imports pointing the wrong way:\n" + "\n".join(wrong)


def test_the_allowed_imports_have_no_cycle() -> None:
    done: set[str] = set()

    def visit(part: str, path: tuple[str, ...]) -> None:
        assert part not in path, f"a cycle: {' -> '.join((*path, part))}"
        if part not in done:
            for other in sorted(ALLOWED[part]):
                visit(other, (*path, part))
            done.add(part)

    for part in ALLOWED:
        visit(part, ())


def test_the_policy_imports_only_the_standard_library_and_itself() -> None:
    siblings = {path.stem for path in POLICY.glob("*.py")}
    wrong = []
    for path in sorted(POLICY.glob("*.py")):
        for name in sorted(imported(path)):
            top = name.split(".")[0]
            if name.startswith("devcontainer_builder.policy") or top in siblings:
                continue
            if top not in sys.stdlib_module_names:
                wrong.append(f"{path.name} imports {name}")
    assert not wrong, "the policy runs as `python -I -S` without the package:\n" + "\n".join(wrong)


def test_the_policy_runs_without_the_package(tmp_path: Path) -> None:
    """As docker-guard runs it: -I -S, with only its own folder to import from; the package is not importable
    there, so each module takes its siblings from beside it."""
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(POLICY)!r})\n"
        "import rules, compose_rules, compose_guard, podman_args\n"
        "assert rules.POLICY_VAR\n"
        "leaked = sorted(name for name in sys.modules if name.startswith('devcontainer_builder'))\n"
        "print(leaked or 'alone')\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "alone"


def test_no_module_uses_another_ones_private_names() -> None:
    """A name starting with `_` is its module's own; what others need is public (the policy's helpers that
    compose_rules.py and compose_guard.py share, say)."""
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        modules = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("devcontainer_builder")
            for alias in node.names
        } | {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
            if alias.name.split(".")[0] in {p.stem for p in POLICY.glob("*.py")}
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                wrong.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value.id}.{node.attr}")
    assert not wrong, "private names used from another module:\n" + "\n".join(wrong)
