"""The CLI's control manifest is refreshed with a bound, so the CLI never waits on containers.dev."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from devcontainer_builder.devcontainer_cli import control_manifest
from devcontainer_builder.log import Log, Redactor
from support.services import SilentServer
from support.sinks import Collect

ADVISORY = {"disallowedFeatures": [{"featureIdPrefix": "ghcr.io/bad/"}], "featureAdvisories": []}


class ManifestServer:
    """Serves one body for every GET and counts the requests."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/manifest.json"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tmpdir_env(tmp_path: Path) -> dict[str, str]:
    return {"TMPDIR": str(tmp_path) + "/"}


@pytest.fixture
def log() -> Iterator[tuple[Log, Collect]]:
    collected = Collect()
    log = Log(Redactor([]))
    log.add_sink(collected)
    yield log, collected
    log.close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def serve(monkeypatch: pytest.MonkeyPatch, body: bytes, status: int = 200) -> ManifestServer:
    server = ManifestServer(body, status)
    monkeypatch.setattr(control_manifest, "URL", server.url)
    return server


def age(path: str, seconds: float) -> None:
    stamp = os.stat(path).st_mtime - seconds
    os.utime(path, (stamp, stamp))


def test_the_cache_is_where_the_cli_looks_for_it(tmpdir_env) -> None:
    folder = f"devcontainercli-{pwd.getpwuid(os.geteuid()).pw_name}"  # Node: os.tmpdir(), os.userInfo()
    path = control_manifest.cache_path(tmpdir_env)
    assert path == os.path.join(tmpdir_env["TMPDIR"].rstrip("/"), folder, "control-manifest.json")
    assert control_manifest.cache_path({}) == f"/tmp/{folder}/control-manifest.json"


def test_a_missing_cache_is_fetched_and_written(monkeypatch, tmpdir_env, log) -> None:
    server = serve(monkeypatch, json.dumps(ADVISORY).encode())
    try:
        assert control_manifest.refresh(log[0], tmpdir_env) == "fetched"
        assert json.loads(Path(control_manifest.cache_path(tmpdir_env)).read_text()) == ADVISORY
        assert server.requests == 1
    finally:
        server.stop()


def test_a_fresh_cache_is_left_alone(monkeypatch, tmpdir_env, log) -> None:
    server = serve(monkeypatch, json.dumps(ADVISORY).encode())
    try:
        control_manifest.refresh(log[0], tmpdir_env)
        assert control_manifest.refresh(log[0], tmpdir_env) == "fresh"
        assert server.requests == 1
    finally:
        server.stop()


