"""A pod rehearsed from a plan: the containers, environment, mounts, users, groups and start order of the
Deployment that template/kubernetes plans, run on the local Docker engine in Kubernetes' order - native
sidecar until its startup probe passes, then the init container to its end, then the main container.

What Kubernetes would add is stood in for: a PVC is a named Docker volume (kept across pod restarts) with
fsGroup applied, an emptyDir a volume of the pod's run, a ConfigMap or Secret a read-only folder of files,
`secret_key_ref` a value from the Secret's data (its sensitive values are unknown at plan time: the
rehearsal supplies them - the Coder double's tokens and init scripts). The containers share the engine
container's network, as a pod's share one. This machine allows no `--privileged`: a privileged container
gets every capability but CAP_SYS_RESOURCE, which the kernel's bounding set lacks, and no confinement
instead.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.builder import docker
from support.terraform import planned

PRIVILEGED = ["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
              "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined",
              "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"]  # fmt: skip


ENGINE_HOST = "--host=unix:///run/engine/docker.sock"  # where both templates' engines put their socket


def in_engine(container: str, *argv: str) -> list[str]:
    """docker against the engine in `container`, through its socket, from inside that container."""
    return ["docker", "exec", container, "docker", ENGINE_HOST, *argv]


def load_into(container: str, *images: str) -> None:
    """Images from the host's engine into the one in `container` (there is no registry to pull from)."""
    save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
    load = ["docker", "exec", "-i", container, "docker", ENGINE_HOST, "load"]
    subprocess.run(load, stdin=save.stdout, capture_output=True, timeout=600, check=True)
    save.wait(timeout=60)


def engine_output(container: str, *argv: str, timeout: float = 120) -> str:
    return docker(*in_engine(container, *argv)[1:], timeout=timeout)


def pod_spec(plan: dict[str, Any]) -> dict[str, Any]:
    return planned(plan, "kubernetes_deployment_v1.workspace[0]")["spec"][0]["template"][0]["spec"][0]


