"""Kubernetes objects from a plan: the kubernetes provider's planned values (snake_case, every nested block
a list) turned into the API's JSON (camelCase, single blocks as objects), so kubernetes-validate can check
them against the API's schemas - the objects the provider would send, not a hand-written copy."""

from __future__ import annotations

import re
from typing import Any

# blocks the provider names in the singular that the API holds as lists (plural names)
PLURAL = {
    "container": "containers",
    "init_container": "initContainers",
    "volume": "volumes",
    "volume_mount": "volumeMounts",
    "port": "ports",
    "toleration": "tolerations",
    "image_pull_secrets": "imagePullSecrets",
    "item": "items",
    "env_from": "envFrom",
    "host_aliases": "hostAliases",
    "volume_device": "volumeDevices",
}
RENAMED = {"host_ipc": "hostIPC", "host_pid": "hostPID"}  # initialisms camelCase would get wrong
LISTS = {*PLURAL.values(), "env", "args", "command", "accessModes", "supplementalGroups", "drop", "add"}
INTEGERS = {"fsGroup", "runAsUser", "runAsGroup", "replicas"}
MODES = {"defaultMode", "mode"}  # the provider writes file modes as octal strings ("0644")
KEEP_EMPTY = {"emptyDir"}  # an empty object that means something


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def convert(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        out = {}
        for name, item in value.items():
            api = PLURAL.get(name) or RENAMED.get(name) or camel(name)
            converted = convert(item, api)
            if converted is None or converted in ("", []):
                continue
            if converted == {} and api not in KEEP_EMPTY:
                continue
            out[api] = converted
        return out
    if isinstance(value, list):
        items = [convert(item, key) for item in value]
        if key in LISTS:
            return items
        if not items:
            return None
        if len(items) != 1:
            raise AssertionError(f"{key}: a block the API holds once appears {len(items)} times")
        return items[0]
    if key in INTEGERS and isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    if key in MODES and isinstance(value, str) and re.fullmatch(r"0[0-7]{3}", value):
        return int(value, 8)
    return value


def deployment(after: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", **_object(after)}


def persistent_volume_claim(after: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", **_object(after)}


def config_map(after: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": convert(after["metadata"], "metadata"),
            "data": after.get("data") or {}}  # fmt: skip


def secret(after: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """A Secret with its keys: their values (sensitive, often unknown at plan time) are placeholders."""
    out: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": convert(after["metadata"], "metadata")}
    if after.get("type"):
        out["type"] = after["type"]
    out["stringData"] = dict.fromkeys(keys, "placeholder")
    return out


def _object(after: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": convert(after["metadata"], "metadata"), "spec": convert(after["spec"], "spec")}
