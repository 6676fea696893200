"""A strict JSONC reader: JSON plus // and /* */ comments and trailing commas, nothing more.

The devcontainer CLI's parser is lenient: it accepts a truncated file such as `{ "image": "x",`. We
read the file ourselves first so such a file fails with a line and column instead of building
something half-configured. Comments and trailing commas are blanked out with spaces (newlines kept),
so the positions json reports are positions in the original file. A comma with no value before it
(`[,]`, `{,}`, `[1,,2]`) is not a trailing comma and is reported, as the CLI's own parser does.

Input is bounded: a file is read only up to MAX_BYTES, and nesting deeper than MAX_DEPTH is reported
before the JSON parser would recurse into it.
"""

from __future__ import annotations

import json
from typing import Any

MAX_BYTES = 1024 * 1024  # a real devcontainer.json is a few KB
MAX_DEPTH = 64


class JsoncError(ValueError):
    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"{message} (line {line}, column {column})")
        self.reason = message
        self.line = line
        self.column = column


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def _after_string(text: str, i: int) -> int:
    """The index after the string that starts at text[i] (a quote)."""
    n = len(text)
    i += 1
    while i < n and text[i] != '"':
        if text[i] == "\\":
            i += 1
        elif text[i] == "\n":
            break  # json will report the unterminated string at its real place
        i += 1
    return i + 1


def _blank_comment(text: str, out: list[str], i: int) -> int:
    """Blanks the // or /* comment that starts at text[i] in out (its newlines kept); the index after it."""
    if text.startswith("//", i):
        end = text.find("\n", i)
        end = len(text) if end == -1 else end
        for j in range(i, end):
            out[j] = " "
        return end
    end = text.find("*/", i + 2)
    if end == -1:
        line, column = _position(text, i)
        raise JsoncError("unterminated /* comment", line, column)
    for j in range(i, end + 2):
        if out[j] != "\n":
            out[j] = " "
    return end + 2


def strip(text: str) -> str:
    """Blank out comments and trailing commas, keeping every other character where it was."""
    out = list(text)
    i, n = 0, len(text)
    last_comma = -1  # index of a comma that is trailing if only whitespace/comments follow before } or ]
    previous = ""  # the last significant character before the current one (outside comments)
    depth = 0
    while i < n:
        char = text[i]
        if char == '"':
            last_comma = -1
            previous = '"'
            i = _after_string(text, i)
            continue
        if text.startswith(("//", "/*"), i):
            i = _blank_comment(text, out, i)
            continue
        if char == ",":
            if previous in ("[", "{", ",", ""):
                line, column = _position(text, i)
                raise JsoncError("a value is expected before this comma", line, column)
            last_comma = i
        elif char in "}]":
            if last_comma != -1:
                out[last_comma] = " "
            last_comma = -1
            depth -= 1
        elif char in "{[":
            depth += 1
            if depth > MAX_DEPTH:
                line, column = _position(text, i)
                raise JsoncError(f"nesting deeper than {MAX_DEPTH} levels", line, column)
            last_comma = -1
        elif not char.isspace():
            last_comma = -1
        if not char.isspace():
            previous = char
        i += 1
    return "".join(out)


def loads(text: str) -> Any:
    if text.startswith("\ufeff"):
        text = text[1:]
    stripped = strip(text)
    if not stripped.strip():
        raise JsoncError("the file is empty", 1, 1)
    try:
        return json.loads(stripped)
    except RecursionError:  # unreachable with MAX_DEPTH; kept so it can never surface as a bug
        raise JsoncError(f"nesting deeper than {MAX_DEPTH} levels", 1, 1) from None
    except json.JSONDecodeError as err:
        if err.pos >= len(stripped.rstrip()):
            line, column = _position(text, len(text.rstrip()))
            raise JsoncError(
                "unexpected end of file: the JSON is truncated or a closing bracket is missing", line, column
            ) from None
        raise JsoncError(err.msg, err.lineno, err.colno) from None


def read(path: str) -> str:
    """A config file's text, at most MAX_BYTES of it; OSError, UnicodeDecodeError or JsoncError."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise JsoncError(f"the file is larger than {MAX_BYTES // 1024} KiB, far beyond any real config", 1, 1)
    return data.decode("utf-8")