def wait_until(check, what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_stale_cache_is_given_to_the_cli_and_refetched_beside_the_build(monkeypatch, tmpdir_env, log) -> None:
    server = serve(monkeypatch, json.dumps(ADVISORY).encode())
    path = control_manifest.cache_path(tmpdir_env)
    os.makedirs(os.path.dirname(path))
    Path(path).write_text(json.dumps(control_manifest.EMPTY))
    age(path, control_manifest.CLI_MAX_AGE + 60)
    try:
        assert control_manifest.refresh(log[0], tmpdir_env) == "kept"
        assert control_manifest.refresh(log[0], tmpdir_env) == "fresh", "the CLI will not fetch it itself"
        wait_until(lambda: json.loads(Path(path).read_text()) == ADVISORY, "the fetch beside the build")
        assert server.requests == 1
    finally:
        server.stop()


def test_a_server_that_never_answers_keeps_the_cached_manifest_and_makes_it_fresh(monkeypatch, tmpdir_env, log) -> None:
    silent = SilentServer()
    monkeypatch.setattr(control_manifest, "URL", f"{silent.url}/manifest.json")
    monkeypatch.setattr(control_manifest, "READ_TIMEOUT", 0.5)
    path = control_manifest.cache_path(tmpdir_env)
    os.makedirs(os.path.dirname(path))
    Path(path).write_text(json.dumps(ADVISORY))
    age(path, control_manifest.CLI_MAX_AGE + 60)
    try:
        assert control_manifest.refresh(log[0], tmpdir_env) == "kept"
    finally:
        silent.stop()
    assert json.loads(Path(path).read_text()) == ADVISORY
    assert control_manifest.refresh(log[0], tmpdir_env) == "fresh"  # the CLI will not fetch it either


def test_the_builders_copy_outlives_the_clis_cache(monkeypatch, tmpdir_env, tmp_path, log) -> None:
    """A pod starts with an empty /tmp: the copy in the state dir is given to the CLI at once, and a
    containers.dev that never answers (a pod whose DNS does not) delays no start once a copy is known."""
    keep = str(tmp_path / "state-control-manifest.json")
    server = serve(monkeypatch, json.dumps(ADVISORY).encode())
    try:
        assert control_manifest.refresh(log[0], tmpdir_env, keep) == "fetched"
    finally:
        server.stop()
    assert json.loads(Path(keep).read_text()) == ADVISORY
    shutil.rmtree(os.path.dirname(control_manifest.cache_path(tmpdir_env)))  # the next pod's /tmp
    silent = SilentServer()
    monkeypatch.setattr(control_manifest, "URL", f"{silent.url}/manifest.json")
    monkeypatch.setattr(control_manifest, "DEADLINE", 30)  # waited for, it would end "default"
    try:
        assert control_manifest.refresh(log[0], tmpdir_env, keep) == "kept"
    finally:
        silent.stop()
    assert json.loads(Path(control_manifest.cache_path(tmpdir_env)).read_text()) == ADVISORY


def test_a_failed_fetch_is_kept_as_the_empty_default_for_the_next_start(monkeypatch, tmpdir_env, tmp_path, log) -> None:
    keep = str(tmp_path / "state-control-manifest.json")
    server = serve(monkeypatch, b"{}", status=503)
    try:
        assert control_manifest.refresh(log[0], tmpdir_env, keep) == "default"
        shutil.rmtree(os.path.dirname(control_manifest.cache_path(tmpdir_env)))
        assert control_manifest.refresh(log[0], tmpdir_env, keep) == "kept", "not waited for again"
    finally:
        server.stop()
    assert json.loads(Path(keep).read_text()) == control_manifest.EMPTY


def test_a_failed_fetch_without_a_cache_writes_the_clis_empty_default(monkeypatch, tmpdir_env, log) -> None:
    server = serve(monkeypatch, b"[1, 2]")  # not a manifest
    try:
        assert control_manifest.refresh(log[0], tmpdir_env) == "default"
    finally:
        server.stop()
    assert json.loads(Path(control_manifest.cache_path(tmpdir_env)).read_text()) == control_manifest.EMPTY


def test_an_http_error_counts_as_a_failed_fetch(monkeypatch, tmpdir_env, log) -> None:
    server = serve(monkeypatch, b"{}", status=503)
    try:
        assert control_manifest.refresh(log[0], tmpdir_env) == "default"
    finally:
        server.stop()


def test_a_deadline_bounds_a_server_that_trickles(monkeypatch, tmpdir_env, log) -> None:
    release = threading.Event()

    def stuck() -> dict:
        release.wait(30)
        return ADVISORY

    monkeypatch.setattr(control_manifest, "_fetch", stuck)
    monkeypatch.setattr(control_manifest, "DEADLINE", 0.3)
    try:
        assert control_manifest.refresh(log[0], tmpdir_env) == "default"
    finally:
        release.set()
    assert any("no answer within" in line.text for line in log[1].lines)


def test_an_unwritable_cache_leaves_the_cli_to_itself(monkeypatch, tmp_path, log) -> None:
    server = serve(monkeypatch, json.dumps(ADVISORY).encode())
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    try:
        assert control_manifest.refresh(log[0], {"TMPDIR": str(blocker)}) == "skipped"
    finally:
        server.stop()


def test_a_cache_file_that_is_not_where_the_builder_puts_it_after_a_cli_run_is_said_loudly(tmp_path) -> None:
    env = {"TMPDIR": str(tmp_path)}
    message = control_manifest.missing_after_run(env)
    assert "keeps it elsewhere" in message and str(tmp_path) in message and "DEVCONTAINER_BUILD_TIMEOUT" in message
    path = control_manifest.cache_path(env)
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as handle:
        handle.write("{}")
    assert control_manifest.missing_after_run(env) == ""


def test_the_cli_fetching_the_manifest_itself_is_noticed() -> None:
    from devcontainer_builder.devcontainer_cli import driver as devcontainer_cli

    parser = devcontainer_cli.ProgressParser(Log(), lambda step: None)
    parser.feed('{"type": "text", "level": 5, "timestamp": 1, "text": "Failed to fetch control manifest: x"}')
    assert parser.fetched_manifest


@pytest.mark.needs_cli
def test_the_pinned_cli_keeps_its_cache_where_the_builder_refreshes_it() -> None:
    """Read in the pinned CLI's own code: the file name, the folder and the five-minute age the builder
    relies on. A CLI upgrade that changes them fails here before it hangs a build."""
    bundle = Path(__file__).resolve().parents[2] / "builder/node_modules/@devcontainers/cli/dist/spec-node"
    code = (bundle / "devContainersSpecCLI.js").read_text(errors="replace")
    assert f'"{control_manifest.FILE_NAME}"' in code
    assert "devcontainercli-${await" in code and "300*1e3" in code


def test_a_cli_folder_planted_as_a_link_by_someone_else_is_not_written_through(tmpdir_env, tmp_path, log) -> None:
    """In a shared /tmp another user can create devcontainercli-<our name> before us, pointing elsewhere."""
    path = control_manifest.cache_path(tmpdir_env)
    victim = tmp_path / "victim"
    victim.mkdir()
    os.symlink(victim, os.path.dirname(path))
    assert control_manifest.refresh(log[0], tmpdir_env) == "skipped"
    assert list(victim.iterdir()) == [], "nothing written through the link"
