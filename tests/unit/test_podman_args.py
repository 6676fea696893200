"""The guard's fixes to the devcontainer CLI's Podman command lines (policy/podman_args.py)."""

from __future__ import annotations

import pytest
from devcontainer_builder.policy import podman_args


def test_keep_id_goes_from_the_run_options_only() -> None:
    args = ["run", "--sig-proxy=false", "--userns=keep-id", "--userns=keep-id:uid=1000", "-l", "a=b", "img",
            "sh", "-c", "echo --userns=keep-id"]  # fmt: skip
    assert podman_args.without_keep_id(args, 1, 6) == ["run", "--sig-proxy=false", "-l", "a=b", "img", "sh", "-c",
                                                       "echo --userns=keep-id"]  # fmt: skip


def test_a_short_named_base_image_is_found_by_its_id_when_localhost_has_none() -> None:
    store = {"node:20": "sha-node", "localhost/vsc-app": "sha-vsc"}
    find = lambda name: store.get(name, "")  # noqa: E731
    args = ["build", "--build-arg", "BASE_IMAGE=localhost/node:20", "--build-arg", "BASE_IMAGE=localhost/vsc-app", "."]
    assert podman_args.local_base_image(args, find) == [
        "build", "--build-arg", "BASE_IMAGE=sha-node", "--build-arg", "BASE_IMAGE=localhost/vsc-app", "."]  # fmt: skip
    missing = ["build", "--build-arg", "BASE_IMAGE=localhost/nowhere:1", "."]
    assert podman_args.local_base_image(missing, find) == missing, "what neither name finds is left to Podman's error"


@pytest.mark.parametrize(
    ("value", "repository"),
    [("type=registry,ref=reg.example:5000/cache/app:cache", "reg.example:5000/cache/app"),
     ("type=registry,ref=reg.example/cache/app@sha256:" + "0" * 64, "reg.example/cache/app"),
     ("ref=reg.example:5000/app,type=registry,mode=max", "reg.example:5000/app"),
     ("reg.example:5000/cache/app", "reg.example:5000/cache/app"),
     ("reg.example/cache/app:v1", "reg.example/cache/app"),
     ("type=local,dest=/tmp/cache", ""), ("type=gha", ""), ("type=inline", ""), ("type=registry", "")],
)  # fmt: skip
def test_a_buildx_cache_becomes_the_repository_buildah_takes(value: str, repository: str) -> None:
    assert podman_args.cache_repository(value) == repository


def test_cache_options_are_rewritten_and_the_builders_own_export_added_to_the_image_build() -> None:
    said: list[str] = []
    args = ["buildx", "build", "--cache-from", "type=registry,ref=r.example/c:1", "--cache-from=type=gha", "-t",
            "vsc-app-123", "-f", "Dockerfile", "."]  # fmt: skip
    out = podman_args.registry_cache(args, 2, "type=registry,ref=r.example/out:cache", said.append)
    assert out == ["buildx", "build", "--cache-to", "r.example/out", "--cache-from", "r.example/c", "-t", "vsc-app-123",
                   "-f", "Dockerfile", "."]  # fmt: skip
    assert said and "type=gha" in said[0]


def test_the_uid_build_and_a_build_with_its_own_export_get_no_second_export() -> None:
    uid_build = ["build", "-t", "vsc-app-123-uid", "--build-arg", "BASE_IMAGE=x", "."]
    assert podman_args.registry_cache(uid_build, 1, "type=registry,ref=r/out:c", print) == uid_build
    exporting = ["build", "--cache-to", "type=registry,ref=r/out:c", "-t", "vsc-app", "."]
    assert podman_args.registry_cache(exporting, 1, "type=registry,ref=r/out:c", print) == [
        "build", "--cache-to", "r/out", "-t", "vsc-app", "."]  # fmt: skip
    assert podman_args.registry_cache(["build", "."], 1, "", print) == ["build", "."]
