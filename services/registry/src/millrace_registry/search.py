"""How the catalog searches, no I/O: tag and metric conditions parsed from query
parameters and matched, and paging."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from millrace_common.errors import InvalidInput

T = TypeVar("T")
_METRIC = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|>|<)\s*(-?[0-9.eE+-]+)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}
TAG_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")


@dataclass(frozen=True)
class MetricFilter:
    metric: str
    op: str
    value: float

    def matches(self, metrics: Mapping[str, float]) -> bool:
        found = metrics.get(self.metric)
        return isinstance(found, int | float) and _OPS[self.op](float(found), self.value)


def parse_metric(text: str) -> MetricFilter:
    """``f1>=0.8`` → a filter; anything else is a 422 naming the ``metric`` parameter."""
    match = _METRIC.match(text)
    if match is None:
        raise InvalidInput(
            f"metric filter '{text}' must look like 'f1>=0.8' (operators >, >=, <, <=, ==)",
            field="metric",
        )
    try:
        value = float(match.group(3))
    except ValueError:
        raise InvalidInput(f"metric filter '{text}' has no numeric value", field="metric") from None
    if not math.isfinite(value):
        raise InvalidInput(f"metric filter '{text}' needs a finite value", field="metric")
    return MetricFilter(match.group(1), match.group(2), value)


def parse_tags(values: Sequence[str]) -> dict[str, str | None]:
    """``key`` (any value) or ``key=value`` filters."""
    found: dict[str, str | None] = {}
    for text in values:
        key, sep, value = text.partition("=")
        check_tag_key(key, field="tag")
        found[key] = value if sep else None
    return found


def check_tag_key(key: str, *, field: str) -> str:
    if not TAG_KEY.fullmatch(key):
        raise InvalidInput(f"tag key '{key}' must match {TAG_KEY.pattern}", field=field)
    return key


def tags_match(tags: Mapping[str, str], wanted: Mapping[str, str | None]) -> bool:
    return all(
        key in tags and (value is None or str(tags[key]) == value) for key, value in wanted.items()
    )


def page(items: list[T], *, limit: int, offset: int) -> tuple[list[T], int]:
    """One page of ``items`` and the total before paging."""
    return items[offset : offset + limit], len(items)
