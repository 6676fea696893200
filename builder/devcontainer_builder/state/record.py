"""What state.json holds, and the names of the events in events.jsonl: the one place that knows them.

state.json is part of the builder's contract (README, docs/state.md): `status`, `fallback`,
`container_id`, `config_hash`, `rebuild_suggested`, `error` and the rest below. Reading is tolerant -
a field that is missing or of the wrong type (an older builder wrote the file) takes its default - and
writing goes through `to_json()`, so the file always has every field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

# How the supervisor tells the `up` child it starts which build this is and why (State.build_id and
# .trigger): process plumbing, not settings (a user never sets them), so they are not in the options table.
BUILD_ID_VAR = "DEVCONTAINER_BUILDER_BUILD_ID"
TRIGGER_VAR = "DEVCONTAINER_BUILDER_TRIGGER"
# the trigger of a keep-alive build: start the stopped container again, rebuild nothing
KEEPALIVE = "keepalive"
# the failure report a failed build leaves in the workspace folder (up/recovery.py), shown on the page
ERROR_LOG = ".devcontainer-build-error.log"


class Status:
    """The values of state.json's `status` (plain constants: an Enum costs import time on every run)."""

    BUILDING = "building"
    RUNNING = "running"
    DEGRADED = "degraded"  # running on the fallback image
    FAILED = "failed"  # not running at all


class Event:
    """The `kind` of each line of events.jsonl."""

    BUILD_STARTED = "build_started"
    STALE_RUN_STOPPED = "stale_run_stopped"
    GIT_CLONED = "git_cloned"
    GIT_UPDATED = "git_updated"
    GIT_UPDATE_SKIPPED = "git_update_skipped"
    CONFIG_RESOLVED = "config_resolved"
    CONFIG_CHANGED = "config_changed"
    CONTAINER_REUSED = "container_reused"
    CONTAINER_REMOVED = "container_removed"
    COMPOSE_DOWN = "compose_down"  # a compose project taken down (its named volumes kept)
    COMPOSE_STARTED = "compose_started"  # stopped services of the project started again
    CACHE_TO_IGNORED = "cache_to_ignored"
    STEP = "step"
    HOOK_FAILED = "hook_failed"
    CONTAINER_RUNNING = "container_running"
    BUILD_FAILED = "build_failed"
    FALLBACK_STARTED = "fallback_started"
    FALLBACK_RUNNING = "fallback_running"
    FALLBACK_FAILED = "fallback_failed"
    AGENT_STARTED = "agent_started"
    AGENT_RUNNING = "agent_running"
    AGENT_FAILED = "agent_failed"
    # the supervisor (serve)
    SERVE_STARTED = "serve_started"
    SERVE_ADDRESS_BUSY = "serve_address_busy"  # the TCP address was taken: serve waits for it
    SERVE_STOPPED = "serve_stopped"
    REBUILD_REQUESTED = "rebuild_requested"
    REBUILD_SUGGESTED = "rebuild_suggested"
    SUGGESTION_IGNORED = "suggestion_ignored"
    CONTAINER_RESTARTED = "container_restarted"
    AGENT_RESTARTED = "agent_restarted"
    KEEPALIVE_FAILED = "keepalive_failed"
    KEEPALIVE_RECOVERED = "keepalive_recovered"  # a restart held after failed ones
    SERVE_AGENT_STARTED = "serve_agent_started"  # Coder's builder agent, in the supervisor's container
    SERVE_AGENT_EXITED = "serve_agent_exited"
    # the editor in the devcontainer (ide/)
    IDE_STARTED = "ide_started"
    IDE_RUNNING = "ide_running"  # was running already: not started twice
    IDE_UNAVAILABLE = "ide_unavailable"  # no editor in this container, and why
    EXTENSION_MISSING = "extension_missing"


@dataclass
class ErrorInfo:
    message: str
    step: str
    log_path: str = ""
    detail: str = ""
    error_log: str = ""  # the error log's path inside the fallback container


@dataclass
class AgentInfo:
    status: str  # started, running (was already), no-downloader, exited, busy, failed
    pid: str = ""
    user: str = ""
    log: str = ""
    error: str = ""


