"""`make bench`: the builder's `up` against a raw `devcontainer up --docker-path podman` of the same
repository, on rootful Podman and on rootless Podman (both run as the test's ordinary user there).

Each row is a median of interleaved runs in one process, so machine noise hits both sides alike:
  existing container:  a rerun on a running, up-to-date container (the builder does not start the CLI)
  fresh container:     the container removed before each run
Goal: ratios at most 1.15, as on Docker (bench_up.py).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from support import engines, twins, user_install  # noqa: E402
from support.engines import EngineUnderTest  # noqa: E402
from support.images import BASE_IMAGE  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
GOAL = 1.15
CONFIG = {"image": BASE_IMAGE, "postCreateCommand": "echo created > /tmp/created", "postStartCommand": "echo started"}
FILES = {".devcontainer/devcontainer.json": json.dumps(CONFIG), "README.md": "bench\n"}


def remover(engine: EngineUnderTest, label: str):
    def remove(folder: Path) -> None:
        doomed = engine.run("ps", "-aq", "--filter", f"label={label}={folder}", check=False).split()
        if doomed:
            engine.run("rm", "-f", *doomed, check=False)

    return remove


def rows_for(engine: EngineUnderTest, root: Path, path: str) -> list[tuple[str, tuple[list[float], list[float]]]]:
    engine.load_images()
    existing = twins.measure(root, f"{engine.name}-existing", FILES, RUNS, engine=engine, path=path)
    fresh = twins.measure(
        root, f"{engine.name}-fresh", FILES, RUNS, engine=engine, path=path,
        before_ours=remover(engine, "devcontainer-builder.workspace"),
        before_raw=remover(engine, "devcontainer.local_folder"),
    )  # fmt: skip
    return [(f"{engine.name}: existing", existing), (f"{engine.name}: fresh", fresh)]


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="dcb-bench-podman-", dir="/tmp"))
    root.chmod(0o755)
    rootful, rootless = engines.make("podman"), engines.make("rootless")
    try:
        path = user_install.install(engines.ROOTLESS_USER, root / "rootless-home")
        rows = rows_for(rootful, root, "") + rows_for(rootless, root, path)
        title = (
            f"devcontainer-builder up vs raw devcontainer up --docker-path podman (median of {RUNS} interleaved runs)"
        )
        ok = twins.report(title, rows, GOAL)
        sys.exit(0 if ok else 1)
    finally:
        for engine in (rootful, rootless):  # the builder's containers and the raw CLI's both carry this label
            engine.remove_containers_under(str(root), "devcontainer.local_folder")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
