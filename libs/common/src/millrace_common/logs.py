"""JSON logs with the service name and the trace id of the record being handled."""

from __future__ import annotations

import logging
import sys
import time

import structlog
from structlog.contextvars import bind_contextvars, merge_contextvars

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(service: str, level: str = "info") -> None:
    """Route structlog and stdlib logging to one JSON line per event on stderr."""
    numeric = _LEVELS.get(level.lower(), logging.INFO)
    shared = [
        merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(service),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    handler.addFilter(Repeats(LIBRARIES))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    for noisy in (*LIBRARIES, "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


LIBRARIES = ("aiokafka", "kafka", "faust", "mode")
"""Libraries that log a line per retry while a dependency is away."""


class Repeats(logging.Filter):
    """A library's line that repeats (same logger, same message template: "Unable
    connect to %r" for every reconnect while a broker is away) is written once per
    ``window`` seconds; the next one written says how many were held back. The
    service's own lines are never held back."""

    def __init__(self, libraries: tuple[str, ...], *, window: float = 60.0) -> None:
        super().__init__()
        self.libraries = libraries
        self.window = window
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.libraries):
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.window:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.msg = f"{record.msg} (and {last[1]} more like it in {self.window:.0f} s)"
        if len(self._seen) > 1000:
            self._seen.clear()  # bounded: templates are few, but never let it grow
        self._seen[key] = (now, 0)
        return True


def _add_service(service: str):  # type: ignore[no-untyped-def]
    def processor(_logger, _method, event_dict):  # type: ignore[no-untyped-def]
        event_dict.setdefault("service", service)
        return event_dict

    return processor


def bind_trace(trace_id: str | None) -> None:
    bind_contextvars(trace_id=trace_id)
