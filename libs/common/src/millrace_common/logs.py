"""JSON logs with the service name and the trace id of the record being handled."""

from __future__ import annotations

import logging
import sys

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
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    for noisy in ("aiokafka", "kafka", "faust", "mode", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _add_service(service: str):  # type: ignore[no-untyped-def]
    def processor(_logger, _method, event_dict):  # type: ignore[no-untyped-def]
        event_dict.setdefault("service", service)
        return event_dict

    return processor


def bind_trace(trace_id: str | None) -> None:
    bind_contextvars(trace_id=trace_id)
