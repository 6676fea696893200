"""The real single-node Kubernetes of tests/env/kubernetes.sh, as the template tests use it: `up` once a
session, images from the local Docker engine, local volumes bound ahead to a workspace's claims, kubectl
with a bound on every call, and `down` at the end."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "env" / "kubernetes.sh"
STATE = Path(os.environ.get("DCB_K8S_STATE", "/var/lib/devcontainer-builder-k8s"))
NODE_IP = "10.213.0.1"  # the host's address on the cluster's bridge: where the tests' servers listen
BRIDGE = "dcbk8s0"
STORAGE_CLASS = "local"


def script(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"kubernetes.sh {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def binaries() -> Path:
    result = subprocess.run([str(ROOT / "tests/env/kubernetes-binaries.sh")], capture_output=True, text=True,
                            timeout=3600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


@dataclass
class Cluster:
    kubeconfig: str
    kubectl_bin: str

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 120, check: bool = True) -> str:
        result = subprocess.run(
            [self.kubectl_bin, "--kubeconfig", self.kubeconfig, *args],
            input=input, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check:
            assert result.returncode == 0, f"kubectl {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result.stdout.strip()

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def load(self, *images: str) -> None:
        """Images of the local engine into the cluster's containerd (`IMAGE` or `IMAGE=NAME`)."""
        script("load", *images, timeout=900)

    def volume(self, namespace: str, claim: str, size: str = "20Gi") -> Path:
        """A local volume bound ahead to `claim`; the folder that holds its data."""
        script("volume", namespace, claim, size, timeout=120)
        return STATE / "volumes" / f"{namespace}-{claim}"

    def remove_volume(self, namespace: str, claim: str) -> None:
        self.kubectl("delete", "pv", f"{namespace}-{claim}", "--ignore-not-found", "--wait=false")
        subprocess.run(["rm", "-rf", str(STATE / "volumes" / f"{namespace}-{claim}")], check=False, timeout=120)

    def wait_for(self, check: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout} s")
            time.sleep(interval)


def up() -> Cluster:
    result = script("up")
    lines = [line for line in result.stdout.splitlines() if line.startswith("export KUBECONFIG=")]
    assert lines, result.stdout + result.stderr
    return Cluster(lines[-1].split("=", 1)[1], str(binaries() / "kubectl"))


def down() -> None:
    script("down", timeout=300)
