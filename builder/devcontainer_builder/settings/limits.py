"""How long an `up` may take, from its settings: the one place the workspace lock's wait and a VM unit's
start limit (host/systemd.py) are derived from, so that neither gives up on an `up` the other allows."""

from __future__ import annotations

from devcontainer_builder.settings.options import Settings

SPARE = 120  # the fallback, the agent's start and the state: each bounded, none by a setting
# the editor's one budget (ide/start.py), from its probe to code-server's health: a first start downloads,
# copies and unpacks ~220 MiB and installs extensions; what does not fit is a warning, and the next start
# goes on from what the workspace's volume kept. Counted whether or not DEVCONTAINER_IDE asks for one: a VM
# unit's limit is written from the timings alone
IDE_BUDGET = 600


def run_limit(settings: Settings) -> int:
    """The longest one `up` holds the workspace lock: the engine's wait, git's attempts (the clone or fetch
    retried, and the update's own steps), the initializeCommand's sandbox and the build (each within
    DEVCONTAINER_BUILD_TIMEOUT), the editor's budget and the spare."""
    git = settings.git_timeout * (settings.git_retries + 3)
    return settings.engine_timeout + git + 2 * settings.build_timeout + IDE_BUDGET + SPARE


def lock_timeout(settings: Settings) -> int:
    """How long an `up` waits for another's lock: past one whole run, the holder is stuck, not slow."""
    return run_limit(settings)


def start_limit(settings: Settings) -> int:
    """The longest `up` at a VM's boot may take: the lock's wait, then a run of its own."""
    return lock_timeout(settings) + run_limit(settings)
