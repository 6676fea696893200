"""Run the Coder double in a process of its own (for benchmarks and the DinD rehearsal):

    python -m support.coder_server [--log-cap BYTES] [--black-hole] [--port N]

prints one JSON line {"url": ..., "token": ...} and serves until terminated.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from support.coder import CoderDouble


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log-cap", type=int, default=1_048_576)
    parser.add_argument("--black-hole", action="store_true")
    args = parser.parse_args()
    double = CoderDouble(args.log_cap)
    double.black_hole = args.black_hole
    double.start()
    print(json.dumps({"url": double.url, "token": double.token}), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    double.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