@dataclass
class IdeInfo:
    """The editor in the devcontainer (ide/): what the status page shows and Coder's app reaches."""

    status: str  # started, running (was already), unavailable (with `error`), failed
    kind: str = ""  # code-server
    url: str = ""  # inside the container: http://127.0.0.1:13337
    pid: str = ""
    log: str = ""  # its log inside the container
    extensions: list[str] = field(default_factory=list)  # installed, as publisher.name@version
    missing: list[str] = field(default_factory=list)  # asked for by the config, not to be had (warned)
    settings: str = ""  # the machine settings file written inside the container
    error: str = ""


@dataclass
class Requested:
    """A build the supervisor has started and whose `up` may not have written its state yet."""

    build_id: str
    trigger: str  # rebuild, full-rebuild, keepalive
    at: str
    supervisor_pid: int


@dataclass
class StepRecord:
    name: str
    status: str  # succeeded or failed
    seconds: float


@dataclass
class State:
    status: str = ""  # a Status; "" before the first build
    fallback: bool = False
    container_id: str = ""
    config_hash: str = ""
    rebuild_suggested: bool = False
    changed_files: list[str] = field(default_factory=list)  # what differs from the container's config
    suggestion_hash: str = ""  # the inputs' digest the suggestion is about
    suggestion_ignored: str = ""  # the inputs' digest whose rebuild suggestion the user dismissed
    requested: Requested | None = None  # owned by the supervisor
    error: ErrorInfo | None = None
    fallback_error: ErrorInfo | None = None
    failed_container_id: str = ""  # a container a failed lifecycle command left (recreate it)
    workspace_folder: str = ""
    repository: str = ""  # without credentials
    requested_branch: str | None = None  # DEVCONTAINER_BRANCH of the last run; None: never recorded
    state_dir: str = ""
    build_log: str = ""
    pid: int = 0  # of the builder that wrote the state
    build_id: str = ""
    trigger: str = ""  # start, rebuild, full-rebuild
    started_at: str = ""
    finished_at: str = ""
    updated_at: str = ""
    duration_seconds: float = 0.0
    config_path: str = ""
    config_kind: str = ""  # repository, generated, default-image
    remote_user: str = ""
    remote_workspace_folder: str = ""
    branch: str = ""
    commit: str = ""
    agent: AgentInfo | None = None
    ide: IdeInfo | None = None
    steps: list[StepRecord] = field(default_factory=list)
    rebuild_id: str = ""  # the DEVCONTAINER_REBUILD_ID of the last rebuild honoured
    keepalive_failures: int = 0  # consecutive failed restarts by the supervisor
    keepalive_error: str = ""
    compose_project: str = ""  # a compose config's project: its other services run beside the devcontainer
    compose_volumes: list[str] = field(default_factory=list)  # the project's named volumes: no rebuild removes them
    engine: str = ""  # the engine's CLI the containers were made with (docker, podman, or a path)
    engine_kind: str = ""  # docker or podman (a `docker` that is Podman's script is podman)
    engine_reason: str = ""  # why that engine: set by DEVCONTAINER_DOCKER_PATH, or what auto-detection saw
    engine_identity: str = ""  # the engine CLI's real path:size:mtime, whose kind is engine_kind (detect.py)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: object) -> State:
        return _build(cls, data) if isinstance(data, dict) else cls()


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _build(cls: type[Any], data: dict[str, Any]) -> Any:
    """cls from a JSON object, keeping each value only when it has the field's type."""
    values = {}
    hints = _hints(cls)
    for item in dataclasses.fields(cls):
        if item.name in data:
            converted = _coerce(hints[item.name], data[item.name])
            if converted is not _WRONG:
                values[item.name] = converted
    return cls(**values)


_WRONG = object()


def _coerce(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            converted = _coerce(option, value)
            if converted is not _WRONG:
                return converted
        return _WRONG
    if hint is type(None):
        return None if value is None else _WRONG
    if origin is list:
        (inner,) = typing.get_args(hint)
        if not isinstance(value, list):
            return _WRONG
        items = [_coerce(inner, entry) for entry in value]
        return [entry for entry in items if entry is not _WRONG]
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            return _WRONG
        try:
            return _build(hint, value)  # type: ignore[arg-type]
        except TypeError:  # a field it cannot do without is missing or of the wrong type
            return _WRONG
    if hint is float:
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else _WRONG
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _WRONG
    return value if isinstance(value, hint) else _WRONG
