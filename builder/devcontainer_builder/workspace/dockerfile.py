"""Which files of the build context a Dockerfile's COPY and ADD instructions take.

A devcontainer is built from more than its config: `COPY requirements.txt .` makes requirements.txt part
of the image, and an edit to it calls for a rebuild as surely as an edit to the Dockerfile. This reads
the instructions (line continuations, the escape directive, JSON and shell forms, flags), keeps the
sources taken from the context (not `--from` another stage or image, not URLs, not heredocs), expands
wildcards per path segment as Docker does, takes folders whole, and leaves out what .dockerignore
excludes. It is bounded: a Dockerfile is read up to MAX_BYTES, a context walked up to MAX_FILES.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

MAX_BYTES = 1024 * 1024
MAX_FILES = 20_000
_DIRECTIVE = re.compile(r"^#\s*(\w+)\s*=\s*(\S+)\s*$")
_HEREDOC = re.compile(r"<<(-?)[\"']?([A-Za-z_][A-Za-z0-9_]*)[\"']?")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://|^git@", re.IGNORECASE)


@dataclass
class Sources:
    """What the Dockerfile takes from the context: files, and whether the walk was cut at MAX_FILES."""

    files: list[str] = field(default_factory=list)  # absolute paths
    folders: list[str] = field(default_factory=list)  # the folders COPY/ADD take whole (new files there count)
    truncated: bool = False


def instructions(text: str) -> Iterator[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments skipped."""
    escape = "\\"
    lines = text.splitlines()
    for line in lines:  # parser directives come first, before any other line
        match = _DIRECTIVE.match(line.strip())
        if not match:
            break
        if match.group(1).lower() == "escape" and match.group(2) in ("`", "\\"):
            escape = match.group(2)
    pending = ""
    heredocs: list[str] = []  # terminators of heredocs whose bodies follow (RUN <<EOF ... EOF)
    for raw in lines:
        stripped = raw.strip()
        if heredocs:
            if stripped == heredocs[0]:
                heredocs.pop(0)
            continue
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comments inside a continued instruction are dropped
        if stripped.endswith(escape):
            pending += stripped[:-1] + " "
            continue
        whole = (pending + stripped).strip()
        pending = ""
        heredocs = [match.group(2) for match in _HEREDOC.finditer(whole)]
        if whole:
            word, _, rest = whole.partition(" ")
            yield word.upper(), rest.strip()
    if pending.strip():
        word, _, rest = pending.strip().partition(" ")
        yield word.upper(), rest.strip()


def copy_sources(arguments: str) -> list[str] | None:
    """The context paths of one COPY/ADD, or None when it copies from elsewhere (another stage, an image,
    a heredoc)."""
    words: list[str]
    rest = arguments
    flags = []
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        flags.append(flag)
        rest = rest.strip()
    if any(flag.startswith("--from") for flag in flags) or "<<" in rest:
        return None
    if rest.startswith("["):
        try:
            parsed = json.loads(rest)
        except ValueError:
            return []
        words = [str(item) for item in parsed] if isinstance(parsed, list) else []
    else:
        words = rest.split()
    return [word for word in words[:-1] if not _URL.match(word)]  # the last word is the destination


class DockerIgnore:
    """.dockerignore patterns: Go's filepath.Match per segment, `**` for any depth, `!` to re-include; the
    last pattern that matches decides, and excluding a folder excludes what is in it."""

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keep = line.startswith("!")
            pattern = os.path.normpath(line[1:].strip() if keep else line).strip("/")
            if pattern in ("", "."):
                continue
            self.rules.append((keep, re.compile(_translate(pattern))))

    def excluded(self, relative: str) -> bool:
        parts = relative.split("/")
        verdict = False
        for keep, pattern in self.rules:
            if any(pattern.fullmatch("/".join(parts[:end])) for end in range(1, len(parts) + 1)):
                verdict = not keep
        return verdict


def _translate(pattern: str) -> str:
    """A .dockerignore pattern as a regular expression: `*` and `?` stay within one path segment, `**`
    crosses any number of them, `[...]` is a class, a backslash escapes."""
    out, index, size = [], 0, len(pattern)
    while index < size:
        char = pattern[index]
        if char == "*" and pattern[index + 1 : index + 2] == "*":
            index += 2
            if pattern[index : index + 1] == "/":
                index += 1
                out.append("(?:.*/)?")  # `**/`: zero or more folders
            else:
                out.append(".*")  # a trailing `**`: anything below
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and "]" in pattern[index + 1 :]:
            end = pattern.index("]", index + 1)
            body = pattern[index + 1 : end]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            index = end
        elif char == "\\" and index + 1 < size:
            index += 1
            out.append(re.escape(pattern[index]))
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)


def _read(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_BYTES).decode("utf-8", "replace")
    except OSError:
        return ""


def sources(dockerfile: str, context: str) -> Sources:
    """The files of `context` that `dockerfile`'s COPY and ADD instructions take."""
    found = Sources()
    ignore = DockerIgnore(_read(dockerfile + ".dockerignore") or _read(os.path.join(context, ".dockerignore")))
    real_context = os.path.realpath(context)
    seen: set[str] = set()
    for instruction, arguments in instructions(_read(dockerfile)):
        if instruction not in ("COPY", "ADD"):
            continue
        for source in copy_sources(arguments) or []:
            for path in _expand(real_context, source):
                for file in _files(path, real_context, ignore, found):
                    if file not in seen:
                        seen.add(file)
                        found.files.append(file)
                if found.truncated:
                    return found
    return found


def _expand(context: str, source: str) -> list[str]:
    """A source's matches in the context, wildcards matched one path segment at a time."""
    relative = os.path.normpath(source.lstrip("/"))
    if relative.startswith(".."):
        return []  # outside the context: docker refuses it too
    matches = [context]
    for segment in [] if relative == "." else relative.split("/"):
        following = []
        for base in matches:
            if any(char in segment for char in "*?["):
                try:
                    names = sorted(os.listdir(base))
                except OSError:
                    continue
                following += [os.path.join(base, name) for name in names if fnmatch.fnmatchcase(name, segment)]
            else:
                following.append(os.path.join(base, segment))
        matches = following
    return [match for match in matches if os.path.lexists(match)]


def _files(path: str, context: str, ignore: DockerIgnore, found: Sources) -> Iterator[str]:
    if not os.path.isdir(path) or os.path.islink(path):
        relative = os.path.relpath(path, context)
        if not ignore.excluded(relative):
            yield path
        return
    for root, dirs, names in os.walk(path):
        found.folders.append(root)
        relative_root = os.path.relpath(root, context)
        dirs[:] = sorted(d for d in dirs if not ignore.excluded(os.path.normpath(os.path.join(relative_root, d))))
        # links to folders are not walked into, but COPY takes them (as links): they count as entries
        linked = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        for name in sorted(names) + linked:
            relative = os.path.normpath(os.path.join(relative_root, name))
            if ignore.excluded(relative):
                continue
            if len(found.files) >= MAX_FILES:
                found.truncated = True
                return
            yield os.path.join(root, name)
