"""A systemd EnvironmentFile= read as systemd reads it, so that `install-service` sees the same settings the
service will get (the unit's start limit follows the timeouts they set).

systemd's rules (env-file.c): `KEY=value` lines; `#` or `;` first on a line start a comment; spaces around
the key and before the value are skipped, trailing ones dropped from an unquoted value; a value may mix
unquoted, "double-quoted" and 'single-quoted' parts; a backslash escapes the next character outside quotes
and only \\ " ` $ inside double quotes (elsewhere it stays); a backslash before a newline continues the
line; a newline inside quotes is kept (template/modules/vm-host writes Coder's init script that way). A
line without `=` is ignored; a later assignment wins.
"""

from __future__ import annotations

DOUBLE_QUOTE_ESCAPES = '"\\`$'


def parse(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    state, key = "pre-key", ""
    value: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        i += 1
        if state == "pre-key":
            if c in "#;":
                state = "comment"
            elif not c.isspace():
                state, key = "key", c
        elif state == "key":
            if c == "\n":
                state = "pre-key"  # no `=`: not an assignment
            elif c == "=":
                state, key, value = "pre-value", key.strip(), []
            else:
                key += c
        elif state == "comment":
            if c == "\\" and i < len(text):
                i += 1  # an escaped character, a newline too, stays in the comment
            elif c == "\n":
                state = "pre-key"
        elif c == "\n" and state in ("pre-value", "value"):
            values[key] = "".join(value).rstrip() if state == "value" else "".join(value)
            state = "pre-key"
        elif state in ("pre-value", "value"):
            i, state = _value_part(text, i, c, state, value)
    if state in ("pre-value", "value"):
        values[key] = "".join(value).rstrip() if state == "value" else "".join(value)
    return values


def _value_part(text: str, i: int, c: str, state: str, value: list[str]) -> tuple[int, str]:
    """One part of a value starting with c (text[i] follows it) into value; returns where to go on and the state."""
    if c == "'":
        end = text.find("'", i)
        end = len(text) if end < 0 else end
        value.append(text[i:end])
        return end + 1, "pre-value"
    if c == '"':
        return _double_quoted(text, i, value), "pre-value"
    if c == "\\":
        if i < len(text) and text[i] != "\n":
            value.append(text[i])
        return i + 1, "value"
    if state == "value" or not c.isspace():
        value.append(c)
        return i, "value"
    return i, state


def _double_quoted(text: str, i: int, value: list[str]) -> int:
    """The double-quoted part from i (after its opening quote) into value; returns the index after it."""
    while i < len(text):
        c = text[i]
        i += 1
        if c == '"':
            return i
        if c == "\\" and i < len(text):
            escaped = text[i]
            i += 1
            if escaped in DOUBLE_QUOTE_ESCAPES:
                value.append(escaped)
            elif escaped != "\n":  # a backslash before a newline continues the line
                value.append("\\" + escaped)
        else:
            value.append(c)
    return i
