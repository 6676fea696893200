"""The Coder log sender against the strict Coder double: order, timing, caps, failures, hygiene."""

from __future__ import annotations

import threading
import time
import uuid

from devcontainer_builder.coder import logs as coder_log
from devcontainer_builder.coder.logs import CoderLogSink
from devcontainer_builder.log import Log, Redactor
from support.coder import CoderDouble, refused_url
from support.services import wait_for
from support.sinks import Collect

# A bound that tells "did not wait" from "waited out a timeout": generous, so a busy machine never fails
# it, and far below the waits it rules out (grace periods of minutes, set by each test).
NO_WAIT = 30.0

FULL_LOG = "/workspaces/.devcontainer-builder/build.log"


class Rig:
    """A Log with the Coder sink and a collector standing in for the terminal."""

    def __init__(self, url: str, token: str, secrets: tuple[str, ...] = (), **kwargs: object) -> None:
        self.log = Log(Redactor(secrets))
        self.terminal = Collect()
        self.log.add_sink(self.terminal)
        self.sink = CoderLogSink(
            url, token, workspace="/workspaces/app", full_log=FULL_LOG, notify=self.notify, **kwargs
        )
        self.log.add_sink(self.sink)

    def notify(self, level: str, text: str) -> None:
        self.log.emit(level, text, exclude=self.sink)

    def close(self) -> None:
        self.log.remove_sink(self.sink)

    def close_within(self, deadline: float) -> None:
        """close(), which must return within deadline seconds (it is given far longer to wait)."""
        closing = threading.Thread(target=self.close, daemon=True)
        closing.start()
        wait_for(lambda: not closing.is_alive(), deadline, "close() returning without waiting")

    def warnings(self, needle: str) -> list[str]:
        return [line.text for line in self.terminal.lines if line.level == "warn" and needle in line.text]


def test_lines_arrive_in_order_under_their_registered_source(coder: CoderDouble) -> None:
    rig = Rig(coder.url, coder.token)
    sent = [f"line {index}: building step {index % 17}" for index in range(5000)]
    for text in sent:
        rig.log.info(text)
    rig.close()
    assert coder.outputs() == sent
    source = coder_log.source_id("/workspaces/app")
    assert coder.agent.sources == {source: {"display_name": "Devcontainer build", "icon": "/emojis/1f4e6.png"}}
    assert {line.source_id for line in coder.lines()} == {source}
    assert coder.statuses("log-source") == [201]
    assert rig.sink.stats.state == "streaming"


def test_a_restarted_builder_reuses_its_log_source(coder: CoderDouble) -> None:
    for run in range(2):
        rig = Rig(coder.url, coder.token)
        rig.log.info(f"run {run}")
        rig.close()
    assert len(coder.agent.sources) == 1
    assert coder.statuses("log-source") == [201, 201]


def test_lines_flow_while_output_is_continuous_not_only_when_it_stops(coder: CoderDouble) -> None:
    rig = Rig(coder.url, coder.token)
    arrivals: set[int] = set()  # how many lines Coder had, seen while the producer was still producing
    deadline = time.monotonic() + 60
    index = 0
    while len(arrivals - {0}) < 3 and time.monotonic() < deadline:  # never idle for more than 5 ms
        rig.log.info(f"busy line {index}")
        index += 1
        arrivals.add(len(coder.outputs()))
        time.sleep(0.005)
    rig.close()
    assert len(arrivals - {0}) >= 3, "batches must go out while lines keep coming, not only when they stop"
    assert coder.outputs() == [f"busy line {i}" for i in range(index)]


def test_levels_are_the_ones_the_lines_were_given(coder: CoderDouble) -> None:
    rig = Rig(coder.url, coder.token, level="trace")
    for level in ("trace", "debug", "info", "warn", "error"):
        rig.log.emit(level, f"a {level} line mentioning error and 0 errors")
    rig.close()
    assert [(line.level, line.output.split()[1]) for line in coder.lines()] == [
        (level, level) for level in ("trace", "debug", "info", "warn", "error")
    ]


def test_the_default_level_keeps_debug_lines_out_of_coders_budget(coder: CoderDouble) -> None:
    rig = Rig(coder.url, coder.token)
    rig.log.debug("Run: docker inspect ...")
    rig.log.info("Step 1/3 : FROM debian")
    rig.close()
    assert coder.outputs() == ["Step 1/3 : FROM debian"]


