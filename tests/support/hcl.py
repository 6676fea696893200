"""The templates' blocks as python-hcl2 parses them: comments and layout gone, each expression in one
canonical text, so two blocks compare equal exactly when they say the same thing.

python-hcl2 (pinned in builder/pyproject.toml's test extras) rather than a plan's JSON: `terraform show
-json` drops a variable's type and validations, which are half of what the templates must agree on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hcl2

MARKERS = ("__is_block__", "__comments__", "__inline_comments__")

# (kind, name), e.g. ("variable", "build_timeout"), ("data.coder_parameter", "branch"),
# ("resource.coder_agent", "main")
Address = tuple[str, str]


def _clean(value: Any) -> Any:
    """Without python-hcl2's markers, and names without their quotes."""
    if isinstance(value, dict):
        return {key.strip('"'): _clean(item) for key, item in value.items() if key not in MARKERS}
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


def blocks(folder: Path) -> dict[Address, dict[str, Any]]:
    """Every variable, data source and resource of the .tf files in folder, by kind and name."""
    found: dict[Address, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.tf")):
        parsed = _clean(hcl2.loads(path.read_text()))
        for variable in parsed.get("variable", []):
            for name, body in variable.items():
                found["variable", name] = body
        for mode in ("data", "resource"):
            for block in parsed.get(mode, []):
                for kind, named in block.items():
                    for name, body in named.items():
                        found[f"{mode}.{kind}", name] = body
    return found


def literal(text: Any) -> Any:
    """A literal's value: python-hcl2 keeps a string's quotes ('"none"'); numbers and bools are values."""
    if isinstance(text, str) and len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text
