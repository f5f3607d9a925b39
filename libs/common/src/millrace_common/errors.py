"""One base error for the platform; transports map codes to statuses at their edge."""

from __future__ import annotations


class MillraceError(Exception):
    """Base error. ``code`` is a stable machine-readable name."""

    code = "millrace_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(MillraceError):
    code = "not_found"


class Conflict(MillraceError):
    code = "conflict"


class InvalidInput(MillraceError):
    code = "invalid_input"


class IntegrityError(MillraceError):
    """A digest, signature or schema check failed."""

    code = "integrity_error"


class Unauthorized(MillraceError):
    """No credentials, or credentials that are not known."""

    code = "unauthorized"


class Forbidden(MillraceError):
    """Known credentials without the scope the route needs."""

    code = "forbidden"


class TooLarge(MillraceError):
    code = "too_large"


class TimedOut(MillraceError):
    code = "timeout"
