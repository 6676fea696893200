"""What one `up` knows as it goes, and how it records it (state.json, events.jsonl, the build log)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from devcontainer_builder.devcontainer_cli.driver import Outcome
from devcontainer_builder.devcontainer_cli.guard import Guard
from devcontainer_builder.engine.containers import Additions
from devcontainer_builder.engine.engine import Engine, Labelled
from devcontainer_builder.errors import BuildFailed
from devcontainer_builder.log import FileSink, Log, Sink, TailSink
from devcontainer_builder.settings.options import Settings
from devcontainer_builder.state.record import ErrorInfo, Event, State, Status, StepRecord
from devcontainer_builder.state.store import StateDir
from devcontainer_builder.system import clock, files
from devcontainer_builder.workspace.checkout import Checkout
from devcontainer_builder.workspace.config import ResolvedConfig


@dataclass
class Run:
    settings: Settings
    environ: Mapping[str, str]  # the builder's own (no secret in it); children get allow-lists of it
    log: Log
    dirs: StateDir
    engine: Engine
    cli: str  # the devcontainer CLI
    env: dict[str, str]  # for docker and the devcontainer CLI (environment.for_engine)
    guard: Guard
    previous: State
    state: State
    tail: TailSink = field(default_factory=TailSink)
    started: float = field(default_factory=time.monotonic)
    containers_before: list[str] = field(default_factory=list)
    checkout: Checkout | None = None
    resolved: ResolvedConfig | None = None
    configured: tuple[str, str] | None = None  # (container, folder) the builder has set up already
    hook_failure: BuildFailed | None = None  # a postStart/postAttach that failed in a container kept running
    removed: list[str] = field(default_factory=list)  # containers this run removed
    compose_project: str = ""  # a compose config's project (engine/compose.py)
    project_containers: list[Labelled] = field(default_factory=list)  # its containers once it came up
    additions: Additions = field(default_factory=lambda: Additions({}))  # the admin's, to the resolved config
    started_ahead: str = ""  # the container Coder's agent and the editor started in beside the CLI's hooks

    @property
    def owner(self) -> files.Owner | None:
        """Who files the builder creates in the workspace belong to."""
        return files.Owner.for_workspace(self.settings.workspace_uid, self.settings.workspace_gid)

    def resolved_config(self) -> ResolvedConfig:
        if self.resolved is None:
            raise BuildFailed("no config was resolved before the build (this is a bug)", step="internal")
        return self.resolved

    def event(self, kind: str, /, **fields: Any) -> None:
        self.dirs.record_event(kind, **fields)

    def save(self, **changes: Any) -> None:
        """Apply changes to the state and write it; what the supervisor owns (a dismissed suggestion, the
        build it requested) is kept as the file has it."""
        self.state = dataclasses.replace(self.state, **changes)
        mine = self.state
        self.dirs.update_state(
            lambda current: dataclasses.replace(
                mine, suggestion_ignored=current.suggestion_ignored, requested=current.requested
            )
        )

    def error(self, err: BuildFailed, **extra: str) -> ErrorInfo:
        detail = self.log.redact(err.detail)[-4000:] if err.detail else ""
        return ErrorInfo(self.log.redact(err.message), err.step, self.dirs.build_log, detail, **extra)

    def step(self, name: str, status: str, seconds: float) -> None:
        self.state.steps.append(StepRecord(name, status, round(seconds, 3)))
        self.event(Event.STEP, name=name, status=status, seconds=round(seconds, 3))

    def seconds(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def finished(self, status: str, outcome: Outcome | None, **changes: Any) -> None:
        """The final state of this run."""
        if outcome is not None:
            changes.update(
                container_id=outcome.container_id,
                remote_user=outcome.remote_user,
                remote_workspace_folder=outcome.remote_workspace_folder,
            )
        if self.checkout is not None:
            changes.update(branch=self.checkout.branch, commit=self.checkout.commit)
        self.save(status=str(status), finished_at=clock.iso(), duration_seconds=self.seconds(), **changes)

    @contextlib.contextmanager
    def logging(self) -> Iterator[None]:
        """build.log and the tail kept for the error log, for the length of the run."""

        # through the state dir, which names each file once: starting build.log may already have failed
        build_log = FileSink(self.dirs.start_build_log(self.state.build_id), on_error=self.dirs.failed)
        sinks: list[Sink] = [build_log, self.tail]
        for sink in sinks:
            self.log.add_sink(sink)
        try:
            yield
        finally:
            for sink in sinks:
                self.log.remove_sink(sink)


def initial_state(settings: Settings, previous: State, dirs: StateDir, trigger: str, build_id: str) -> State:
    return State(
        status=str(Status.BUILDING),
        container_id=previous.container_id,
        config_hash=previous.config_hash,
        workspace_folder=settings.workspace_folder,
        repository=settings.repository.url,
        requested_branch=settings.branch or "",
        state_dir=dirs.path,
        build_log=dirs.build_log,
        pid=os.getpid(),
        build_id=build_id,
        trigger=trigger,
        started_at=clock.iso(),
        branch=previous.branch,
        commit=previous.commit,
        remote_user=previous.remote_user,
        remote_workspace_folder=previous.remote_workspace_folder,
        rebuild_id=previous.rebuild_id,
    )
