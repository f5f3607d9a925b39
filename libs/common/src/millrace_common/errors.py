"""One base error for the platform; transports map codes to statuses at their edge
(``millrace_common.http.status_of``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with one field of a request: ``records[3].temperature``."""

    field: str
    message: str


class MillraceError(Exception):
    """Base error. ``code`` is a stable machine-readable name; ``problems`` lists every
    field at fault when there are several (the first is also ``field``)."""

    code = "millrace_error"

    def __init__(
        self, message: str, *, field: str | None = None, problems: Sequence[FieldProblem] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.problems = list(problems)

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled whole (its field, problems and any attribute of a subclass, such as
        ``retry_after``), e.g. back from a child process."""
        extra = {k: v for k, v in vars(self).items() if k not in ("message", "field", "problems")}
        return (_rebuilt, (type(self), self.message, self.field, self.problems, extra))


def _rebuilt(
    cls: type[MillraceError],
    message: str,
    field: str | None,
    problems: list[FieldProblem],
    extra: dict[str, object] | None = None,
) -> MillraceError:
    error = cls.__new__(cls)
    MillraceError.__init__(error, message, field=field, problems=problems)
    vars(error).update(extra or {})
    return error


class NotFound(MillraceError):
    code = "not_found"


class Conflict(MillraceError):
    code = "conflict"


class InvalidInput(MillraceError):
    code = "invalid_input"

    @classmethod
    def of(cls, problems: Sequence[FieldProblem]) -> InvalidInput:
        """One error for several fields, named after the first."""
        first = problems[0]
        return cls(f"{first.field}: {first.message}", field=first.field, problems=problems)


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


class Unavailable(MillraceError):
    """A dependency the request needs (database, broker, object store) is away;
    ``retry_after``, when given, is the seconds a client should wait before trying again
    (HTTP answers it as ``Retry-After``)."""

    code = "unavailable"
    retry_after: int | None = None

    def __init__(
        self, message: str, *, field: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message, field=field)
        self.retry_after = retry_after


class StorageFull(MillraceError):
    """A bounded store is at its bound and refuses more (e.g. a site's queue)."""

    code = "storage_full"
