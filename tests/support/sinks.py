"""A log sink that keeps what it is given, for asserting on log lines."""

from __future__ import annotations

from devcontainer_builder.log import Line


class Collect:
    def __init__(self) -> None:
        self.lines: list[Line] = []

    def write(self, line: Line) -> None:
        self.lines.append(line)

    def close(self) -> None:
        pass

    def texts(self) -> list[str]:
        return [line.text for line in self.lines]

    def pairs(self) -> list[tuple[str, str]]:
        return [(line.level, line.text) for line in self.lines]
