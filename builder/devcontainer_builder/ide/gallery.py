"""EXTENSIONS_GALLERY for code-server from the admin's serviceUrl: Open VSX's layout, in which the
gallery is <base>/vscode/gallery, items <base>/vscode/item and files <base>/vscode/unpkg/..."""

from __future__ import annotations

import json


def product_json(service_url: str) -> str:
    base = service_url.rstrip("/")
    root = base[: -len("/gallery")] if base.endswith("/gallery") else base
    return json.dumps(
        {
            "serviceUrl": base,
            "itemUrl": f"{root}/item",
            "resourceUrlTemplate": f"{root}/unpkg/{{publisher}}/{{name}}/{{version}}/{{path}}",
        },
        separators=(",", ":"),
    )
