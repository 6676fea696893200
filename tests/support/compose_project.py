"""A compose devcontainer for tests: an app built from a Dockerfile and a database stand-in
(tests/env/images/kv.Dockerfile) keeping its data in a named volume - and how to look at its containers."""

from __future__ import annotations

import json
from pathlib import Path

from devcontainer_builder.engine import compose

from support.builder import Workspace, docker
from support.images import FALLBACK_IMAGE, KV_IMAGE

PROJECT_LABEL = "com.docker.compose.project"


def compose_file(db: str = "", app: str = "", mounts: str = "") -> str:
    return f"""services:
  app:
    build:
      context: .
      dockerfile: Dockerfile
    volumes:
      - ..:/workspaces/project:cached
{mounts}
    command: sleep infinity
{app}
  db:
    image: {KV_IMAGE}
    volumes:
      - kvdata:/var/lib/kv
{db}
volumes:
  kvdata: {{}}
"""


def project_files(**config: object) -> dict[str, str]:
    return {
        ".devcontainer/devcontainer.json": json.dumps(
            {
                "dockerComposeFile": ["compose.yml"],
                "service": "app",
                "runServices": ["app", "db"],
                "workspaceFolder": "/workspaces/project",
                "postCreateCommand": "echo created >> /tmp/created",
                **config,
            }
        ),
        ".devcontainer/compose.yml": compose_file(),
        ".devcontainer/Dockerfile": f"FROM {FALLBACK_IMAGE}\nRUN echo built > /tmp/built\n",
    }


def services_of(ws: Workspace) -> dict[str, dict[str, str]]:
    """The workspace's containers by compose service: id, role label, config label, state, project."""
    out = docker(
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        f"label=devcontainer-builder.workspace={ws.folder}",
        "--format",
        '{{.ID}}\t{{.State}}\t{{.Label "devcontainer-builder.role"}}\t'
        '{{.Label "devcontainer-builder.config"}}\t{{.Label "com.docker.compose.project"}}\t'
        '{{.Label "com.docker.compose.service"}}.',
    )  # fmt: skip  (the dot: no field is trimmed)
    found: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        cid, state, role, config, project, service = line.removesuffix(".").split("\t")
        assert (service or role) not in found, f"two containers for {service or role}: {out}"
        found[service or role] = {"id": cid, "role": role, "config": config, "state": state, "project": project}
    return found


def forget_projects(sandbox: Path) -> None:
    """Take down every project of the sandbox's workspaces, networks and named volumes included."""
    for folder in (sandbox / "workspaces").glob("*"):
        project = compose.project_name(str(folder))
        docker("compose", "--project-name", project, "down", "--volumes", "--timeout", "1", check=False)
        volumes = docker("volume", "ls", "-q", "--filter", f"label={PROJECT_LABEL}={project}", check=False).split()
        if volumes:
            docker("volume", "rm", "-f", *volumes, check=False)
