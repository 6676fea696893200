"""`make bench`: the builder's `up` of a compose devcontainer against a raw `devcontainer up` of the same
repository, side by side (an app built from a Dockerfile + a database stand-in with a named volume).

Each row is a median of interleaved runs in one process, so machine noise hits both sides alike:
  warm:   a rerun on the running project (the builder sees nothing could change and does not start the
          CLI) vs `devcontainer up` on its running project
  fresh:  the project taken down (`compose down`, volumes kept) before each run, images in the cache:
          the builder's policy check of the project (`compose config` before `compose build` and `up`)
          is in this row
Goal: ratios at most 1.15.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from devcontainer_builder.engine import compose  # noqa: E402
from support import twins  # noqa: E402
from support.builder import docker, remove_containers_under  # noqa: E402
from support.compose_project import forget_projects, project_files  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
GOAL = 1.15


def down(project: str) -> None:
    docker("compose", "--project-name", project, "down", "--timeout", "1", check=False)


def measure(root: Path, name: str, *, fresh: bool) -> tuple[list[float], list[float]]:
    raw_project = f"raw-{name}_devcontainer"  # the CLI's own name: the folder's name and _devcontainer
    try:
        if not fresh:
            return twins.measure(root, name, project_files(), RUNS)
        return twins.measure(
            root,
            name,
            project_files(),
            RUNS,
            before_ours=lambda folder: down(compose.project_name(str(folder))),
            before_raw=lambda folder: down(raw_project),
        )
    finally:
        down(raw_project)
        docker("volume", "rm", "-f", f"{raw_project}_kvdata", check=False)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="dcb-bench-compose-", dir="/tmp"))
    root.chmod(0o755)
    try:
        rows = [("warm (running project)", measure(root, "warm", fresh=False))]
        rows.append(("fresh (project down)", measure(root, "fresh", fresh=True)))
        title = f"compose devcontainer: builder up vs raw devcontainer up (median of {RUNS} interleaved runs each)"
        ok = twins.report(title, rows, GOAL, width=24)
        sys.exit(0 if ok else 1)
    finally:
        remove_containers_under(str(root))
        forget_projects(root)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
