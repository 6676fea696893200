"""The counts docs/security.md and the README report, taken from the test suite itself: each is the number
of test cases pytest collects for one selection (a file, or the cases of a file whose id matches), so a
case added or removed changes the count and the check that the documents still say it
(tests/test_security_counts.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


@dataclass(frozen=True)
class Selection:
    """Cases of one test file; `only` picks by the case's id (test name and parameters)."""

    file: str  # relative to tests/
    only: Callable[[str], bool] = lambda case: True


def _named(*names: str) -> Callable[[str], bool]:
    return lambda case: case.split("[")[0] in names


# every case of test_hostile.py but the bad-input table (counted from support/bad_inputs.py), and the
# repository's hostile git configuration
HOSTILE_REPOSITORIES = (
    Selection("test_hostile.py", lambda case: not case.startswith("test_a_bad_value_exits_2")),
    Selection(
        "test_git.py",
        _named(
            "test_the_repositorys_own_config_cannot_make_the_builder_run_code",
            "test_a_worktree_or_gitfile_in_the_workspace_cannot_send_an_update_outside_it",
        ),
    ),
)
# compose projects that try to reach past the policy: the cases of test_compose.py that are refused
HOSTILE_COMPOSE = (Selection("test_compose.py", lambda case: bool(re.search(r"refused|cannot|never", case))),)
COMPOSE_POLICY = (Selection("unit/test_compose_policy.py"), Selection("unit/test_compose_files.py"))
RUN_POLICY = (Selection("unit/test_policy.py"), Selection("unit/test_podman_args.py"))
INITIALIZE_END_TO_END = (
    Selection("test_initialize.py"),
    Selection("test_hostile.py", lambda case: "initialize_command" in case.split("[")[0]),
)
INITIALIZE_UNIT = (Selection("unit/test_initialize_forms.py"),)
ALL = (*HOSTILE_REPOSITORIES, *HOSTILE_COMPOSE, *COMPOSE_POLICY, *RUN_POLICY, *INITIALIZE_END_TO_END, *INITIALIZE_UNIT)


def collect() -> list[str]:
    """The ids (file::case) pytest collects from every file a selection names; nothing runs."""
    files = sorted({selection.file for selection in ALL})
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-o", "addopts=", *files],
        cwd=TESTS, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return [line for line in result.stdout.splitlines() if "::" in line]


def cases(collected: list[str], selections: tuple[Selection, ...]) -> list[str]:
    """The collected ids each selection picks; a selection that picks nothing is a stale one."""
    picked = []
    for selection in selections:
        mine = [
            case
            for case in collected
            if case.split("::")[0] == selection.file and selection.only(case.split("::", 1)[1])
        ]
        assert mine, f"no case of {selection.file} is selected any more: update support/report_counts.py"
        picked += mine
    return picked