@dataclass
class Pod:
    plan: dict[str, Any]
    secrets: dict[str, dict[str, str]]  # Secret name -> key -> value
    images: dict[str, str] = field(default_factory=dict)  # image in the plan -> local image to run instead
    prefix: str = field(default_factory=lambda: f"dcb-rehearsal-{uuid.uuid4().hex[:8]}")
    run: int = 0
    files: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dcb-rehearsal-")))
    started: list[str] = field(default_factory=list)

    @property
    def spec(self) -> dict[str, Any]:
        return pod_spec(self.plan)

    def name(self, container: str) -> str:
        return f"{self.prefix}-{container}"

    # -- volumes ------------------------------------------------------------------------------------
    def volume(self, name: str) -> str:
        """The Docker volume (or host folder) behind one of the pod's volumes."""
        (found,) = [v for v in self.spec["volume"] if v["name"] == name]
        if found.get("persistent_volume_claim"):
            return f"{self.prefix}-pvc-{found['persistent_volume_claim'][0]['claim_name']}"
        if found.get("empty_dir"):
            return f"{self.prefix}-run{self.run}-{name}"
        if found.get("config_map"):
            return str(self._folder("configmap", found["config_map"][0]["name"], self._config_map_data))
        if found.get("secret"):
            return str(self._folder("secret", found["secret"][0]["secret_name"], lambda n: self.secrets[n]))
        raise AssertionError(f"volume {name}: a kind the rehearsal does not stand in for")

    def _config_map_data(self, name: str) -> dict[str, str]:
        for change in self.plan["resource_changes"]:
            after = change["change"]["after"] or {}
            if change["type"] == "kubernetes_config_map_v1" and after["metadata"][0]["name"] == name:
                return after["data"]
        raise AssertionError(f"no ConfigMap {name} in the plan")

    def _folder(self, kind: str, name: str, data: Any) -> Path:
        folder = self.files / kind / name
        if not folder.exists():
            folder.mkdir(parents=True)
            for key, value in data(name).items():
                (folder / key).write_text(value)
            folder.chmod(0o755)
        return folder

    def prepare_volumes(self) -> None:
        """PVCs once (owned by fsGroup, as the kubelet makes them), emptyDirs for this run of the pod."""
        group = self.spec["security_context"][0].get("fs_group")
        for volume in self.spec["volume"]:
            source = self.volume(volume["name"])
            if source.startswith("/"):
                continue
            exists = subprocess.run(["docker", "volume", "inspect", source], capture_output=True, check=False)
            if exists.returncode == 0:
                continue
            docker("volume", "create", source)
            # an emptyDir is world-writable; a PVC belongs to fsGroup, setgid, as the kubelet makes them
            setup = "chmod 1777 /v" if volume.get("empty_dir") else f"chgrp {group} /v && chmod 2775 /v"
            if volume.get("empty_dir") or group:
                docker("run", "--rm", "-v", f"{source}:/v", "--entrypoint", "sh", self._any_image(), "-c", setup)

    def _any_image(self) -> str:
        from support.images import BASE_IMAGE

        return BASE_IMAGE

    # -- containers ---------------------------------------------------------------------------------
    def docker_args(self, container: dict[str, Any], *, first: bool) -> list[str]:
        args = ["--name", self.name(container["name"])]
        if not first:
            args += ["--network", f"container:{self.name(self.spec['init_container'][0]['name'])}"]
        context = (container.get("security_context") or [{}])[0]
        pod_context = self.spec["security_context"][0]
        if context.get("privileged"):
            args += PRIVILEGED
        if context.get("run_as_user"):
            args += ["--user", f"{context['run_as_user']}:{context.get('run_as_group') or context['run_as_user']}"]
        for group in pod_context.get("supplemental_groups") or []:
            args += ["--group-add", str(group)]
        if pod_context.get("fs_group") and context.get("run_as_user"):
            args += ["--group-add", str(pod_context["fs_group"])]
        if context.get("read_only_root_filesystem"):
            args.append("--read-only")
        for capabilities in context.get("capabilities") or []:
            for cap in capabilities.get("drop") or []:
                args += ["--cap-drop", cap]
        if context.get("allow_privilege_escalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        for entry in container.get("env") or []:
            args += ["-e", f"{entry['name']}={self._env_value(entry)}"]
        for mount in container.get("volume_mount") or []:
            source = self.volume(mount["name"])
            if mount.get("sub_path") and not source.startswith("/"):
                # a folder inside a volume, as the kubelet mounts it: from the volume's own folder on this host
                source = docker("volume", "inspect", "-f", "{{.Mountpoint}}", source)
            if mount.get("sub_path"):
                source = f"{source}/{mount['sub_path']}"
            args += ["-v", f"{source}:{mount['mount_path']}{':ro' if mount.get('read_only') else ''}"]
        image = self.images.get(container["image"], container["image"])
        if container.get("command"):
            args += ["--entrypoint", container["command"][0], image, *container["command"][1:]]
        else:
            args.append(image)
        return args + list(container.get("args") or [])

    def _env_value(self, entry: dict[str, Any]) -> str:
        if entry.get("value_from"):
            ref = entry["value_from"][0]["secret_key_ref"][0]
            return self.secrets[ref["name"]][ref["key"]]
        return str(entry.get("value") or "")

    def start(self, timeout: float = 600) -> tuple[int, str]:
        return self.start_with(lambda: None, timeout)

    def start_with(self, after_sidecars: Callable[[], None], timeout: float = 600) -> tuple[int, str]:
        """The pod, in Kubernetes' order (with `after_sidecars` run once the sidecars are up); the init
        container's exit code and log."""
        self.run += 1
        self.prepare_volumes()
        sidecars = [c for c in self.spec["init_container"] if c.get("restart_policy") == "Always"]
        inits = [c for c in self.spec["init_container"] if c.get("restart_policy") != "Always"]
        assert self.spec["init_container"][0] in sidecars, "the network's owner is the first container: a sidecar"
        for index, sidecar in enumerate(sidecars):
            self._remove(sidecar["name"])
            docker("run", "-d", *self.docker_args(sidecar, first=index == 0))
            self.started.append(sidecar["name"])
            self.wait_for_startup_probe(sidecar)
        after_sidecars()
        code, logs = 0, ""
        for init in inits:
            self._remove(init["name"])
            docker("run", "-d", *self.docker_args(init, first=False))
            self.started.append(init["name"])
            code = int(docker("wait", self.name(init["name"]), timeout=timeout))
            logs = docker("logs", self.name(init["name"]), check=False)
            if code != 0:
                return code, logs
        for main in self.spec["container"]:
            self._remove(main["name"])
            docker("run", "-d", *self.docker_args(main, first=False))
            self.started.append(main["name"])
        for main in self.spec["container"]:  # the pod is Ready once every readiness probe passes
            if main.get("readiness_probe"):
                self.wait_for_probe(main, "readiness_probe")
        return code, logs

    def wait_for_startup_probe(self, container: dict[str, Any]) -> None:
        self.wait_for_probe(container, "startup_probe")

    def wait_for_probe(self, container: dict[str, Any], kind: str) -> None:
        probe = container[kind][0]
        command = probe["exec"][0]["command"]
        for _ in range(int(probe.get("failure_threshold") or 3)):
            done = subprocess.run(["docker", "exec", self.name(container["name"]), *command],
                                  capture_output=True, timeout=60, check=False)  # fmt: skip
            if done.returncode == 0:
                return
            time.sleep(float(probe.get("period_seconds") or 10))
        logs = docker("logs", self.name(container["name"]), check=False)
        raise AssertionError(f"{container['name']}'s {kind} never passed: {logs[-3000:]}")

    def exec(self, container: str, *argv: str, check: bool = True) -> str:
        return docker("exec", self.name(container), *argv, check=check)

    def engine(self, *argv: str, timeout: float = 120) -> str:
        return engine_output(self.name("engine"), *argv, timeout=timeout)

    def load_images(self, *names: str) -> None:
        load_into(self.name("engine"), *names)

    def stop(self) -> None:
        """The pod goes (a stop, or before a restart): its containers and emptyDirs, not its PVCs."""
        for container in reversed(self.started):
            self._remove(container)
        self.started = []
        for volume in self.spec["volume"]:
            if volume.get("empty_dir"):
                docker("volume", "rm", "-f", self.volume(volume["name"]), check=False)

    def _remove(self, container: str) -> None:
        docker("rm", "-f", "-v", self.name(container), check=False)

    def destroy(self) -> None:
        self.stop()
        for line in docker("volume", "ls", "-q", "--filter", f"name={self.prefix}-", check=False).splitlines():
            docker("volume", "rm", "-f", line, check=False)
        with contextlib.suppress(OSError):
            shutil.rmtree(self.files)


ENGINE_PROBES = {
    "the engine's socket": "ls -l /run/engine/docker.sock",
    "the engine's API": "docker version --format '{{.Server.Version}}'",
    "the engine's API through its socket's path": "curl -fsS --unix-socket /run/engine/docker.sock http://engine/version",
    "the engine's API on TCP": "curl -fsS -m 3 http://127.0.0.1:2375/version || curl -fsS -m 3 -k https://127.0.0.1:2376/version",
    # a socket in the abstract namespace is reachable by anyone in the network namespace, mounted or not
    "an abstract socket of the engine": "for s in $(awk 'NR > 1 && $8 ~ /^@/ {print substr($8, 2)}' /proc/net/unix); do "
    'curl -fsS -m 2 --abstract-unix-socket "$s" http://engine/version && exit 0; done; exit 1',
    "a write into the state dir": "touch /workspaces/.devcontainer-builder/from-the-terminal",
}


def assert_no_engine_in_reach(coder: Any, token: str, repository: str = "widgets") -> None:
    """From the builder agent's terminal: none of ENGINE_PROBES succeeds; the user's files and the
    workspace's status do work."""
    for what, command in ENGINE_PROBES.items():
        code, output = coder.run_in_agent(token, command)
        assert code != 0 and "ApiVersion" not in output, f"the builder agent's terminal reached {what}: {output}"
    code, output = coder.run_in_agent(
        token, f"touch /workspaces/{repository}/from-the-terminal && devcontainer-builder status --short"
    )
    assert (code, output.strip()) == (0, "running"), output


# -- template/docker ----------------------------------------------------------------------------------


@dataclass
class DockerHost:
    """The containers template/docker plans, run on the local engine as the docker provider would create
    them: image, command, environment, volumes, uploads, groups, read-only root, tmpfs, capabilities,
    network, extra hosts - and the order (the builder first). The builder's environment holds the agents'
    tokens, known only after apply: it comes from `terraform console -plan` with the secrets supplied."""

    plan: dict[str, Any]
    env: dict[str, str]
    images: dict[str, str] = field(default_factory=dict)
    files: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dcb-rehearsal-")))
    created: list[str] = field(default_factory=list)
    terminal_env: dict[str, str] = field(default_factory=dict)  # the terminal's, as the builder's: known after apply

    def container(self, name: str) -> dict[str, Any]:
        return planned(self.plan, f"docker_container.{name}[0]")

    def name(self, container: str) -> str:
        return str(self.container(container)["name"])

    def volumes(self) -> list[str]:
        return [planned(self.plan, f"docker_volume.{v}")["name"] for v in ("workspaces", "engine", "socket", "state")]

    def network(self) -> str:
        return str(planned(self.plan, "docker_network.workspace[0]")["name"])

    def docker_args(self, which: str) -> list[str]:
        spec = self.container(which)
        args = ["--name", spec["name"]]
        if (spec.get("network_mode") or "").startswith("container:") or which == "terminal":
            # the planned id is known after apply: the builder's, by the name the plan gives it
            args += ["--network", f"container:{self.name('builder')}"]
        else:
            args += ["--hostname", spec["hostname"], "--network", self.network()]
        args += ["--label", "devcontainer-builder.rehearsal=1"]
        if spec.get("privileged"):
            args += PRIVILEGED
        for group in spec.get("group_add") or []:
            args += ["--group-add", group]
        if spec.get("read_only"):
            args.append("--read-only")
        for path, options in (spec.get("tmpfs") or {}).items():
            args += ["--tmpfs", f"{path}:{options}" if options else path]
        for capabilities in spec.get("capabilities") or []:
            for cap in capabilities.get("drop") or []:
                args += ["--cap-drop", cap]
        for option in spec.get("security_opts") or []:
            args += ["--security-opt", option]
        for host in spec.get("host") or []:
            args += ["--add-host", f"{host['host']}:{host['ip']}"]
        for volume in spec.get("volumes") or []:
            args += [
                "-v",
                f"{volume['volume_name']}:{volume['container_path']}{':ro' if volume.get('read_only') else ''}",
            ]
        for index, upload in enumerate(spec.get("upload") or []):
            local = self.files / f"{which}-{index}"
            local.write_text(upload["content"])
            local.chmod(0o644)
            args += ["-v", f"{local}:{upload['file']}:ro"]
        for key, value in {"builder": self.env, "terminal": self.terminal_env}.get(which, {}).items():
            args += ["-e", f"{key}={value}"]
        image = self.images.get(spec["image"], spec["image"])
        entrypoint = spec.get("entrypoint") or []
        if entrypoint:
            return [*args, "--entrypoint", entrypoint[0], image, *entrypoint[1:], *(spec.get("command") or [])]
        return [*args, image, *(spec.get("command") or [])]

    def engine_cmd(self, *argv: str) -> list[str]:
        return in_engine(self.name("engine"), *argv)

    def engine(self, *argv: str, timeout: float = 120) -> str:
        return engine_output(self.name("engine"), *argv, timeout=timeout)

    def wait_for_engine(self, timeout: float = 120) -> None:
        """Until the engine answers: the container's health check."""
        test = self.container("engine")["healthcheck"][0]["test"]
        command = test[1:] if test[0] == "CMD" else ["sh", "-c", test[1]]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if subprocess.run(["docker", "exec", self.name("engine"), *command], capture_output=True,
                              timeout=60, check=False).returncode == 0:  # fmt: skip
                return
            time.sleep(1)
        raise AssertionError(docker("logs", self.name("engine"), check=False)[-3000:])

    def preload(self, *images: str) -> None:
        """There is no registry here: the images go into the engine's storage volume first, as pulls would
        have put them."""
        self._create_storage()
        docker("run", "-d", *self.docker_args("engine"))
        self.created.append("engine")
        self.wait_for_engine()
        load_into(self.name("engine"), *images)
        docker("rm", "-f", self.name("engine"))

    def _create_storage(self) -> None:
        for volume in self.volumes():
            docker("volume", "create", "--label", "devcontainer-builder.rehearsal=1", volume)
        found = subprocess.run(["docker", "network", "inspect", self.network()], capture_output=True, check=False)
        if found.returncode != 0:
            docker("network", "create", self.network())

    def start(self) -> None:
        """As `terraform apply` on a start: the builder first, then the engine (depends_on) and the terminal
        (on the builder's network)."""
        self._create_storage()
        for which in ("builder", "engine", "terminal"):
            docker("rm", "-f", self.name(which), check=False)
            docker("run", "-d", *self.docker_args(which))
            if which not in self.created:
                self.created.append(which)

    def stop(self) -> None:
        """A workspace stop: the containers and the network go (count = start_count); the volumes stay."""
        for which in ("terminal", "builder", "engine"):
            docker("stop", "-t", "10", self.name(which), check=False)
            docker("rm", "-f", self.name(which), check=False)
        docker("network", "rm", self.network(), check=False)

    def destroy(self) -> None:
        self.stop()
        for volume in self.volumes():
            docker("volume", "rm", "-f", volume, check=False)
        with contextlib.suppress(OSError):
            shutil.rmtree(self.files)
