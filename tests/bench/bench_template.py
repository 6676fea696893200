"""`make bench`: a workspace start on the pod template/kubernetes plans, rehearsed on the local engine
(tests/support/rehearsal.py), side by side with the raw devcontainer CLI on the same engine.

  first start:        new volumes, an empty engine (the base images loaded first, as pulls would)
  restart, kept:      the pod stopped and started, the engine's volume kept: the devcontainer is started
                      again, not rebuilt
  raw CLI, fresh:     `devcontainer up` of a copy of the repository in the same engine, no container yet,
                      its Dockerfile's RUN line changed so that the pod's layers are no help
  raw CLI, existing:  `devcontainer up` again after that restart: its container is there, stopped
  ephemeral engine:   engine_storage = "ephemeral" with a registry cache (cache_repository): the first
                      start exports the layer cache, a stop empties the engine, the next start builds
                      again from the cache (the base images loaded again, as pulls would)

The pod's number is the builder init container's run (from its start to its exit 0); the CLI's is the
`devcontainer up` run, in a container of the builder image on the pod's engine. Medians of BENCH_RUNS
interleaved runs; the ratios compare the builder with the raw CLI doing the same work.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from support import images  # noqa: E402
from support.builder import docker  # noqa: E402
from support.coder import bridge_gateway, init_script, make_double  # noqa: E402
from support.githttp import GitHTTPServer  # noqa: E402
from support.rehearsal import Pod  # noqa: E402
from support.repos import Remote  # noqa: E402
from support.services import Registry  # noqa: E402
from support.terraform import workdir  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
IMAGE = os.environ.get("IMAGE", "devcontainer-builder:dev")
PLANNED_BUILDER = "ghcr.io/devcontainer-builder/devcontainer-builder:0.1.0"
PLANNED_ENGINE = "docker.io/library/docker:28.2.2-dind"  # the default; the stand-in DinD image runs instead
FILES = {
    ".devcontainer/devcontainer.json": json.dumps(
        {"build": {"dockerfile": "Dockerfile"}, "postCreateCommand": "echo created > /tmp/created"}
    ),
    ".devcontainer/Dockerfile": f"FROM {images.FALLBACK_IMAGE}\nRUN sleep 2 && echo built > /tmp/built\n",
}


def timed_start(pod: Pod, first: bool) -> float:
    """Seconds the builder init container ran (the base images are loaded before it starts)."""
    hook = (lambda: pod.load_images(images.BASE_IMAGE, images.FALLBACK_IMAGE)) if first else (lambda: None)
    code, logs = pod.start_with(hook)
    if code != 0:
        raise SystemExit(f"bench: the builder failed\n{logs[-3000:]}")
    info = json.loads(docker("inspect", pod.name("builder")))[0]["State"]
    return _stamp(info["FinishedAt"]) - _stamp(info["StartedAt"])


def _stamp(text: str) -> float:
    from datetime import datetime

    whole, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole + "+00:00").timestamp() + float("0." + (fraction or "0"))


def raw_cli(pod: Pod, folder: str, *extra: str) -> float:
    """`devcontainer up` of a copy of the workspace, in the pod's engine, from the builder image."""
    args = ["run", "--rm", "--network", f"container:{pod.name('engine')}", "--group-add", "2375",
            "-v", f"{pod.volume('socket')}:/run/engine", "-v", f"{pod.volume('workspaces')}:/workspaces",
            "-e", "DOCKER_HOST=unix:///run/engine/docker.sock", "--entrypoint", "devcontainer", IMAGE,
            "up", "--workspace-folder", folder, "--log-level", "info", *extra]  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=900, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"bench: raw devcontainer up failed\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return seconds


def copy_workspace(pod: Pod, target: str) -> None:
    docker("run", "--rm", "-v", f"{pod.volume('workspaces')}:/workspaces", "--entrypoint", "sh", images.BASE_IMAGE,
           "-c", f"rm -rf {target} && cp -a /workspaces/widgets {target} && rm -rf {target}/.git && "
           # the same work as the pod's first build, but not in the layer cache its build left
           f"sed -i 's|^RUN sleep|RUN echo {target} \\&\\& sleep|' {target}/.devcontainer/Dockerfile")  # fmt: skip


def remove_raw(pod: Pod, folder: str) -> None:
    found = pod.engine("ps", "-aq", "--filter", f"label=devcontainer.local_folder={folder}")
    for container in found.split():
        pod.engine("rm", "-f", container)


