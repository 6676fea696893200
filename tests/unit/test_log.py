"""Log lines are cleaned and redacted once, before any sink sees them."""

from __future__ import annotations

import io

from devcontainer_builder.log import REDACTED, Log, Redactor, TerminalSink, clean
from support.sinks import Collect


def test_ansi_escapes_progress_frames_and_controls_are_cleaned() -> None:
    assert clean("\x1b[1m\x1b[31mred\x1b[39m\x1b[22m\r\n") == ["red"]
    assert clean("10%\r50%\r100%\r\n") == ["100%"]
    assert clean("a\x00b\x07c") == ["a\ufffdb\ufffdc"]
    assert clean("one\n\ntwo\n") == ["one", "two"]


def test_secrets_are_redacted_in_every_form_they_take() -> None:
    token = "ghp_abcdefghijklmnop1234"
    redact = Redactor([token, "p@ss w/rd"])
    assert redact(f"Authorization: {token}") == f"Authorization: {REDACTED}"
    assert redact("https://u:p%40ss%20w%2Frd@host") == f"https://u:{REDACTED}@host"
    assert token not in redact(f"x{token}{token}y")


def test_multi_line_keys_are_redacted_line_by_line() -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n"
    redact = Redactor([key])
    assert "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ" not in redact(
        "leaked: b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"
    )


def test_short_values_are_not_treated_as_secrets() -> None:
    assert Redactor(["ab"])("abc") == "abc"


def test_every_sink_gets_the_redacted_line_and_the_terminal_filters_by_level() -> None:
    log = Log(Redactor(["sekrit-value"]))
    collected = Collect()
    stream = io.StringIO()
    log.add_sink(collected)
    log.add_sink(TerminalSink("info", stream))
    log.debug("hidden sekrit-value")
    log.warn("shown \x1b[31msekrit-value\x1b[0m")
    assert [line.text for line in collected.lines] == [f"hidden {REDACTED}", f"shown {REDACTED}"]
    assert stream.getvalue() == f"warning: shown {REDACTED}\n"


def test_a_secret_split_by_escape_codes_is_still_redacted() -> None:
    log = Log(Redactor(["sekrit-value"]))
    collected = Collect()
    log.add_sink(collected)
    log.info("sekrit\x1b[0m-value")
    assert collected.lines[0].text == REDACTED
