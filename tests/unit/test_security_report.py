"""docs/security.md and the README report what the tests try: the counts there are checked, not typed in
(the counts of collected cases in tests/test_security_counts.py, which collecting makes slower than this tier)."""

from __future__ import annotations

import re
from pathlib import Path

from support.bad_inputs import BAD_INPUTS
from support.rehearsal import ENGINE_PROBES

ROOT = Path(__file__).resolve().parents[2]


def row(document: str, starts: str) -> str:
    return next(line for line in (ROOT / document).read_text().splitlines() if line.startswith(starts))


def test_the_bad_input_count_is_the_tables() -> None:
    """Each case of the table exits 2 or its test fails (tests/test_hostile.py): a green run is 100 %."""
    assert f"| {len(BAD_INPUTS)}, every one exit 2 with a message naming the setting (100 %)" in row(
        "docs/security.md", "| bad-input cases"
    )
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"`make test` throws {len(BAD_INPUTS)} bad inputs (every one exit 2" in readme


def test_the_report_says_no_secret_was_found_and_no_user_byte_lost() -> None:
    """What the hostile tests assert (a secret found or a byte lost fails them), said in the report."""
    assert re.search(r"\| 0 \|$", row("docs/security.md", "| secrets found"))
    assert re.search(r"\| 0 \|$", row("docs/security.md", "| user bytes lost"))


def test_every_case_names_what_it_refuses_and_is_told_apart() -> None:
    assert len({case.id for case in BAD_INPUTS}) == len(BAD_INPUTS)
    assert all(case.named for case in BAD_INPUTS)


def test_the_terminals_probe_count_is_the_rehearsals() -> None:
    """Every probe of ENGINE_PROBES runs from the builder agent's terminal in each template's rehearsal."""
    rehearsals = [path for path in (ROOT / "tests" / "template").glob("test_*rehearsal.py")
                  if "assert_no_engine_in_reach(" in path.read_text()]  # fmt: skip
    assert len(rehearsals) == 2, rehearsals
    probes = len(ENGINE_PROBES) * len(rehearsals)
    assert row("docs/security.md", "| the owner's terminal").rstrip(" |").rsplit(" | ", 1)[1].startswith(f"{probes}, ")
