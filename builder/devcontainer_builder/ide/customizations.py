"""customizations.vscode of the merged config, read from the container's devcontainer.metadata label:
the image's metadata, each feature's and the repository's config, in the order the devcontainer CLI
merges them (`read-configuration --include-merged-configuration` gives the same). Extensions are the
union in that order, a later "-publisher.name" removing one; settings are merged, later entries winning.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# publisher.name, optionally @version: what `--install-extension` takes; anything else is skipped
EXTENSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\.[A-Za-z0-9][A-Za-z0-9_.-]*(@[0-9A-Za-z][0-9A-Za-z.+-]*)?")
MAX_EXTENSIONS = 200


@dataclass(frozen=True)
class Wanted:
    id: str  # publisher.name as written
    version: str = ""  # a pin, or "" for the gallery's latest

    @property
    def key(self) -> str:
        return self.id.lower()

    def __str__(self) -> str:
        return f"{self.id}@{self.version}" if self.version else self.id


@dataclass(frozen=True)
class Customizations:
    extensions: tuple[Wanted, ...]
    settings: dict[str, Any]
    skipped: tuple[str, ...]  # entries that are no extension id (warned)
    dropped: tuple[str, ...] = ()  # past MAX_EXTENSIONS (warned, listed as missing)


def from_metadata(label: str) -> Customizations:
    """The devcontainer.metadata label's text (a JSON array, or one object)."""
    try:
        data = json.loads(label) if label else []
    except ValueError:
        data = []
    entries = data if isinstance(data, list) else [data]
    return merge([entry for entry in entries if isinstance(entry, dict)])


def merge(entries: list[dict[str, Any]]) -> Customizations:
    wanted: dict[str, Wanted] = {}
    settings: dict[str, Any] = {}
    skipped: list[str] = []
    for entry in entries:
        vscode = _vscode(entry)
        extensions = vscode.get("extensions")
        for item in extensions if isinstance(extensions, list) else []:
            if not isinstance(item, str):
                continue
            text = item.strip()
            if text.startswith("-"):
                wanted.pop(text[1:].split("@", 1)[0].lower(), None)
                continue
            if not EXTENSION_ID.fullmatch(text):
                skipped.append(text[:100])
                continue
            ident, _, version = text.partition("@")
            wanted[ident.lower()] = Wanted(ident, version)
        more = vscode.get("settings")
        if isinstance(more, dict):
            settings.update(more)
    kept = tuple(wanted.values())
    return Customizations(
        kept[:MAX_EXTENSIONS], settings, tuple(skipped), tuple(str(extension) for extension in kept[MAX_EXTENSIONS:])
    )


def _vscode(entry: dict[str, Any]) -> dict[str, Any]:
    customizations = entry.get("customizations")
    vscode = customizations.get("vscode") if isinstance(customizations, dict) else None
    return vscode if isinstance(vscode, dict) else {}