def plan_pod(tf, git: GitHTTPServer, coder, coder_url: str, image: str, **variables: str) -> Pod:
    plan = tf.plan(
        {"builder_image": PLANNED_BUILDER, "fallback_image": images.FALLBACK_IMAGE, "external_auth_id": "github",
         "external_auth_host": git.host, **variables},
        {"repository": git.url("widgets"), "cpu": "2", "memory": "4", "disk_size": "10"},
        CODER_AGENT_URL=coder_url, CODER_WORKSPACE_ID=str(uuid.uuid4()),
    )  # fmt: skip
    secret_name = next(c["change"]["after"]["metadata"][0]["name"] for c in plan["resource_changes"]
                       if c["address"] == "kubernetes_secret_v1.agent[0]")  # fmt: skip
    secret = {"main-agent-token": coder.token, "main-agent-init-script": init_script(coder_url),
              "builder-agent-token": coder.add_agent(), "builder-agent-init-script": init_script(coder_url),
              "gh-token": git.token, "ssh-private-key": ""}  # fmt: skip
    return Pod(plan, {secret_name: secret}, {PLANNED_BUILDER: image, PLANNED_ENGINE: images.DIND_IMAGE})


def insecure(pod: Pod, registry: str) -> None:
    """The registry here speaks plain http: the engine is told so (a real cache registry has TLS)."""
    for change in pod.plan["resource_changes"]:
        if change["type"] == "kubernetes_config_map_v1":
            data = change["change"]["after"]["data"]
            data["daemon.json"] = json.dumps({**json.loads(data["daemon.json"]), "insecure-registries": [registry]})


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="dcb-bench-template-", dir="/tmp"))
    root.chmod(0o755)
    gateway = bridge_gateway()
    git = GitHTTPServer(root / "remotes", f"ghp_{uuid.uuid4().hex}", host=gateway).start()
    coder = make_double(host=gateway)
    tf = workdir("kubernetes", root)
    tf.init()
    coder_url = f"http://{gateway}:{coder.port}"
    Remote(root, "widgets").commit(FILES)
    registry = Registry(root / "registry", host=gateway)
    rows: dict[str, list[float]] = {"first": [], "restart": [], "raw fresh": [], "raw existing": [],
                                    "ephemeral first": [], "ephemeral cached": []}  # fmt: skip
    try:
        for run in range(RUNS):
            pod = plan_pod(tf, git, coder, coder_url, IMAGE)
            try:
                rows["first"].append(timed_start(pod, first=True))
                copy_workspace(pod, f"/workspaces/raw{run}")
                rows["raw fresh"].append(raw_cli(pod, f"/workspaces/raw{run}"))
                # a stop and a start: the engine restarts, both devcontainers stopped with it
                pod.stop()
                rows["restart"].append(timed_start(pod, first=False))
                rows["raw existing"].append(raw_cli(pod, f"/workspaces/raw{run}"))
                remove_raw(pod, f"/workspaces/raw{run}")
            finally:
                pod.destroy()
            cache = f"{registry.address}/cache/widgets-{run}"
            pod = plan_pod(tf, git, coder, coder_url, IMAGE, engine_storage="ephemeral", cache_repository=cache)
            insecure(pod, registry.address)
            try:
                rows["ephemeral first"].append(timed_start(pod, first=True))
                pod.stop()  # the engine's emptyDir goes with the pod
                rows["ephemeral cached"].append(timed_start(pod, first=True))
            finally:
                pod.destroy()
            print(f"  run {run + 1}/{RUNS}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in rows.items()), flush=True)
    finally:
        registry.stop()
        git.stop()
        coder.stop()
        shutil.rmtree(root, ignore_errors=True)
    median = {key: statistics.median(values) for key, values in rows.items()}
    print(f"workspace start on the rehearsed pod (template/kubernetes), medians of {RUNS} runs")
    print(
        f"  first start (builder init, image built):   {median['first']:6.2f} s   raw CLI, fresh:    "
        f"{median['raw fresh']:6.2f} s   ratio {median['first'] / median['raw fresh']:.2f}"
    )
    print(
        f"  restart, engine volume kept (reuse):       {median['restart']:6.2f} s   raw CLI, existing: "
        f"{median['raw existing']:6.2f} s   ratio {median['restart'] / median['raw existing']:.2f}"
    )
    print(
        f"  ephemeral engine, registry cache:           {median['ephemeral cached']:6.2f} s   its cold first "
        f"start:  {median['ephemeral first']:6.2f} s   ratio {median['ephemeral cached'] / median['ephemeral first']:.2f}"
    )
    print(
        "  (the builder's runs also wait for the engine, clone or fetch, check the config against the policy, start"
        " Coder's agent and record the state; the raw CLI's do none of that)"
    )


if __name__ == "__main__":
    main()
