"""The few questions the builder asks the container engine directly (everything else goes through the
devcontainer CLI): which containers belong to a workspace, removing stale ones, and whether the
engine can export a layer cache."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from devcontainer_builder.errors import BuildFailed
from devcontainer_builder.system import proc, retry
from devcontainer_builder.system.proc import last_line

QUERY_TIMEOUT = 60.0
LABEL_WORKSPACE = "devcontainer-builder.workspace"
LABEL_ROLE = "devcontainer-builder.role"
LABEL_CONFIG = "devcontainer-builder.config"
LABEL_LOCAL_FOLDER = "devcontainer.local_folder"
LABEL_METADATA = "devcontainer.metadata"
LABEL_PROJECT = "com.docker.compose.project"  # compose's own, on every container of a project
LABEL_SERVICE = "com.docker.compose.service"


def engine_problem(docker: str, error: str) -> str:
    if "permission denied" in error.lower():
        return (
            f"the builder (uid {os.getuid()}) may not use the container engine's socket: {error}. Add it to the "
            "socket's group (docker run --group-add GID, or the pod's supplementalGroups) or run it as root."
        )
    return (
        f"cannot reach the container engine with {docker}: {error}. Is the engine running and its socket "
        "reachable (DOCKER_HOST)?"
    )


@dataclass(frozen=True)
class Labelled:
    id: str
    role: str
    config_hash: str
    state: str = ""  # running, exited, created, ...
    project: str = ""  # the compose project it belongs to, if any
    service: str = ""  # its compose service
    metadata: str = ""  # the devcontainer.metadata label: lifecycle hooks of image, features and config

    @property
    def has_post_attach(self) -> bool:
        return "postAttachCommand" in self.metadata


PODMAN = "podman"
DOCKER = "docker"


@dataclass(frozen=True)
class Engine:
    docker: str  # the engine's CLI, as the devcontainer CLI gets it (--docker-path)
    env: Mapping[str, str]
    kind: str = ""  # DOCKER or PODMAN (engine/detect.py); "" means: from the CLI's name

    @property
    def podman(self) -> bool:
        return (self.kind or os.path.basename(self.docker)) == PODMAN

    def _run(self, args: list[str], timeout: float = QUERY_TIMEOUT) -> proc.Result:
        return proc.run([self.docker, *args], timeout=timeout, env=self.env)

    def unreachable(self) -> str:
        """Why the engine does not answer, or "" when it does."""
        result = self._run(["version", "--format", "{{.Server.Version}}"], timeout=30.0)
        return "" if result.ok else last_line(result.stderr)

    def wait_until_reachable(self, timeout: float, on_wait: Callable[[str], None]) -> str:
        """Poll the engine for up to `timeout` s (a DinD sidecar may still be starting); "" once it
        answers, else why it does not. A socket the builder may not use is not waited for."""
        deadline = time.monotonic() + timeout
        problem = self.unreachable()
        if problem and "permission denied" not in problem.lower():
            on_wait(problem)
            waits = retry.delays(0.25, 2.0, jitter=False)
            while problem and "permission denied" not in problem.lower():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                retry.sleep(min(next(waits), left))
                problem = self.unreachable()
        return problem

    def workspace_containers(self, workspace: str) -> list[Labelled]:
        """Every container labelled as this workspace's, running or not."""
        which = ["ps", "-a", "--no-trunc", "--filter", f"label={LABEL_WORKSPACE}={workspace}"]
        # Podman's `ps` templates have no .Label and its .State is the status text: it answers in JSON,
        # whose labels are a map (docker's JSON joins them with commas, which a label value may hold)
        template = "json" if self.podman else (
            f'{{{{.ID}}}}\t{{{{.Label "{LABEL_ROLE}"}}}}\t{{{{.Label "{LABEL_CONFIG}"}}}}\t{{{{.State}}}}'
            f'\t{{{{.Label "{LABEL_PROJECT}"}}}}\t{{{{.Label "{LABEL_SERVICE}"}}}}'
            f'\t{{{{.Label "{LABEL_METADATA}"}}}}'
        )  # fmt: skip
        result = self._run([*which, "--format", template])
        if not result.ok:
            raise BuildFailed(
                engine_problem(self.docker, last_line(result.stderr)), step="engine", detail=result.stderr
            )
        if self.podman:
            return _from_podman_ps(result.stdout)
        found = []
        for line in result.stdout.splitlines():
            parts = line.split("\t", 6)
            if len(parts) == 7:
                found.append(Labelled(*parts))
        return found

    def image_user(self, image: str) -> str:
        """The remote user a local image's devcontainer.metadata names (remoteUser, else containerUser, the
        last entry that sets one winning), else its USER; "" when the image is not local."""
        template = f'{{{{index .Config.Labels "{LABEL_METADATA}"}}}}\n{{{{.Config.User}}}}'
        result = self._run(["image", "inspect", "--format", template, image])
        if not result.ok:
            return ""
        metadata, _, user = result.stdout.rstrip("\n").partition("\n")
        try:
            entries = json.loads(metadata) if metadata.strip() else []
        except ValueError:
            entries = []
        found = ""
        for key in ("containerUser", "remoteUser"):  # remoteUser wins over containerUser
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict) and isinstance(entry.get(key), str) and entry[key]:
                    found = entry[key]
        return found or user.split(":")[0]

    def remove(self, container: str) -> proc.Result:
        return self._run(["rm", "-f", container], timeout=120.0)

    def exec(
        self,
        container: str,
        argv: list[str],
        user: str = "root",
        stdin: bytes | None = None,
        timeout: float = QUERY_TIMEOUT,
    ) -> proc.Result:
        interactive = ["-i"] if stdin is not None else []
        return proc.run(
            [self.docker, "exec", *interactive, "-u", user, container, *argv],
            timeout=timeout,
            env=self.env,
            stdin_data=stdin,
        )

    def container_status(self, container: str) -> str:
        """running, exited, created, ... ; "" when there is no such container; raises BuildFailed when
        the engine does not answer."""
        result = self._run(["inspect", "--type", "container", "--format", "{{.State.Status}}", container])
        if result.ok:
            return result.stdout.strip()
        if "no such" in result.stderr.lower() or "not found" in result.stderr.lower():
            return ""
        raise BuildFailed(engine_problem(self.docker, last_line(result.stderr)), step="engine", detail=result.stderr)

    def inspect_format(self, container: str, template: str) -> str:
        """One value of the container's `docker inspect` ("" when there is no such container)."""
        result = self._run(["inspect", "--type", "container", "--format", template, container])
        return result.stdout.strip() if result.ok else ""

    def events_argv(self, container: str, project: str = "") -> list[str]:
        """An endless stream of the container's lifecycle events (of every container of its compose
        project, when it has one), one action a line."""
        which = f"label={LABEL_PROJECT}={project}" if project else f"container={container}"
        action = "{{.Status}}" if self.podman else "{{.Action}}"  # podman's events have no .Action
        return [self.docker, "events", "--filter", "type=container", "--filter", which,
                "--format", action]  # fmt: skip

    def compose(self, project: str, args: list[str], timeout: float = 180.0) -> proc.Result:
        """`compose -p PROJECT ...` on a project's existing containers (no compose file needed)."""
        return self._run(["compose", "--project-name", project, *args], timeout=timeout)

    def logs_tail(self, container: str, lines: int = 20) -> str:
        result = self._run(["logs", "--tail", str(lines), container], timeout=30.0)
        return (result.stdout + result.stderr).strip()

    def start(self, container: str, timeout: float = 120.0) -> proc.Result:
        return self._run(["start", container], timeout=timeout)

    def buildx_available(self) -> bool:
        return self._run(["buildx", "version"], timeout=30.0).ok

    def cache_export_problem(self, cache_to: str) -> str:
        """Why the engine cannot honour --cache-to, or "" when it can."""
        if self.podman:  # buildah pushes a layer cache to a registry repository (policy/podman_args.py)
            if "type=" in cache_to and "type=registry" not in cache_to.replace(" ", ""):
                return "Podman's builds (buildah) export a layer cache only to a registry (type=registry,ref=...)"
            return ""
        if not self.buildx_available():
            return (
                "docker buildx is not installed, so the devcontainer CLI builds with plain `docker build` and "
                "silently drops --cache-to"
            )
        if "type=inline" in cache_to.replace(" ", ""):
            return ""
        inspect = self._run(["buildx", "inspect"], timeout=30.0)
        driver = ""
        for line in inspect.stdout.splitlines():
            if line.strip().startswith("Driver:"):
                driver = line.split(":", 1)[1].strip()
                break
        if driver and driver != "docker":
            return ""
        info = self._run(["info", "--format", "{{json .DriverStatus}}"])
        if "io.containerd.snapshotter" in info.stdout:
            return ""
        return (
            "the buildx builder uses the docker driver on an engine without the containerd image store, which "
            "cannot export a registry cache (only type=inline works there)"
        )


def _from_podman_ps(text: str) -> list[Labelled]:
    try:
        entries = json.loads(text or "[]")
    except ValueError:
        raise BuildFailed("podman ps answered with something that is not JSON", step="engine", detail=text) from None
    found = []
    for entry in entries if isinstance(entries, list) else []:
        labels = entry.get("Labels") or {}
        found.append(
            Labelled(
                id=str(entry.get("Id", "")),
                role=labels.get(LABEL_ROLE, ""),
                config_hash=labels.get(LABEL_CONFIG, ""),
                state=str(entry.get("State", "")),
                project=labels.get(LABEL_PROJECT, ""),
                service=labels.get(LABEL_SERVICE, ""),
                metadata=labels.get(LABEL_METADATA, ""),
            )
        )
    return found