def test_the_log_is_cut_with_a_last_line_before_coders_cap(coder: CoderDouble) -> None:
    coder.log_cap = 60_000
    rig = Rig(coder.url, coder.token, total_cap=60_000)
    for index in range(2000):
        rig.log.info(f"{index:05d} " + "x" * 94)
    rig.close()
    outputs = coder.outputs()
    assert coder.agent.logs_bytes <= 60_000
    assert not coder.agent.overflowed, "the sender stays under the cap instead of provoking a 413"
    assert outputs[-1].startswith("The build log in Coder stops here")
    assert FULL_LOG in outputs[-1]
    assert outputs[:-1] == [f"{index:05d} " + "x" * 94 for index in range(len(outputs) - 1)]
    assert rig.sink.stats.state == "cut"
    assert len(rig.warnings("1 MiB limit")) == 1


def test_a_413_stops_streaming_and_says_so_if_it_still_fits(coder: CoderDouble) -> None:
    # other log sources of the agent have used almost all of Coder's budget already
    coder.agent.logs_bytes = coder.log_cap - 3000
    rig = Rig(coder.url, coder.token)
    for index in range(500):
        rig.log.info(f"line {index} " + "y" * 50)
    rig.close()
    assert 413 in coder.statuses("logs")
    assert coder.agent.overflowed
    assert rig.sink.stats.state == "cut"
    assert coder.outputs()[-1].startswith("The build log in Coder stops here")
    wait_for(lambda: not rig.sink._thread.is_alive(), NO_WAIT, "the sender stopping after the cut")
    requests_after = len(coder.requests)
    rig.log.info("after the cut")
    rig.close()
    assert len(coder.requests) == requests_after


def test_coder_down_costs_bounded_memory_one_warning_and_no_wait() -> None:
    rig = Rig(refused_url(), str(uuid.uuid4()), queue_cap=256 * 1024, grace=600)
    for index in range(100_000):  # about 10 MB of output
        rig.log.info(f"{index:06d} " + "z" * 90)
    assert rig.sink._queued_bytes <= 256 * 1024
    assert rig.sink.stats.dropped_lines > 90_000
    rig.close_within(NO_WAIT)  # a refused Coder is not waited for, whatever the grace period
    assert len(rig.warnings("not answering")) == 1
    assert rig.sink.stats.state == "unreachable"


def test_a_black_holed_api_does_not_hold_up_the_exit(coder: CoderDouble) -> None:
    coder.black_hole = True
    rig = Rig(coder.url, coder.token, grace=600)
    rig.log.info("into the void")
    wait_for(lambda: rig.sink._inflight_since is not None, NO_WAIT, "the registration hanging unanswered")
    rig.close_within(NO_WAIT)  # a request left unanswered is not waited out for the grace period
    assert coder.outputs() == []


def test_lines_queued_during_an_outage_arrive_once_coder_is_back(coder: CoderDouble) -> None:
    coder.fail_next = 3  # three 500s: the registration and two batches are retried
    rig = Rig(coder.url, coder.token)
    for index in range(300):
        rig.log.info(f"line {index}")
    deadline = time.monotonic() + 30
    while len(coder.outputs()) < 300 and time.monotonic() < deadline:
        time.sleep(0.1)
    rig.close()
    assert coder.outputs() == [f"line {index}" for index in range(300)]
    assert coder.statuses().count(500) == 3
    assert len(rig.warnings("not answering")) == 1


def test_dropped_lines_are_counted_in_one_line_that_says_where_the_log_is(coder: CoderDouble) -> None:
    coder.black_hole = True
    rig = Rig(coder.url, coder.token, queue_cap=20 * 1024)
    for index in range(2000):
        rig.log.info(f"line {index:04d} " + "w" * 40)
    dropped = rig.sink.stats.dropped_lines  # counted as they are written: the queue is bounded
    assert dropped > 0
    coder.black_hole = False
    coder._released.set()  # the hanging request is answered (dropped connection): the sender retries
    rig.log.info("after the outage")
    deadline = time.monotonic() + 30
    while "after the outage" not in coder.outputs() and time.monotonic() < deadline:
        time.sleep(0.1)
    rig.close()
    notes = [text for text in coder.outputs() if "were dropped" in text]
    assert len(notes) == 1
    assert FULL_LOG in notes[0]
    assert int(notes[0].split()[0]) == rig.sink.stats.dropped_lines


