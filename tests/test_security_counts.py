"""The counts docs/security.md and the README give are the test suite's: each is counted from the cases
pytest collects (support/report_counts.py says which), and a document that says another number fails
here. The bad-input table and the terminal's probes are checked in the quick tier
(unit/test_security_report.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support import report_counts as counts

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def collected() -> list[str]:
    return counts.collect()


def row(starts: str) -> str:
    lines = (ROOT / "docs" / "security.md").read_text().splitlines()
    return next(line for line in lines if line.startswith(starts))


def result(starts: str) -> str:
    """The row's last cell, the measure's result."""
    return row(starts).rstrip(" |").rsplit(" | ", 1)[1]


def first_number(text: str) -> int:
    found = re.match(r"(\d+)\b", text)
    assert found, text
    return int(found[1])


def test_the_security_tables_counts_are_the_suites(collected: list[str]) -> None:
    for starts, selections in [
        ("| hostile-repository cases end to end", counts.HOSTILE_REPOSITORIES),
        ("| hostile compose projects end to end", counts.HOSTILE_COMPOSE),
        ("| compose policy cases", counts.COMPOSE_POLICY),
        ("| policy cases on the exact", counts.RUN_POLICY),
    ]:
        assert first_number(result(starts)) == len(counts.cases(collected, selections)), starts
    end_to_end, unit = (
        len(counts.cases(collected, counts.INITIALIZE_END_TO_END)),
        len(counts.cases(collected, counts.INITIALIZE_UNIT)),
    )
    assert result("| `initializeCommand` in its sandbox").startswith(
        f"{end_to_end} end to end and {unit} unit cases"
    ), (end_to_end, unit)


def test_the_readmes_counts_are_the_suites(collected: list[str]) -> None:
    repositories = counts.cases(collected, counts.HOSTILE_REPOSITORIES)
    compose = counts.cases(collected, counts.HOSTILE_COMPOSE)
    on_podman = [case for case in repositories + compose if "podman" in case.partition("[")[2]]
    readme = " ".join((ROOT / "README.md").read_text().split())
    said = (
        f"{len(repositories) + len(compose)} hostile repositories at it ({len(compose)} of them compose projects, "
        f"{len(on_podman)} on Podman)"
    )
    assert said in readme, said
