"""The editor's bounds, without an engine: how much of `up` it may take, what it gives up on and says so.
(Regression tests of issue 20's hostile review.)"""

from __future__ import annotations

from devcontainer_builder.ide import customizations


def test_extensions_past_the_cap_are_listed_as_dropped() -> None:
    entries = [{"customizations": {"vscode": {"extensions": [f"acme.ext{i}" for i in range(205)]}}}]
    merged = customizations.merge(entries)
    assert [w.id for w in merged.extensions] == [f"acme.ext{i}" for i in range(customizations.MAX_EXTENSIONS)]
    assert merged.dropped == tuple(f"acme.ext{i}" for i in range(200, 205))
    assert merged.skipped == ()
