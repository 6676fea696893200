"""Exit codes and the two kinds of failure the builder reports.

The contract (docs/state.md): 0 = workspace running, 1 = not running, 2 = invalid input to the builder.
"""

from __future__ import annotations

EXIT_RUNNING = 0
EXIT_NOT_RUNNING = 1
EXIT_INVALID_INPUT = 2


class BuilderError(Exception):
    """A failure with a message meant for humans: printed as one paragraph, never as a traceback."""

    exit_code = EXIT_NOT_RUNNING

    def __init__(self, message: str, *, step: str = "", detail: str = "", container_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.step = step
        self.detail = detail
        self.container_id = container_id  # a container the failure left behind (a failed postCreate)


class InputError(BuilderError):
    """The builder's own inputs (environment, flags) are wrong. Lists every problem at once."""

    exit_code = EXIT_INVALID_INPUT

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        if len(problems) == 1:
            text = f"invalid input: {problems[0]}"
        else:
            text = "invalid input:\n" + "\n".join(f"  - {p}" for p in problems)
        super().__init__(text, step="input")


class BuildFailed(BuilderError):
    """The repository's devcontainer could not be brought up (clone, config, build, lifecycle)."""


class Terminated(BaseException):
    """Raised in the main thread by the SIGTERM handler so every wait unwinds and cleans up.

    A BaseException so that `except Exception` blocks in cleanup paths do not swallow it.
    """
