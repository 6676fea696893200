"""`make bench`: the Coder log sender.

1. (three times, medians reported) 200,000 lines of realistic build output through the builder's log pipeline (clean, redact, sinks)
   and the Coder sink into the Coder double, which runs in its own process so the RSS measured is the
   builder's alone. The double's 1 MiB cap is lifted for this run, or Coder's cap would end the stream
   after ~10,000 lines: this measures the sender, not the cap. Reports delivered lines/s, peak RSS
   growth and the p99 delay from a line produced to the same line accepted.
2. A real `up` with the API black-holed vs reachable, interleaved, median of 5: wall-time ratio.
Goals: >= 50,000 lines/s, RSS growth <= 30 MB, p99 <= 1.5 s, ratio <= 1.05.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from devcontainer_builder.coder.logs import CoderLogSink  # noqa: E402
from devcontainer_builder.log import Log, Redactor  # noqa: E402
from support.builder import BUILDER, base_env, remove_containers_under, remove_labelled  # noqa: E402
from support.images import BASE_IMAGE  # noqa: E402
from support.repos import Remote  # noqa: E402

LINES = 200_000
RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def start_double(*flags: str) -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "support.coder_server", *flags],
        cwd=HERE.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    info = json.loads(proc.stdout.readline())
    return proc, info["url"], info["token"]


def rss_kb() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def realistic(index: int) -> str:
    kinds = (
        f"#{index % 40} [{index % 7}/7] RUN apt-get install -y --no-install-recommends libfoo{index % 300}",
        f"Get:{index % 900} http://deb.debian.org/debian trixie/main amd64 libbar{index % 50} 1.{index % 9}.3-1 [{index % 997} kB]",
        f"\x1b[32mnpm\x1b[0m \x1b[90mhttp fetch GET 200 https://registry.npmjs.org/pkg-{index % 500} {index % 90}ms (cache miss)",
        f"Setting up libbaz{index % 70}:amd64 (2.{index % 13}.0-3) ...",
        f"  Compiling crate_{index % 120} v0.{index % 30}.1",
        "warning: " + "x" * (index % 1500),
    )
    return kinds[index % len(kinds)]


def stream_benchmark() -> dict[str, float]:
    proc, url, token = start_double("--log-cap", str(1 << 40))
    try:
        log = Log(Redactor(["ghp_0123456789abcdefghijklmnopqrstuvwxyz", token]))
        sink = CoderLogSink(
            url, token, workspace="/workspaces/bench", full_log="/dev/null",
            notify=lambda level, text: None, total_cap=1 << 40, record_latency=True,
        )  # fmt: skip
        log.add_sink(sink)
        texts = [realistic(index) for index in range(LINES)]
        time.sleep(0.5)  # the sender thread has imported requests
        baseline = rss_kb()
        peak = [baseline]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], rss_kb())
                time.sleep(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        for text in texts:
            log.info(text)
        produced = time.monotonic() - started
        sink.grace = 60
        log.remove_sink(sink)
        delivered_at = time.monotonic() - started
        stop.set()
        sampler.join()
        delays = sorted(accepted - made for made, accepted in sink.stats.accepted_at)
        return {
            "produced_per_s": LINES / produced,
            "delivered": sink.stats.sent_lines,
            "dropped": sink.stats.dropped_lines,
            "delivered_per_s": sink.stats.sent_lines / delivered_at,
            "rss_growth_mb": (peak[0] - baseline) / 1024,
            "p99_s": delays[int(len(delays) * 0.99)] if delays else float("nan"),
            "p50_s": delays[len(delays) // 2] if delays else float("nan"),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def build_benchmark() -> tuple[float, float]:
    root = Path(tempfile.mkdtemp(prefix="dcb-bench-logs-", dir="/tmp"))
    root.chmod(0o755)
    reachable, url_ok, token_ok = start_double()
    black, url_black, token_black = start_double("--black-hole")
    try:
        remote = Remote(root, "logs")
        remote.commit(
            {
                ".devcontainer/devcontainer.json": json.dumps(
                    {
                        "image": BASE_IMAGE,
                        "postCreateCommand": "for i in $(seq 200); do echo step $i; done; sleep 2",
                    }
                )
            }
        )
        folder = root / "workspaces" / "logs"
        times: dict[str, list[float]] = {"reachable": [], "black-holed": []}
        for _ in range(RUNS):
            for name, url, token in (("reachable", url_ok, token_ok), ("black-holed", url_black, token_black)):
                remove_labelled(f"devcontainer-builder.workspace={folder}")
                env = base_env()
                env.update(
                    DEVCONTAINER_REPOSITORY=remote.url,
                    DEVCONTAINER_WORKSPACE_FOLDER=str(folder),
                    DEVCONTAINER_STATE_DIR=str(root / "state"),
                    CODER_AGENT_URL=url,
                    CODER_AGENT_TOKEN=token,
                )
                started = time.perf_counter()
                result = subprocess.run(
                    [BUILDER, "up"], env=env, capture_output=True, text=True, timeout=600, check=False
                )
                times[name].append(time.perf_counter() - started)
                if result.returncode != 0:
                    raise SystemExit(result.stdout + result.stderr)
        return statistics.median(times["reachable"]), statistics.median(times["black-holed"])
    finally:
        for proc in (reachable, black):
            proc.terminate()
            proc.wait(timeout=10)
        remove_containers_under(str(root))
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    runs = [stream_benchmark() for _ in range(3)]
    stream = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    stream["rss_growth_mb"] = max(run["rss_growth_mb"] for run in runs)  # the worst run: later runs reuse memory
    reachable, black_holed = build_benchmark()
    ratio = black_holed / reachable
    goals = [
        ("delivered lines/s", stream["delivered_per_s"], ">=", 50_000),
        ("peak RSS growth MB", stream["rss_growth_mb"], "<=", 30),
        ("p99 delay s", stream["p99_s"], "<=", 1.5),
        ("black-holed/reachable build", ratio, "<=", 1.05),
    ]
    print(
        f"Coder log sender, median of 3 runs of {LINES:,} lines: produced at {stream['produced_per_s']:,.0f} lines/s, "
        f"{stream['delivered']:,.0f} delivered, {stream['dropped']:,.0f} dropped (the producer outruns the sender "
        f"and the bounded queue drops the excess), p50 delay {stream['p50_s']:.3f} s"
    )
    print(f"real build: reachable {reachable:.2f} s, black-holed {black_holed:.2f} s (median of {RUNS} each)")
    ok = True
    for name, value, op, goal in goals:
        met = value >= goal if op == ">=" else value <= goal
        ok &= met
        print(f"{name:<30}{value:>12,.3f}  goal {op} {goal}  {'met' if met else 'MISSED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
