"""`make bench`: a workspace start of template/kubernetes on the real cluster (tests/env/kubernetes.sh), side
by side with the raw devcontainer CLI run in the same pod's engine. Needs root (the cluster); it starts the
cluster when none runs and stops it again at the end.

  first start:        `terraform apply` of a new workspace: new claims, an empty engine that pulls the base
                      image from the registry on the cluster's bridge, a Dockerfile, a local feature and a
                      `postCreateCommand` (the repository of the real-cluster tests)
  raw CLI, fresh:     `devcontainer up` of a copy of that repository in the same pod, from the supervisor's
                      container (the builder image: the same pinned CLI, the pod's engine), its Dockerfile's
                      RUN line changed so that the pod's layers are no help (the base image is there already)
  restart, kept:      a stop and a start (the Deployment removed and created again), the engine's claim
                      kept: the devcontainer started again, not rebuilt
  raw CLI, existing:  `devcontainer up` of that copy again after the restart: its container is there, stopped
  ephemeral engine:   engine_storage = "ephemeral" with cache_repository on the bridge's registry: each start
                      after a stop builds again, in an empty engine, from the registry cache
  raw CLI, cached:    `devcontainer up --cache-from` of a copy with the same Dockerfile in that pod's engine,
                      after the engine's build cache was pruned - a lower bound: the base image and the
                      layers the builder just pulled and unpacked are in the engine already

The builder's number is its init container's run, from the first to the last line of its log (the
runtime's timestamps; the interpreters' start before the first line - the entrypoint, tini, the builder:
80 ms to an exit in the image - is not in it, while Node's start is in the CLI's); the CLI's is
`devcontainer up` timed inside the container. The CLI shares the pod's /tmp with the builder, so it finds
the control manifest the builder gave its own: neither waits for containers.dev. Pod Ready: from the pod's
creation to its Ready condition (the API's whole seconds). Medians of BENCH_RUNS runs; BENCH_VERBOSE=1
prints the builder's log of each restart with its lines' offsets: where its time goes.
"""

from __future__ import annotations

import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from support import cluster as k8s  # noqa: E402
from support.cluster_workspace import Workspace, make_workspace, open_bridge, remove  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
VERBOSE = os.environ.get("BENCH_VERBOSE") == "1"
IMAGE = os.environ.get("IMAGE", "devcontainer-builder:dev")
RESTART_GOAL = 1.2


