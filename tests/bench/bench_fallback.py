"""`make bench`: how fast a failed build becomes a running fallback container.

For a config that fails at once (invalid JSON) and one whose postCreateCommand fails (so the failed
container must be removed first), the time from the builder's build_failed event to its
fallback_running event (events.jsonl), against a raw `devcontainer up` of the fallback image on a fresh
container. Interleaved, median of 5 each. Goal: ratio <= 1.3.
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
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from support.builder import BUILDER, CLI_BIN, base_env, remove_containers_under, remove_labelled  # noqa: E402
from support.images import BASE_IMAGE, FALLBACK_IMAGE  # noqa: E402
from support.repos import Remote  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
GOAL = 1.3
FALLBACK = FALLBACK_IMAGE
CASES = {
    "invalid config": {".devcontainer/devcontainer.json": '{"image": '},
    "failing postCreate": {
        ".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE, "postCreateCommand": "exit 3"})
    },
}


def stamp(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def failure_to_fallback(state_dir: Path) -> float:
    events = [json.loads(line) for line in (state_dir / "events.jsonl").read_text().splitlines()]
    failed = [e for e in events if e["kind"] == "build_failed"][-1]
    running = [e for e in events if e["kind"] == "fallback_running"][-1]
    return stamp(running["time"]) - stamp(failed["time"])


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="dcb-bench-fallback-", dir="/tmp"))
    root.chmod(0o755)
    raw_folder = root / "workspaces" / "raw"
    raw_folder.mkdir(parents=True)
    raw_config = root / "raw-config" / "devcontainer.json"
    raw_config.parent.mkdir()
    raw_config.write_text(json.dumps({"image": FALLBACK}))
    raw = [f"{CLI_BIN}/devcontainer", "up", "--log-format", "json", "--workspace-folder", str(raw_folder),
           "--override-config", str(raw_config)]  # fmt: skip
    try:
        rows = []
        for name, files in CASES.items():
            remote = Remote(root, name.replace(" ", "-"))
            remote.commit({"README.md": "bench\n", **files})
            folder = root / "workspaces" / name.replace(" ", "-")
            state_dir = root / "state" / name.replace(" ", "-")
            env = base_env()
            env.update(
                DEVCONTAINER_REPOSITORY=remote.url,
                DEVCONTAINER_WORKSPACE_FOLDER=str(folder),
                DEVCONTAINER_STATE_DIR=str(state_dir),
            )
            ours, theirs = [], []
            for _ in range(RUNS):
                remove_labelled(f"devcontainer-builder.workspace={folder}")
                result = subprocess.run(
                    [BUILDER, "up"], env=env, capture_output=True, text=True, timeout=600, check=False
                )
                if result.returncode != 0:
                    raise SystemExit(result.stdout + result.stderr)
                ours.append(failure_to_fallback(state_dir))
                remove_labelled(f"devcontainer.local_folder={raw_folder}")
                started = time.perf_counter()
                subprocess.run(raw, env=env, capture_output=True, timeout=600, check=True)
                theirs.append(time.perf_counter() - started)
            rows.append((name, statistics.median(ours), statistics.median(theirs)))
        print(f"failure -> running fallback vs raw `devcontainer up` of the fallback image (median of {RUNS})")
        print(f"{'failure':<22}{'fallback':>10}{'raw up':>10}{'ratio':>8}  goal")
        ok = True
        for name, mine, base in rows:
            ratio = mine / base
            ok &= ratio <= GOAL
            print(
                f"{name:<22}{mine:>9.3f}s{base:>9.3f}s{ratio:>8.3f}  <= {GOAL} {'met' if ratio <= GOAL else 'MISSED'}"
            )
        sys.exit(0 if ok else 1)
    finally:
        remove_containers_under(str(root))
        remove_labelled(f"devcontainer.local_folder={raw_folder}")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
