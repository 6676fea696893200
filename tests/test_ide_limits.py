"""The editor's bounds, without an engine: how much of `up` it may take, what it gives up on and says so.
(Regression tests of issue 20's hostile review.)"""

from __future__ import annotations

import json
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from devcontainer_builder.ide import container, customizations, start
from devcontainer_builder.ide.customizations import Wanted
from devcontainer_builder.log import Log, TailSink
from devcontainer_builder.settings import limits
from devcontainer_builder.settings import options as opts
from devcontainer_builder.system import proc

GALLERY = "https://gallery.invalid/vscode/gallery"
ENV = {
    "DEVCONTAINER_REPOSITORY": "/r",
    "DEVCONTAINER_IDE": "code-server",
    "DEVCONTAINER_IDE_SHA256": "ab" * 32,
    "DEVCONTAINER_EXTENSIONS_GALLERY": GALLERY,
}


@dataclass
class _Gallery(start.Target):
    """A container whose `--install-extension` from the gallery ends as `answer` says; the extensions
    folder is empty."""

    answer: str = "timeout"  # timeout | refused | not-found
    installs: list[str] = field(default_factory=list)

    def exec(self, argv: list[str], **kwargs: object) -> proc.Result:  # type: ignore[override]
        if "--install-extension" not in argv:
            return proc.Result(argv, 0, "", "", timed_out=False, duration=0.0)
        self.installs.append(argv[-1])
        if self.answer == "timeout":
            return proc.Result(argv, -9, "", "", timed_out=True, duration=start.INSTALL_TIMEOUT)
        if self.answer == "refused":
            error = "Error: connect ECONNREFUSED 10.0.0.1:443"
        else:
            error = f"Extension '{argv[-1]}' not found."
        return proc.Result(argv, 1, "", error, timed_out=False, duration=0.1)


@pytest.mark.parametrize("answer", ["timeout", "refused"])
def test_a_gallery_that_does_not_answer_is_asked_once_and_the_rest_are_missing(answer: str) -> None:
    target = _Gallery(engine=None, container="c", user="coder", folder="/w", answer=answer)  # type: ignore[arg-type]
    wanted = tuple(Wanted(f"acme.ext{i}") for i in range(20))
    log, tail = Log(), TailSink()
    log.add_sink(tail)
    result = start.install_extensions(opts.load("up", {}, ENV), log, target, "/opt/x/bin/code-server", wanted)
    assert target.installs == ["acme.ext0"]
    assert result.missing == [str(w) for w in wanted]
    assert tail.text().count("is not asked again") == 19, tail.text()


def test_an_extension_the_gallery_does_not_know_does_not_stop_the_others() -> None:
    target = _Gallery(engine=None, container="c", user="coder", folder="/w", answer="not-found")  # type: ignore[arg-type]
    wanted = tuple(Wanted(f"acme.ext{i}") for i in range(3))
    result = start.install_extensions(opts.load("up", {}, ENV), Log(), target, "/opt/x/bin/code-server", wanted)
    assert target.installs == ["acme.ext0", "acme.ext1", "acme.ext2"]
    assert len(result.missing) == 3


def test_extensions_past_the_cap_are_listed_as_dropped() -> None:
    entries = [{"customizations": {"vscode": {"extensions": [f"acme.ext{i}" for i in range(205)]}}}]
    merged = customizations.merge(entries)
    assert [w.id for w in merged.extensions] == [f"acme.ext{i}" for i in range(customizations.MAX_EXTENSIONS)]
    assert merged.dropped == tuple(f"acme.ext{i}" for i in range(200, 205))
    assert merged.skipped == ()


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@dataclass
class _SlowContainer(start.Target):
    """A container in which the editor's tree is in place and each extension installs, but takes
    `install` seconds of the clock (a slow gallery or a big extension); every command is given the time
    it asks for, up to its timeout, as proc.run would."""

    clock: _Clock = field(default_factory=_Clock)
    marker: str = ""
    install: float = 100.0
    have: list[str] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)

    def exec(self, argv: list[str], **kwargs: object) -> proc.Result:  # type: ignore[override]
        allowed = self.within(float(kwargs.get("timeout", 60.0)))  # type: ignore[arg-type]
        self.timeouts.append(allowed)
        out = ""
        if container.PROBE in argv:
            out = f"glibc 2.36\ntree {self.marker}\n"
        elif "--list-extensions" in argv:
            out = "".join(f"{ident}@1.0.0\n" for ident in self.have)
        elif "--install-extension" in argv:
            taken = min(allowed, self.install)
            self.clock.now += taken
            if taken < self.install:
                return proc.Result(argv, -9, "", "", timed_out=True, duration=taken)
            self.have.append(argv[-1])
        elif container.START in argv:
            out = "started 42 /home/coder/code-server.log\n"
        return proc.Result(argv, 0, out, "", timed_out=False, duration=0.0)


def test_the_editor_keeps_to_its_budget_and_leaves_the_rest_to_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 extensions of 100 s each would keep `up` from `running` for 5.5 h: the editor stops beginning
    new ones when its budget is spent, starts code-server with those it has, and says which are missing."""
    clock = _Clock()
    monkeypatch.setattr(start, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    settings = opts.load("up", {}, ENV)
    names = [f"acme.ext{i}" for i in range(customizations.MAX_EXTENSIONS)]
    label = json.dumps([{"customizations": {"vscode": {"extensions": names}}}])
    engine = types.SimpleNamespace(docker="docker", env={}, inspect_format=lambda *_: label)
    target = _SlowContainer(engine=engine, container="c", user="coder", folder="/w", clock=clock)  # type: ignore[arg-type]
    target.marker = start._marker(str(tmp_path), settings)
    log, tail = Log(), TailSink()
    log.add_sink(tail)

    info = start.start(settings, log, target, str(tmp_path))

    assert clock.now - 1000.0 <= limits.IDE_BUDGET
    assert info.status == "started", info
    assert 0 < len(info.extensions) < len(names)
    assert [e.split("@")[0] for e in info.extensions] + info.missing == names
    assert "budget" in tail.text() and info.missing[-1] in tail.text()
    assert target.timeouts[-1] == start.LAUNCH_TIMEOUT, "code-server is started with its own bound"


def test_ups_run_limit_holds_the_editors_budget() -> None:
    settings = opts.load("up", {}, ENV)
    rest = settings.engine_timeout + settings.git_timeout * (settings.git_retries + 3) + 2 * settings.build_timeout
    assert limits.run_limit(settings) - rest >= limits.IDE_BUDGET + limits.SPARE
    assert start.FINISH + start.MIN_STEP < limits.IDE_BUDGET
