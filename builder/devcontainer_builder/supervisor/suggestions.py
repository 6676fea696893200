"""Rebuild suggestions: the files the running container was built from have changed since.

The baseline is what the last build took (inputs.json, written by `up`): the config, its folder, its
Dockerfile, local features and what the Dockerfile's COPY/ADD take from the build context. This watches
the folders those files live in with inotify - an idle supervisor sleeps - and, a moment after a change
(debounced), compares the files as they are with the baseline. A difference raises the suggestion:
`rebuild_suggested` and the changed files in state.json, one `rebuild_suggested` event and one line in the
log (to Coder too). Nothing is rebuilt. "Ignore" dismisses the suggestion for that very set of changes; a
further edit raises it again; undoing the edit clears it.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable

from devcontainer_builder.log import Log, listing
from devcontainer_builder.state.record import Event, State, Status
from devcontainer_builder.state.store import StateDir
from devcontainer_builder.system.inotify import Inotify
from devcontainer_builder.workspace import fingerprint

DEBOUNCE = 0.2  # seconds of quiet after the last event before looking (an editor saves in several steps)
RECHECK = 30.0  # a full comparison this often anyway: events can overflow, folders appear
MAX_WATCHES = 4000
SHOWN = 5


@dataclasses.dataclass
class Suggestion:
    suggested: bool
    changed_files: list[str]
    digest: str  # of the inputs as they are: what Ignore dismisses


class Suggestions:
    def __init__(self, workspace: str, dirs: StateDir, log: Log, stop: threading.Event) -> None:
        self.workspace = workspace
        self.dirs = dirs
        self.log = log
        self.stop = stop
        self.digests = fingerprint.Digests()
        self.note = ""  # why some changes are found only by the periodic check, when that is so
        self.on_change: Callable[[], None] = lambda: None
        self._lock = threading.Lock()  # one comparison at a time (the watcher, Ignore)
        self._notify: Inotify | None = None
        self.checked_at = 0.0  # wall-clock time of the last comparison (tests wait for one after an edit)

    def wake(self) -> None:
        """Stop waiting (shutting down)."""
        if self._notify is not None:
            self._notify.interrupt()

    # -- what the API asks --------------------------------------------------------------------------
    def current(self) -> Suggestion:
        state = self.dirs.read_state()
        return Suggestion(state.rebuild_suggested, list(state.changed_files), state.suggestion_hash)

    def ignore(self, expected: str) -> tuple[bool, str]:
        """Dismiss the suggestion whose digest is `expected` ("" for whatever is suggested now)."""
        with self._lock:
            state = self.dirs.read_state()
            if not state.rebuild_suggested:
                return False, "there is no rebuild suggestion to ignore"
            if expected and expected != state.suggestion_hash:
                return False, "the suggestion has changed since it was shown; look again"
            digest = state.suggestion_hash
            self.dirs.update_state(lambda s: dataclasses.replace(
                s, suggestion_ignored=digest, rebuild_suggested=False, changed_files=[]
            ))  # fmt: skip
            self.dirs.record_event(Event.SUGGESTION_IGNORED, digest=digest)
        self.log.info("rebuild suggestion dismissed: it comes back when the configuration changes again")
        self.on_change()
        return True, digest

    # -- comparing ----------------------------------------------------------------------------------
    def baseline(self) -> tuple[str, fingerprint.Inputs] | None:
        data = self.dirs.read_json(self.dirs.inputs_file)
        inputs = fingerprint.Inputs.from_json(data)
        path = data.get("config_path") if isinstance(data, dict) else None
        return (path, inputs) if inputs is not None and isinstance(path, str) else None

    def evaluate(self) -> fingerprint.Inputs | None:
        """Compare the files with the baseline and record the result; the inputs as they are now."""
        with self._lock:
            state = self.dirs.read_state()
            base = self.baseline()
            if base is None or state.status in ("", Status.BUILDING) or state.requested is not None:
                return None  # nothing built yet, or a build is about to write a new baseline
            config_path, baseline = base
            started = time.time()
            current = fingerprint.build_inputs(self.workspace, config_path, self.digests, baseline)
            changed = fingerprint.changed_files(baseline, current)
            digest = current.digest
            wanted = bool(changed) and digest != state.suggestion_ignored
            if wanted and not (state.rebuild_suggested and state.suggestion_hash == digest):
                self.dirs.update_state(lambda s: _suggest(s, changed, digest))
                # said once per set of changed files: a process that keeps writing a file the build
                # copies must not fill the event file and Coder's log with the same news
                if not state.rebuild_suggested or state.changed_files != changed[:100]:
                    self.dirs.record_event(Event.REBUILD_SUGGESTED, changed_files=changed[:50], digest=digest)
                    self.log.info(
                        f"devcontainer configuration changed ({listing(changed, SHOWN)}): rebuild to apply it - "
                        "the status page's Rebuild button or `devcontainer-builder rebuild`"
                    )
                self.on_change()
            elif not wanted and state.rebuild_suggested:
                self.dirs.update_state(
                    lambda s: dataclasses.replace(s, rebuild_suggested=False, changed_files=[], suggestion_hash="")
                )
                self.on_change()
            self.checked_at = started
            return current

    # -- watching -----------------------------------------------------------------------------------
    def run(self) -> None:
        """Until stop is set: wait for a change in a watched folder (or RECHECK), then compare."""
        notify = self._notify = Inotify()
        try:
            notify.watch(self.dirs.path)  # a new build, a new baseline
            while not self.stop.is_set():
                current = self.evaluate()
                self._watch(notify, current)
                events = notify.read(RECHECK)
                while events and not self.stop.is_set():  # debounce: wait for a quiet moment
                    events = notify.read(DEBOUNCE)
        finally:
            notify.close()

    def _watch(self, notify: Inotify, current: fingerprint.Inputs | None) -> None:
        base = self.baseline()
        wanted = set(current.folders if current else [])
        if base is not None:
            wanted.update(base[1].folders)
        wanted = {folder for folder in wanted if os.path.isdir(folder)}
        wanted.add(self.dirs.path)
        for folder in notify.folders - wanted:
            notify.unwatch(folder)
        unwatched = [
            folder for folder in sorted(wanted) if len(notify.folders) >= MAX_WATCHES or not notify.watch(folder)
        ]
        truncated = bool(current and current.truncated)
        if unwatched or truncated:
            note = (
                f"{len(unwatched)} folders the build takes files from are too many to watch"
                if unwatched
                else f"the build context has more than {fingerprint.dockerfile_limit()} files"
            )
            self.note = f"{note}: changes there are found by a full check every {RECHECK:.0f} s"
        else:
            self.note = ""


def _suggest(state: State, changed: list[str], digest: str) -> State:
    state.rebuild_suggested = True
    state.changed_files = changed[:100]
    state.suggestion_hash = digest
    return state
