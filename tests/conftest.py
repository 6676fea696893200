from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import engines, shared, user_install
from support.builder import Workspace, base_env, remove_containers_under
from support.coder import CoderDouble, bridge_gateway, make_double
from support.engines import EngineUnderTest
from support.githttp import GitHTTPServer
from support.repos import Remote
from support.services import Registry, SSHServer

ROOT = os.geteuid() == 0
NEEDS_ROOT = "needs root (make test runs as root on a fresh machine, as CI does)"


CLI_BUNDLE = Path(__file__).resolve().parents[1] / "builder/node_modules/@devcontainers/cli"
# `make test` sets it: there every test runs, and a missing tool is a failure, never a skip
FULL_TIER = os.environ.get("DCB_FULL_TIER") == "1"
RUN_ROOT = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    # the controller of an xdist run (or a serial run) makes the run's folder; workers get it from it
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        run_root = Path(tempfile.mkdtemp(prefix="dcb-run-", dir="/tmp"))
        run_root.chmod(0o755)  # the rootless user's install lives here
        config.stash[RUN_ROOT] = run_root
    else:
        config.stash[RUN_ROOT] = Path(workerinput["dcb_run_root"])


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # an xdist WorkerController
    node.workerinput["dcb_run_root"] = str(node.config.stash[RUN_ROOT])


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and RUN_ROOT in config.stash:
        shutil.rmtree(config.stash[RUN_ROOT], ignore_errors=True)


@pytest.fixture(scope="session")
def run_root(pytestconfig: pytest.Config) -> Path:
    """The folder every worker of this run shares (support/shared.py)."""
    return pytestconfig.stash[RUN_ROOT]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log) -> object | None:  # log: an xdist Producer
    if config.getvalue("dist") != "loadgroup":
        return None
    return shared.make_scheduler(config, log, config.stash[RUN_ROOT])


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shared.arrange(items, config.stash[RUN_ROOT] if hasattr(config, "workerinput") else None)
    for item in items:
        if not ROOT and item.get_closest_marker("needs_root"):
            item.add_marker(pytest.mark.skip(reason=NEEDS_ROOT))
        # the quick tier runs where Node is absent; the full tier always runs these (a missing CLI fails)
        if item.get_closest_marker("needs_cli") and not CLI_BUNDLE.is_dir() and not FULL_TIER:
            item.add_marker(
                pytest.mark.skip(reason="the pinned devcontainer CLI is not installed (make test installs it)")
            )


def require_root() -> None:
    if not ROOT:
        pytest.skip(NEEDS_ROOT)


@pytest.fixture(scope="session")
def sandbox_root() -> Iterator[Path]:
    # Not pytest's tmp_path: that is mode 0700 under /tmp/pytest-of-root, and the builder runs git as
    # the workspace uid (1000), which must be able to reach the folders it clones into.
    root = Path(tempfile.mkdtemp(prefix="dcb-tests-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    remove_containers_under(str(root))
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def sandbox(sandbox_root: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    path = sandbox_root / f"{request.node.name[:60].replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:6]}"
    path.mkdir()
    path.chmod(0o755)
    yield path
    remove_containers_under(str(path))


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Docker-backed tests need the engine; it is provisioned in CI, so a missing one fails loudly."""
    result = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        pytest.fail(f"the Docker engine is not reachable (run tests/env/provision.sh test): {result.stderr}")


@pytest.fixture
def make_remote(sandbox: Path) -> Callable[..., Remote]:
    def make(name: str = "project", default_branch: str = "main") -> Remote:
        return Remote(sandbox, name, default_branch)

    return make


@pytest.fixture
def remote(make_remote: Callable[..., Remote]) -> Remote:
    return make_remote()


@pytest.fixture(scope="session")
def rootless_path(run_root: Path) -> str:
    """The builder and the CLI installed by the rootless engine's user (once a run, for every worker)."""
    require_root()
    home = run_root / "rootless-home"
    return shared.once(run_root, "rootless-install", lambda: user_install.install(engines.ROOTLESS_USER, home), 900)


@pytest.fixture
def engine(request: pytest.FixtureRequest, sandbox: Path, run_root: Path) -> Iterator[EngineUnderTest]:
    """Docker, unless the test is parametrised over engines (`@on_every_engine`)."""
    chosen = engines.make(getattr(request, "param", "docker"))
    if chosen.user:
        require_root()
    with shared.locked(run_root / f"load-images-{chosen.name}.lock", 900):  # one copy into a store at a time
        chosen.load_images()
    yield chosen
    chosen.remove_containers_under(str(sandbox))


@pytest.fixture
def make_workspace(sandbox: Path, engine: EngineUnderTest, request: pytest.FixtureRequest) -> Callable[..., Workspace]:
    path = request.getfixturevalue("rootless_path") if engine.user else ""

    def make(repository: str, name: str = "project", **env: str) -> Workspace:
        base = base_env()
        base["DEVCONTAINER_REPOSITORY"] = repository
        base.update(env)
        workspace = Workspace(sandbox, name, base, engine, path)
        engine.own(workspace.folder.parent, workspace.state_dir.parent)
        return workspace

    return make


@pytest.fixture
def git_http(sandbox: Path) -> Iterator[GitHTTPServer]:
    token = f"ghp_{uuid.uuid4().hex}{uuid.uuid4().hex[:4]}"
    server = GitHTTPServer(sandbox / "remotes", token).start()
    yield server
    server.stop()


@pytest.fixture
def coder() -> Iterator[CoderDouble]:
    """The strict Coder double on loopback (tests whose agent calls in from a container make their own)."""
    server = make_double()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def registry(sandbox_root: Path) -> Iterator[Registry]:
    reg = Registry(sandbox_root / "registry")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def sshd(sandbox_root: Path) -> Iterator[SSHServer]:
    require_root()  # sshd logs in as root
    server = SSHServer(sandbox_root / "sshd")
    yield server
    server.stop()


@pytest.fixture
def tiny_disk(sandbox: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a disk that fills up."""
    require_root()
    mountpoint = sandbox / "tiny"
    mountpoint.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mountpoint)], check=True, timeout=30
    )
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=False, timeout=30)


# another tag lets two checkouts on one machine (git worktrees) test their own images side by side
IMAGE = os.environ.get("DCB_TEST_IMAGE", "devcontainer-builder:dev")


@pytest.fixture(scope="session")
def image(docker_engine: None, run_root: Path) -> str:
    """The builder image, built by the same `make image` the README and moon use (cached layers make
    a rebuild of an unchanged tree take seconds), once a run: concurrent `make image`s would provision
    and rewrite builder/.build-ca at the same time."""

    def build() -> str:
        result = subprocess.run(["make", "-s", "image", f"IMAGE={IMAGE}"], cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
                                timeout=1800, check=False)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        return IMAGE

    return shared.once(run_root, "image", build, 1900)


@pytest.fixture
def services(sandbox: Path) -> Iterator[tuple[GitHTTPServer, CoderDouble, str]]:
    """A private repository over HTTP and Coder where containers reach them - the host's bridge - and
    that address."""
    gateway = bridge_gateway()
    git = GitHTTPServer(sandbox / "remotes", f"ghp_{uuid.uuid4().hex}", host=gateway).start()
    coder = make_double(host=gateway)
    yield git, coder, gateway
    git.stop()
    coder.stop()
