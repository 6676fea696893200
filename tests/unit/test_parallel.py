"""support/shared.py: the scheduling of a parallel run (the kubernetes-marked tests first, all in one worker, in
their order) checked on a small suite with the suite's own conftest.py, run by real pytest-xdist workers; and the
lock the workers share work by."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import shared

TESTS = Path(__file__).resolve().parents[1]

# each test records which worker ran it; the kubernetes ones also record their order
MODULE = """
import os
import pytest

def record(name):
    with open(os.environ["RECORD"], "a") as handle:
        handle.write(f"{{os.environ['PYTEST_XDIST_WORKER']}} {{name}}\\n")

{tests}
"""


def suite(folder: Path) -> None:
    (folder / "conftest.py").write_text((TESTS / "conftest.py").read_text())  # the suite's own hooks
    (folder / "pytest.ini").write_text("[pytest]\nmarkers =\n    kubernetes: the cluster\n")
    plain = "\n".join(f"def test_plain_{i}():\n    record('plain-{i}')\n" for i in range(6))
    for name, k8s in (("a_other", False), ("k8s_cluster", True), ("k8s_workspace", True), ("z_other", False)):
        mark = "pytestmark = pytest.mark.kubernetes\n" if k8s else ""
        tests = "\n".join(f"def test_{name}_{i}():\n    record('{name}-{i}')\n" for i in range(3))
        (folder / f"test_{name}.py").write_text(MODULE.format(tests=mark + tests + ("" if k8s else plain)))


def test_the_kubernetes_tests_run_first_in_one_worker_in_their_collected_order(tmp_path: Path) -> None:
    suite(tmp_path)
    record = tmp_path / "record.txt"
    env = {**os.environ, "RECORD": str(record), "PYTHONPATH": str(TESTS)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "3", "--dist", "loadgroup", "-p", "no:cacheprovider", "-q", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line.split() for line in record.read_text().splitlines()]
    assert len(lines) == 4 * 3 + 2 * 6
    k8s = [(worker, name) for worker, name in lines if name.startswith("k8s_")]
    assert len({worker for worker, _ in k8s}) == 1, f"one worker runs the cluster's tests: {k8s}"
    assert [name for _, name in k8s] == [f"{m}-{i}" for m in ("k8s_cluster", "k8s_workspace") for i in range(3)]
    first = [name for worker, name in lines if worker == k8s[0][0]][: len(k8s)]
    assert first == [name for _, name in k8s], "that worker starts with them"
    others = {worker for worker, name in lines if not name.startswith("k8s_")}
    assert len(others) >= 2, f"the other tests are spread over the workers: {lines}"


def test_a_serial_run_also_starts_with_the_kubernetes_tests(tmp_path: Path) -> None:
    suite(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(TESTS)}, cwd=tmp_path, timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    ids = [line for line in result.stdout.splitlines() if "::" in line]
    assert [i.split("::")[0] for i in ids[:6]] == ["test_k8s_cluster.py"] * 3 + ["test_k8s_workspace.py"] * 3
    assert ids[6].startswith("test_a_other.py::"), "the rest keep their order"


def test_once_makes_the_value_once_and_hands_it_to_the_others(tmp_path: Path) -> None:
    calls = []

    def make() -> str:
        calls.append(1)
        return "devcontainer-builder:dev"

    assert shared.once(tmp_path, "image", make, 10) == "devcontainer-builder:dev"
    assert shared.once(tmp_path, "image", make, 10) == "devcontainer-builder:dev"
    assert calls == [1]


def test_a_failed_make_is_tried_again_by_the_next(tmp_path: Path) -> None:
    def fail() -> str:
        raise AssertionError("make image failed")

    with pytest.raises(AssertionError, match="make image failed"):
        shared.once(tmp_path, "image", fail, 10)
    assert shared.once(tmp_path, "image", lambda: "built", 10) == "built"


def test_a_lock_held_elsewhere_is_waited_for_within_its_bound(tmp_path: Path) -> None:
    # another process holds it, as another worker would
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import fcntl, sys
            handle = open({str(tmp_path / "x.lock")!r}, "a")
            fcntl.flock(handle, fcntl.LOCK_EX)
            print("locked", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(AssertionError, match=r"stayed locked for 0\.5 s"), shared.locked(tmp_path / "x.lock", 0.5):
            pass
    finally:
        holder.communicate(timeout=30)
    with shared.locked(tmp_path / "x.lock", 5):
        pass  # free again once its holder is gone
