"""`make bench`: the builder's `up` against a raw `devcontainer up` of the same repository, side by side.

Each row is a median of interleaved runs in one process, so machine noise hits both sides alike:
  existing container:  a rerun on a running, up-to-date container (the builder sees nothing could
                       change and does not start the CLI) vs `devcontainer up`
  existing + attach:   the same with a postAttachCommand, so the builder must run the CLI: this row is
                       the builder's own overhead (python, git fetch and status, checks, state)
  fresh container:     the container removed before each run
Goal: ratios at most 1.15.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from support import twins  # noqa: E402
from support.builder import remove_containers_under, remove_labelled  # noqa: E402
from support.images import BASE_IMAGE  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
GOAL = 1.15
CONFIG = {
    "image": BASE_IMAGE,
    "postCreateCommand": "echo created > /tmp/created",
    "postStartCommand": "echo started",
}
ATTACH_CONFIG = dict(CONFIG, postAttachCommand="echo attached")


def measure(root: Path, name: str, config: dict, *, fresh: bool) -> tuple[list[float], list[float]]:
    files = {".devcontainer/devcontainer.json": json.dumps(config), "README.md": "bench\n"}
    if not fresh:
        return twins.measure(root, name, files, RUNS)
    return twins.measure(
        root,
        name,
        files,
        RUNS,
        before_ours=lambda folder: remove_labelled(f"devcontainer-builder.workspace={folder}"),
        before_raw=lambda folder: remove_labelled(f"devcontainer.local_folder={folder}"),
    )


def hashing(root: Path) -> None:
    """The config hash reads every file of the config's folder (no silent cut-off at 2,000 files): what
    that costs for folders far larger than real ones (a handful of files)."""
    from devcontainer_builder.workspace import fingerprint

    print("\nconfig hash over every file of .devcontainer (median of 5, 1 KiB files)")
    for count in (10, 2_000, 10_000):
        folder = root / f"hash-{count}" / ".devcontainer"
        folder.mkdir(parents=True)
        (folder / "devcontainer.json").write_text('{"image": "x"}')
        for index in range(count):
            (folder / f"file-{index:05d}").write_bytes(os.urandom(1024))
        times = []
        for _ in range(5):
            started = time.perf_counter()
            fingerprint.config_hash(str(folder.parent), str(folder / "devcontainer.json"), {"image": "x"})
            times.append(time.perf_counter() - started)
        print(f"  {count:>6} files: {statistics.median(times) * 1000:8.1f} ms")


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="dcb-bench-", dir="/tmp"))
    root.chmod(0o755)
    try:
        rows = [
            ("existing container", measure(root, "existing", CONFIG, fresh=False)),
            ("existing + attach", measure(root, "attach", ATTACH_CONFIG, fresh=False)),
            ("fresh container", measure(root, "fresh", CONFIG, fresh=True)),
        ]
        title = f"devcontainer-builder up vs raw devcontainer up (median of {RUNS} interleaved runs each)"
        ok = twins.report(title, rows, GOAL)
        hashing(root)
        sys.exit(0 if ok else 1)
    finally:
        remove_containers_under(str(root))
        for name in ("existing", "attach", "fresh"):
            raw_folder = root / "workspaces" / f"raw-{name}"
            remove_labelled(f"devcontainer.local_folder={raw_folder}")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
