"""The editor's bounds, without an engine: how much of `up` it may take, what it gives up on and says so.
(Regression tests of issue 20's hostile review.)"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from devcontainer_builder.ide import customizations, start
from devcontainer_builder.ide.customizations import Wanted
from devcontainer_builder.log import Log, TailSink
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
