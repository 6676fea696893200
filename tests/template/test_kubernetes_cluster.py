"""tests/env/kubernetes.sh: a real cluster comes up, runs a pod with the kinds of volumes a workspace has,
and `down` leaves the machine as it found it - no process, mount, iptables chain, bridge, cgroup, file or
kernel setting of the cluster. Runs before the template's tests take the cluster up for the session."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import cluster as k8s

pytestmark = [pytest.mark.kubernetes, pytest.mark.needs_root]

OUTSIDE = ("/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/var/lib/cni", "/etc/cni", "/opt/cni")
SYSCTLS = ("vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
           "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/ip_forward")  # fmt: skip


@dataclass(frozen=True)
class Machine:
    """What the cluster could leave behind. Other tests run on this machine at the same time (containers
    come and go), so only what is the cluster's is compared."""

    processes: frozenset[str]
    mounts: frozenset[str]
    kube_chains: frozenset[str]
    links: frozenset[str]
    kubepods_cgroups: frozenset[str]
    paths: frozenset[str]
    sysctls: tuple[str, ...]

    @classmethod
    def now(cls) -> Machine:
        bin_dir = str(k8s.binaries())
        processes = set()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(k8s.STATE) in cmdline or bin_dir in cmdline:
                processes.add(f"{pid} {cmdline}")
        mounts = {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}
        ours = {m for m in mounts if m.startswith((str(k8s.STATE), "/var/lib/kubelet", "/run/netns/cni-"))}
        chains = set()
        for tool in ("iptables", "ip6tables"):
            for table in ("filter", "nat", "mangle"):
                rules = subprocess.run([tool, "-t", table, "-S"], capture_output=True, text=True, timeout=30,
                                       check=False).stdout  # fmt: skip
                chains |= {f"{tool} {table} {line}" for line in rules.splitlines() if "KUBE-" in line}
        links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, timeout=30, check=True)
        ours_links = {line.split(":")[1].strip() for line in links.stdout.splitlines() if k8s.BRIDGE in line}
        cgroups = {str(p) for p in Path("/sys/fs/cgroup").glob("*/kubepods")}
        paths = {p for p in (str(k8s.STATE), *OUTSIDE) if os.path.lexists(p)}
        sysctls = tuple(Path("/proc/sys", s).read_text().strip() for s in SYSCTLS)
        return cls(frozenset(processes), frozenset(ours), frozenset(chains), frozenset(ours_links),
                   frozenset(cgroups), frozenset(paths), sysctls)  # fmt: skip


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "probe", "namespace": "default"},
    "spec": {
        "automountServiceAccountToken": False,
        "containers": [{
            "name": "pause", "image": "devcontainer-builder-test/pause:3.10", "imagePullPolicy": "Never",
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}, {"name": "memory", "mountPath": "/memory"},
                             {"name": "secret", "mountPath": "/secret"}],
        }],
        "volumes": [{"name": "scratch", "emptyDir": {}}, {"name": "memory", "emptyDir": {"medium": "Memory"}},
                    {"name": "secret", "secret": {"secretName": "probe"}}],
    },
}  # fmt: skip


def test_a_cluster_runs_a_pod_and_down_leaves_the_machine_as_it_was() -> None:
    k8s.down()  # a cluster left from an interrupted run, or none: the machine as it is without one
    before = Machine.now()
    assert not before.processes and not before.mounts and not before.kube_chains and not before.links, before
    try:
        cluster = k8s.up()
        assert k8s.up() == cluster, "up again: the same cluster, still running"
        assert cluster.kubectl("version", "-o", "json").count('"gitVersion": "v1.34.4"') == 2
        cluster.kubectl("-n", "default", "create", "secret", "generic", "probe", "--from-literal=key=value")
        cluster.apply(POD)
        cluster.kubectl("-n", "default", "wait", "--for=condition=Ready", "pod/probe", "--timeout=120s", timeout=150)
        ip = cluster.json("-n", "default", "get", "pod", "probe")["status"]["podIP"]
        assert ip.startswith("10.213.0."), ip
        running = Machine.now()
        assert running.processes and running.mounts and running.links
        # the pod's network namespace is mounted in the cluster's folder, out of /run/netns: rootful Podman
        # binds /run/netns onto itself, which buried a pod's netns there and left the pod Terminating for ever
        netns = [m for m in running.mounts if "/netns/" in m]
        assert netns and all(m.startswith(str(k8s.STATE)) for m in netns), netns
        # the kubelet adds no KUBE-FIREWALL (it would drop non-loopback traffic to 127.0.0.0/8: other
        # tests on this machine reach their servers there)
        assert running.kube_chains == before.kube_chains, running.kube_chains
    finally:
        k8s.down()
    after = Machine.now()
    assert after == before
    k8s.down()  # idempotent
    assert Machine.now() == before