def stamp(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def builder_seconds(ws: Workspace) -> float:
    """The builder init container's run: its log's first line to its last, by the runtime's clock."""
    lines = ws.kubectl("logs", f"deployment/{ws.name}", "-c", "builder", "--timestamps").splitlines()
    times = [stamp(line.split(" ", 1)[0]) for line in lines if line[:4].isdigit()]
    return times[-1] - times[0]


def pod_ready_seconds(pod: dict) -> float:
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    return stamp(ready["lastTransitionTime"]) - stamp(pod["metadata"]["creationTimestamp"])


def start(ws: Workspace, transition_first: bool = False) -> tuple[float, float]:
    """A workspace build with the start transition (after a stop, unless it is the first): (builder, pod Ready)."""
    if not transition_first:
        ws.build("stop")
        ws.no_pod()
    ws.build("start")
    pod = ws.ready_pod()
    if VERBOSE and not transition_first:
        breakdown(ws)
    return builder_seconds(ws), pod_ready_seconds(pod)


def breakdown(ws: Workspace) -> None:
    """The builder's log of this start, each line with its offset from the first (the runtime's clock)."""
    lines = ws.kubectl("logs", f"deployment/{ws.name}", "-c", "builder", "--timestamps").splitlines()
    t0 = stamp(lines[0].split(" ", 1)[0])
    for line in lines:
        when, _, text = line.partition(" ")
        if when[:4].isdigit():
            print(f"      +{stamp(when) - t0:6.2f} s {text[:110]}", flush=True)


def copy_workspace(ws: Workspace, target: str, fresh_layers: bool) -> None:
    """A copy of the workspace's repository beside it, for the raw CLI (no .git: the CLI needs none)."""
    script = f"rm -rf {target} && cp -a /workspaces/{ws.repo} {target} && rm -rf {target}/.git"
    if fresh_layers:
        script += f" && sed -i 's|^RUN date|RUN echo {target} \\&\\& date|' {target}/.devcontainer/Dockerfile"
    ws.pod_exec("supervisor", "sh", "-c", script)


def raw_cli(ws: Workspace, folder: str, *extra: str) -> float:
    """`devcontainer up` in the supervisor's container (the builder image, the pod's engine), timed there."""
    up = " ".join(["devcontainer", "up", "--workspace-folder", folder, "--log-level", "info", *extra])
    script = f'a=$(date +%s%N); {up} >/tmp/raw-up.log 2>&1; rc=$?; b=$(date +%s%N); echo "$rc $((b - a))"'
    rc, nanoseconds = ws.pod_exec("supervisor", "sh", "-c", script).split()
    if rc != "0":
        log = ws.pod_exec("supervisor", "tail", "-c", "3000", "/tmp/raw-up.log", check=False)
        raise SystemExit(f"bench: raw devcontainer up failed ({rc})\n{log}")
    return int(nanoseconds) / 1e9


def running() -> bool:
    """A cluster of someone else's runs already, which this bench must leave running (`status` exits 3 when a
    daemon is stopped, which is not an error here)."""
    try:
        result = subprocess.run(
            ["bash", str(k8s.SCRIPT), "status"], capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        return True  # a cluster too busy to answer is someone's
    return "kube-apiserver: running" in result.stdout


def main() -> None:
    started_here = not running()
    cluster = k8s.up()
    root = Path(tempfile.mkdtemp(prefix="dcb-bench-cluster-", dir="/tmp"))
    root.chmod(0o755)
    rows: dict[str, list[float]] = {key: [] for key in (
        "first", "first ready", "raw fresh", "restart", "restart ready", "raw existing",
        "ephemeral first", "ephemeral first ready", "ephemeral cached", "ephemeral cached ready", "raw cached")}  # fmt: skip
    try:
        with open_bridge(cluster, IMAGE, root / "bridge") as bridge:
            for run in range(RUNS):
                ws = make_workspace(cluster, bridge, _folder(root, f"tf-{run}"), f"widgets{run}", str(uuid.uuid4()))
                try:
                    builder, ready = start(ws, transition_first=True)
                    rows["first"].append(builder)
                    rows["first ready"].append(ready)
                    copy_workspace(ws, "/workspaces/raw", fresh_layers=True)
                    rows["raw fresh"].append(raw_cli(ws, "/workspaces/raw"))
                    builder, ready = start(ws)
                    rows["restart"].append(builder)
                    rows["restart ready"].append(ready)
                    rows["raw existing"].append(raw_cli(ws, "/workspaces/raw"))
                finally:
                    remove(ws)
                print(f"  run {run + 1}/{RUNS}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in rows.items() if v),
                      flush=True)  # fmt: skip
            cache = f"{bridge.registry}/cache/gadgets"
            ws = make_workspace(cluster, bridge, _folder(root, "tf-ephemeral"), "gadgets", str(uuid.uuid4()),
                                engine_storage="ephemeral", cache_repository=cache)  # fmt: skip
            try:
                builder, ready = start(ws, transition_first=True)
                rows["ephemeral first"].append(builder)
                rows["ephemeral first ready"].append(ready)
                for run in range(RUNS):
                    builder, ready = start(ws)
                    rows["ephemeral cached"].append(builder)
                    rows["ephemeral cached ready"].append(ready)
                    copy_workspace(ws, "/workspaces/raw", fresh_layers=False)
                    ws.engine("builder", "prune", "-af")
                    rows["raw cached"].append(raw_cli(ws, "/workspaces/raw", "--cache-from", cache))
                    print(f"  ephemeral run {run + 1}/{RUNS}: cached {rows['ephemeral cached'][-1]:.2f} s, "
                          f"raw cached {rows['raw cached'][-1]:.2f} s", flush=True)  # fmt: skip
            finally:
                remove(ws)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if started_here:
            k8s.down()
    report({key: statistics.median(values) for key, values in rows.items()})


def _folder(root: Path, name: str) -> Path:
    (root / name).mkdir()
    return root / name


def report(m: dict[str, float]) -> None:
    print(f"workspace start on the real cluster (template/kubernetes), medians of {RUNS} runs")
    print("                                        builder   raw CLI   ratio   pod Ready")
    for label, builder, raw, ready in (
        ("first start (image built)", "first", "raw fresh", "first ready"),
        ("restart, engine volume kept", "restart", "raw existing", "restart ready"),
        ("ephemeral engine, registry cache", "ephemeral cached", "raw cached", "ephemeral cached ready"),
    ):
        print(f"  {label:36s} {m[builder]:6.2f} s  {m[raw]:6.2f} s  {m[builder] / m[raw]:5.2f}   {m[ready]:5.0f} s")
    print(
        f"  ephemeral engine, its first start    {m['ephemeral first']:6.2f} s  (pod Ready {m['ephemeral first ready']:.0f} s)"
    )
    ratio = m["restart"] / m["raw existing"]
    print(f"  restart goal: <= {RESTART_GOAL} x the raw CLI on its stopped container: "
          f"{ratio:.2f} {'met' if ratio <= RESTART_GOAL else 'MISSED'}")  # fmt: skip
    sys.exit(0 if ratio <= RESTART_GOAL else 1)


if __name__ == "__main__":
    main()
