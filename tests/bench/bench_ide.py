"""`make bench`: the editor. From Coder's agent started in the running devcontainer (`agent_started`) to
code-server healthy (`ide_started`, which `up` records once /healthz answers), from events.jsonl:

- cold: a new workspace, code-server downloaded from a local mirror, verified and unpacked into its volume;
- warm: a rebuild of that workspace (a new container, code-server from the volume). Goal: <= 3 s.

And the agent is not delayed by the editor: the time from `build_started` to `agent_started` with
DEVCONTAINER_IDE=code-server against twin workspaces without it, interleaved. Goal: ratio <= 1.05.
Median of BENCH_RUNS (default 3) each.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from support.builder import BUILDER, base_env, remove_containers_under, remove_labelled  # noqa: E402
from support.coder import bridge_gateway, init_script, make_double  # noqa: E402
from support.ide import FileServer, code_server_tarball, ide_volume, remove_volumes  # noqa: E402
from support.images import FALLBACK_IMAGE  # noqa: E402
from support.repos import Remote  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
WARM_GOAL = 3.0
AGENT_GOAL = 1.05


def stamp(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def between(state_dir: Path, first: str, last: str) -> float:
    """Seconds from the last run's `first` event to its `last` event."""
    events = [json.loads(line) for line in (state_dir / "events.jsonl").read_text().splitlines()]
    start = [e for e in events if e["kind"] == "build_started"][-1]
    run = events[events.index(start) :]
    a = start if first == "build_started" else [e for e in run if e["kind"] == first][-1]
    b = [e for e in run if e["kind"] == last][-1]
    return stamp(b["time"]) - stamp(a["time"])


def up(env: dict[str, str], **extra: str) -> None:
    result = subprocess.run(
        [BUILDER, "up"], env={**env, **extra}, capture_output=True, text=True, timeout=900, check=False
    )
    if result.returncode != 0:
        raise SystemExit(result.stdout + result.stderr)


def main() -> None:
    tarball = code_server_tarball()
    root = Path(tempfile.mkdtemp(prefix="dcb-bench-ide-", dir="/tmp"))
    root.chmod(0o755)
    (root / "mirror").mkdir()
    (root / "mirror" / tarball.path.name).symlink_to(tarball.path)
    mirror = FileServer(root / "mirror")
    coder = make_double(host=bridge_gateway())
    url = f"http://{bridge_gateway()}:{coder.port}"
    remote = Remote(root, "project")
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": FALLBACK_IMAGE, "remoteUser": "coder"})})
    volumes: list[str] = []

    def workspace(name: str, ide: bool) -> tuple[dict[str, str], Path]:
        env = base_env()
        env.update(
            DEVCONTAINER_REPOSITORY=remote.url,
            DEVCONTAINER_WORKSPACE_FOLDER=str(root / "workspaces" / name),
            DEVCONTAINER_STATE_DIR=str(root / "state" / name),
            CODER_AGENT_URL=url,
            CODER_AGENT_TOKEN=coder.token,
            CODER_INIT_SCRIPT=init_script(url),
        )
        if ide:
            env.update(
                DEVCONTAINER_IDE="code-server",
                DEVCONTAINER_IDE_SOURCE=f"{mirror.base}/{tarball.path.name}",
                DEVCONTAINER_IDE_SHA256=tarball.sha256,
                DEVCONTAINER_EXTENSIONS_GALLERY="none",
            )
        return env, root / "state" / name

    try:
        cold, warm, with_ide, without = [], [], [], []
        for run in range(RUNS):
            env, state = workspace(f"ide-{run}", ide=True)
            up(env)
            cold.append(between(state, "agent_started", "ide_started"))
            with_ide.append(between(state, "build_started", "agent_started"))
            volumes.append(ide_volume(root / "workspaces" / f"ide-{run}"))
            up(env, DEVCONTAINER_REBUILD="true")
            warm.append(between(state, "agent_started", "ide_started"))
            plain_env, plain_state = workspace(f"plain-{run}", ide=False)
            up(plain_env)
            without.append(between(plain_state, "build_started", "agent_started"))
        ratio = statistics.median(with_ide) / statistics.median(without)
        print(f"the editor (median of {RUNS}): agent started -> code-server healthy")
        print(f"  cold (download from a local mirror, verify, unpack): {statistics.median(cold):.2f} s")
        warm_ok = statistics.median(warm) <= WARM_GOAL
        print(
            f"  warm (a rebuild: from the workspace's volume):      {statistics.median(warm):.2f} s"
            f"  goal <= {WARM_GOAL} s {'met' if warm_ok else 'MISSED'}"
        )
        print(
            f"  the agent's start with the editor / without: {statistics.median(with_ide):.2f} s / "
            f"{statistics.median(without):.2f} s = {ratio:.3f}  goal <= {AGENT_GOAL} {'met' if ratio <= AGENT_GOAL else 'MISSED'}"
        )
        sys.exit(0 if warm_ok and ratio <= AGENT_GOAL else 1)
    finally:
        mirror.stop()
        coder.stop()
        remove_containers_under(str(root))
        remove_labelled(f"devcontainer-builder.workspace={root}")
        remove_volumes(*volumes)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
