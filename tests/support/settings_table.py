"""The settings table of docs/configuration.md, generated from the options table (`make docs`; checked by
tests/unit/test_options.py). Development tooling: the builder itself never renders documentation."""

from __future__ import annotations

import sys

from devcontainer_builder.settings.options import ADVANCED_HEADING, OPTIONS

START, END = "<!-- options:start -->\n", "<!-- options:end -->"


def markdown_table() -> str:
    """A user's settings, then the plumbing (Option.advanced) under its own heading, as --help shows them."""
    tables = []
    for advanced in (False, True):
        lines = [f"### {ADVANCED_HEADING}\n"] if advanced else []
        lines += ["| variable | flag | default | meaning |", "|---|---|---|---|"]
        for option in (option for option in OPTIONS if option.advanced == advanced):
            flag = f"`{option.flag}`" if option.flag else "env only (secret)" if option.secret else "env only"
            lines.append(f"| `{option.env}` | {flag} | {option.shown_default} | {option.help} |")
        tables.append("\n".join(lines) + "\n")
    return "\n".join(tables)


def update(path: str) -> bool:
    """Replace the table between the markers; True when the file changed."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    head, found, rest = text.partition(START)
    if not found or END not in rest:
        raise SystemExit(f"{path} has no {START.strip()} ... {END} markers")
    updated = head + START + markdown_table() + END + rest.split(END, 1)[1]
    if updated != text:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(updated)
    return updated != text


if __name__ == "__main__":
    print(f"{sys.argv[1]}: table updated" if update(sys.argv[1]) else f"{sys.argv[1]}: table already up to date")
