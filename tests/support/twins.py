"""Twin clones of one repository for the benchmarks: the builder's `up` on one, a raw `devcontainer up` on
the other, timed interleaved in one process so that machine noise hits both sides alike."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from support.builder import BUILDER, CLI_BIN, base_env
from support.engines import DOCKER, EngineUnderTest
from support.repos import Remote, git


def timed(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False, cwd=cwd)
    elapsed = time.perf_counter() - started
    if result.returncode != 0 or '"outcome":"error"' in result.stdout:
        raise SystemExit(f"{argv[0]} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def measure(
    root: Path,
    name: str,
    files: dict[str, str],
    runs: int,
    *,
    before_ours: Callable[[Path], None] | None = None,
    before_raw: Callable[[Path], None] | None = None,
    engine: EngineUnderTest = DOCKER,
    path: str = "",
) -> tuple[list[float], list[float]]:
    """(the builder's times, the raw CLI's) over `runs` interleaved runs on twin clones of a repository of
    `files`, after one warm-up of each; `before_*` (given the side's workspace folder) run before each
    timed run, to take the last run's containers away. On Podman both sides get `podman` (the raw CLI as
    --docker-path); a rootless engine runs both as its user, with the builder and CLI found on `path`."""
    remote = Remote(root, name)
    remote.commit(files)
    ours_folder = root / "workspaces" / f"ours-{name}"
    raw_folder = root / "workspaces" / f"raw-{name}"
    engine.own(root / "workspaces", root / "state")
    git("clone", "-q", remote.url, str(raw_folder))
    if engine.user:
        subprocess.run(["chown", "-R", engine.user, str(raw_folder)], check=True, timeout=60)
    env = engine.process_env(base_env())
    if path:
        env["PATH"] = f"{path}:{env['PATH']}"
    env.update(
        DEVCONTAINER_REPOSITORY=remote.url,
        DEVCONTAINER_WORKSPACE_FOLDER=str(ours_folder),
        DEVCONTAINER_STATE_DIR=str(root / "state" / name),
    )
    cli = "devcontainer" if path else f"{CLI_BIN}/devcontainer"
    ours = engine.as_user(["devcontainer-builder" if path else BUILDER, "up"])
    raw = engine.as_user([cli, "up", "--log-format", "json", "--workspace-folder", str(raw_folder)])
    if engine.podman:
        env["DEVCONTAINER_DOCKER_PATH"] = engine.cli
        raw += ["--docker-path", engine.cli]
    timed(ours, env, root)  # warm up both sides: clone, images, caches
    timed(raw, env, root)
    mine, theirs = [], []
    for _ in range(runs):
        if before_ours:
            before_ours(ours_folder)
        mine.append(timed(ours, env, root))
        if before_raw:
            before_raw(raw_folder)
        theirs.append(timed(raw, env, root))
    return mine, theirs


def report(title: str, rows: list[tuple[str, tuple[list[float], list[float]]]], goal: float, width: int = 22) -> bool:
    """Print each row's medians and their ratio against the goal; True when every ratio meets it."""
    print(title)
    print(f"{'case':<{width}}{'builder':>10}{'raw CLI':>10}{'ratio':>8}  goal")
    ok = True
    for name, (mine, theirs) in rows:
        ratio = statistics.median(mine) / statistics.median(theirs)
        ok &= ratio <= goal
        verdict = "met" if ratio <= goal else "MISSED"
        print(
            f"{name:<{width}}{statistics.median(mine):>9.3f}s{statistics.median(theirs):>9.3f}s{ratio:>8.3f}"
            f"  <= {goal} {verdict}"
        )
    return ok