def test_a_rejected_token_stops_streaming_with_one_warning(coder: CoderDouble) -> None:
    rig = Rig(coder.url, str(uuid.uuid4()))  # a UUID Coder does not know
    for index in range(50):
        rig.log.info(f"line {index}")
    wait_for(lambda: 401 in coder.statuses(), NO_WAIT, "Coder refusing the token")
    rig.log.info("later")
    rig.close()
    assert coder.statuses() == [401]
    assert len(rig.warnings("refused the agent token")) == 1
    assert rig.sink.stats.state == "unauthorized"


def test_a_batch_coder_calls_malformed_is_dropped_and_reported(coder: CoderDouble) -> None:
    rig = Rig(coder.url, coder.token)
    rig.log.info("registered first")
    wait_for(lambda: "registered first" in coder.outputs(), NO_WAIT, "the first line arriving")
    # a lone surrogate survives as U+FFFD; what Coder would answer 400 to is an unknown level, which
    # only a bug could produce: forge one
    rig.sink.write(type(rig.terminal.lines[0])(time.time(), "info", "fine", "builder"))
    with rig.sink._lock:
        rig.sink._queue[-1].level = "fatal"
    wait_for(lambda: 400 in coder.statuses("logs"), NO_WAIT, "Coder rejecting the forged batch")
    rig.log.info("still streaming")
    rig.close()
    assert 400 in coder.statuses("logs")
    assert "still streaming" in coder.outputs()
    assert len(rig.warnings("rejected 1 log lines")) == 1
    assert rig.sink.stats.rejected_batches == 1


def test_long_binary_and_non_utf8_lines_are_made_storable(coder: CoderDouble) -> None:
    rig = Rig(coder.url, coder.token)
    long_line = "".join(chr(0x41 + i % 26) for i in range(3000))
    rig.log.info(long_line)
    rig.log.info("nul\x00byte and bell\x07 and \x1b[31mcolour\x1b[0m")
    rig.log.info(b"bad \xff\xfe utf-8".decode("utf-8", "replace"))
    rig.log.info("lone surrogate \udcff from a file name")
    rig.close()
    outputs = coder.outputs()
    pieces = [text for text in outputs if text.strip("…")[:5] in {long_line[i : i + 5] for i in range(0, 3000, 1022)}]
    assert all(len(text) <= 1024 for text in outputs)
    assert "".join(piece.strip("…") for piece in pieces) == long_line
    assert pieces[0].endswith("…") and pieces[1].startswith("…")
    assert "nul\ufffdbyte and bell\ufffd and colour" in outputs
    assert "bad \ufffd\ufffd utf-8" in outputs
    assert "lone surrogate \ufffd from a file name" in outputs
    assert 500 not in coder.statuses()


def test_secret_values_never_reach_coder_or_the_terminal(coder: CoderDouble) -> None:
    token = "ghp_" + uuid.uuid4().hex
    rig = Rig(coder.url, coder.token, secrets=(token, coder.token))
    rig.log.info(f"Run: docker build --build-arg TOKEN={token} .")
    rig.log.info(f"cloning https://x-access-token:{token}@example.com/app.git")
    rig.log.warn(f"agent token is {coder.token}")
    rig.close()
    bodies = coder.bodies()
    assert token not in bodies and coder.token not in bodies
    assert all(token not in text and coder.token not in text for text in rig.terminal.texts())
    assert sum("********" in text for text in coder.outputs()) == 3


def test_writing_never_waits_for_the_network(coder: CoderDouble) -> None:
    coder.delay = 300.0  # every answer takes five minutes
    rig = Rig(coder.url, coder.token)

    def produce() -> None:
        for index in range(20_000):
            rig.log.info(f"line {index}")

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    # twenty thousand lines while each request hangs for minutes: the producer never blocks on one
    wait_for(lambda: not producer.is_alive(), NO_WAIT, "the producer finishing while requests hang")
    rig.sink.grace = 0.1
    rig.close()
