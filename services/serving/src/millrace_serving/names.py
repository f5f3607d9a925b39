"""The registry's rules for model and alias names (``millrace_registry.names``; no shared
home for them in ``millrace_common``), checked before a name a client sent goes into a
registry URL: a name with a control character or a slash is a 422 here, not a malformed
request to the registry. No I/O."""

from __future__ import annotations

import re

from millrace_common.errors import InvalidInput

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}")
ALIAS_PATTERN = re.compile(r"[a-z][a-z0-9-]{0,62}")


def check_name(name: str, *, field: str = "name") -> str:
    return _checked(NAME_PATTERN, name, what="model name", field=field)


def check_alias(alias: str, *, field: str = "alias") -> str:
    return _checked(ALIAS_PATTERN, alias, what="alias", field=field)


def _checked(pattern: re.Pattern[str], value: str, *, what: str, field: str) -> str:
    if not pattern.fullmatch(value):  # not match + "$": that would take a trailing newline
        shown = value if len(value) <= 130 else f"{value[:127]}..."
        raise InvalidInput(f"{what} {shown!r} must match {pattern.pattern}", field=field)
    return value
