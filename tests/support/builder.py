"""Running the real `devcontainer-builder` CLI the way a template does, and looking at what it did."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from support.engines import DOCKER, EngineUnderTest
from support.images import BASE_IMAGE, FALLBACK_IMAGE

ROOT = Path(__file__).resolve().parents[2]
BUILDER = str(ROOT / ".venv" / "bin" / "devcontainer-builder")
CLI_BIN = str(ROOT / "builder" / "node_modules" / ".bin")
LABEL_WORKSPACE = "devcontainer-builder.workspace"


def base_env() -> dict[str, str]:
    """The environment a test gives the builder: PATH with the pinned CLI, nothing from the caller's
    DEVCONTAINER_* or tokens, so a developer's shell cannot change a test's outcome."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DEVCONTAINER_", "CODER_", "GIT_")) and k not in ("GH_TOKEN", "GITHUB_TOKEN")
    }
    env["PATH"] = f"{CLI_BIN}:{ROOT / '.venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["DEVCONTAINER_FALLBACK_IMAGE"] = FALLBACK_IMAGE  # the stand-in: no registry here
    return env


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    argv_samples: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class ArgvSampler:
    """Reads every process's command line every few milliseconds while a run goes on."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.samples: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        raw = handle.read()
                except OSError:
                    continue
                if raw:
                    self.samples.add(raw.replace(b"\0", b" ").decode("utf-8", "replace"))
            time.sleep(self.interval)

    def __enter__(self) -> ArgvSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class Workspace:
    """One workspace of a test: its folder, its state dir, the environment the builder gets."""

    root: Path
    name: str
    env: dict[str, str]
    engine: EngineUnderTest = DOCKER  # what the builder runs on, and as whom
    path: str = ""  # PATH entries before the system's: the builder and CLI the engine's user may run

    @property
    def folder(self) -> Path:
        return self.root / "workspaces" / self.name

    @property
    def state_dir(self) -> Path:
        given = self.env.get("DEVCONTAINER_STATE_DIR")
        return Path(given) if given else self.root / "state" / self.name

    def builder_env(self, **overrides: str) -> dict[str, str]:
        env = self.engine.process_env(self.env)
        if self.engine.podman:
            env["DEVCONTAINER_DOCKER_PATH"] = self.engine.cli
        if self.path:
            env["PATH"] = f"{self.path}:{os.environ['PATH']}"
        env["DEVCONTAINER_WORKSPACE_FOLDER"] = str(self.folder)
        env["DEVCONTAINER_STATE_DIR"] = str(self.state_dir)
        env.update(overrides)
        return {k: v for k, v in env.items() if v is not None}

    def start(self, *args: str, command: str = "up", **overrides: str) -> subprocess.Popen:
        builder = "devcontainer-builder" if self.path else BUILDER
        return subprocess.Popen(
            self.engine.as_user([builder, command, *args]),
            env=self.builder_env(**overrides),
            cwd=self.root if self.engine.user else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(
        self, *args: str, command: str = "up", timeout: float = 600, sample_argv: bool = False, **overrides: str
    ) -> Run:
        started = time.monotonic()
        sampler = ArgvSampler() if sample_argv else None
        if sampler:
            sampler.__enter__()
        try:
            proc = self.start(*args, command=command, **overrides)
            stdout, stderr = proc.communicate(timeout=timeout)
        finally:
            if sampler:
                sampler.__exit__()
        return Run(
            proc.returncode, stdout, stderr, time.monotonic() - started, sorted(sampler.samples) if sampler else []
        )

    def start_until_logged(self, text: str, timeout: float = 120, **overrides: str) -> subprocess.Popen:
        """Start `up` and return once build.log shows text (a build reached its RUN step, say)."""
        proc = self.start(**overrides)
        log = self.state_dir / "build.log"
        deadline = time.monotonic() + timeout
        while not (log.exists() and text in log.read_text(errors="replace")):
            assert proc.poll() is None, f"up ended before logging {text!r}: {proc.communicate()}"
            assert time.monotonic() < deadline, f"up never logged {text!r}"
            time.sleep(0.2)
        return proc

    def up(self, *args: str, **overrides: str) -> Run:
        return self.run(*args, **overrides)

    def state(self) -> dict:
        return json.loads((self.state_dir / "state.json").read_text())

    def events(self) -> list[dict]:
        path = self.state_dir / "events.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def event_kinds(self) -> list[str]:
        return [event["kind"] for event in self.events()]

    def build_log(self) -> str:
        return (self.state_dir / "build.log").read_text()

    def containers(self, all_states: bool = True) -> list[str]:
        return self.engine.containers_of(str(self.folder), all_states)

    def container(self) -> str:
        containers = self.containers()
        assert len(containers) == 1, f"expected one container for {self.folder}, found {containers}"
        return containers[0]

    def exec(self, *cmd: str, user: str | None = None, check: bool = True) -> str:
        flags = ["-u", user] if user else []
        return self.engine.run("exec", *flags, self.container(), *cmd, check=check)


# A Dockerfile build that reaches its RUN step, says so, and then takes five minutes.
SLEEPING_BUILD = {
    ".devcontainer/devcontainer.json": json.dumps({"build": {"dockerfile": "Dockerfile"}}),
    ".devcontainer/Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo build-started && sleep 300\n",
}


def remove_labelled(label: str) -> None:
    """docker rm -f every container carrying label (key=value)."""
    doomed = docker("ps", "-aq", "--filter", f"label={label}", check=False).split()
    if doomed:
        docker("rm", "-f", *doomed, check=False)


def remove_containers_under(prefix: str) -> None:
    """Remove every builder-labelled container whose workspace lies under prefix (a test's sandbox)."""
    out = docker("ps", "-a", "--no-trunc", "--format", f'{{{{.ID}}}} {{{{.Label "{LABEL_WORKSPACE}"}}}}', check=False)
    doomed = [
        line.split()[0] for line in out.splitlines() if len(line.split()) == 2 and line.split()[1].startswith(prefix)
    ]
    if doomed:
        docker("rm", "-f", *doomed, check=False)


def tree_contains(path: Path, needle: str) -> list[str]:
    """Regular files under path whose bytes contain needle. Symlinks, FIFOs and devices are skipped (a
    link to /dev/zero in a shared /tmp must not make the test read forever), files are read in chunks."""
    hits = []
    data = needle.encode()
    overlap = max(len(data) - 1, 0)
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                if not stat.S_ISREG(os.lstat(full).st_mode):
                    continue
                with open(full, "rb", buffering=0) as handle:
                    tail = b""
                    while chunk := handle.read(1 << 20):
                        if data in tail + chunk:
                            hits.append(full)
                            break
                        tail = chunk[-overlap:] if overlap else b""
            except OSError:
                continue
    return hits


def key_material(key: str) -> str:
    """A line of an OpenSSH private key that only this key has (its first lines are a fixed header)."""
    lines = key.strip().splitlines()
    return lines[len(lines) // 2]


def forget_build_cache(token: str, docker_config: str) -> int:
    """Remove the BuildKit cache records of the steps whose text holds token - only those: a test must not
    empty a developer's whole build cache. Returns how many were removed."""
    env = dict(os.environ, DOCKER_CONFIG=docker_config)
    listing = subprocess.run(["docker", "buildx", "du", "--verbose"], capture_output=True, text=True, env=env,
                             timeout=120, check=True).stdout  # fmt: skip
    ids = []
    for record in listing.split("\n\n"):
        fields = dict(line.split(":", 1) for line in record.splitlines() if ":" in line)
        if token in fields.get("Description", ""):
            ids.append(fields["ID"].strip())
    for record_id in ids:
        subprocess.run(["docker", "buildx", "prune", "-f", "--filter", f"id={record_id}"], capture_output=True,
                       env=env, timeout=120, check=True)  # fmt: skip
    return len(ids)


def which_docker_config_with_buildx() -> str:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "devcontainer-builder"
    config = cache / "docker-config-buildx"
    if not (config / "cli-plugins" / "docker-buildx").exists():
        raise AssertionError(f"{config} has no buildx plugin: run tests/env/provision.sh test")
    return str(config)


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True)
