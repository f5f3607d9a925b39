"""A library's line repeated on every reconnect is written once a window, then with a
count of what was held back; the service's own lines are never held back."""

from __future__ import annotations

import logging
import time

from millrace_common.logs import Repeats


def records(
    name: str, count: int, msg: str = "Unable connect to %r: %s"
) -> list[logging.LogRecord]:
    return [
        logging.LogRecord(name, logging.ERROR, __file__, 1, msg, ("127.0.0.1:9092", n), None)
        for n in range(count)
    ]


def test_a_library_line_is_written_once_a_window_with_a_count() -> None:
    repeats = Repeats(("aiokafka",), window=0.2)
    written = [r for r in records("aiokafka.conn", 500) if repeats.filter(r)]
    assert len(written) == 1
    time.sleep(0.25)
    [later] = records("aiokafka.conn", 1)
    assert repeats.filter(later) and "(and 499 more like it in 0 s)" in later.getMessage()
    other = records("aiokafka.conn", 1, msg="Heartbeat failed for group %s: %s")
    assert repeats.filter(other[0])  # another template is another line


def test_the_services_own_lines_are_never_held_back() -> None:
    repeats = Repeats(("aiokafka",), window=60)
    assert all(repeats.filter(r) for r in records("millrace.features", 50))
