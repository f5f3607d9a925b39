"""The feature engine: point-in-time windowed features per entity. The one
implementation the features service (centre) and the edge agent (site) both run, so a
site computes exactly the rows the centre would. Pure: no I/O; the readings a window
starts from come through the ``WindowSource`` port (the offline store in the centre,
the site's SQLite queue at the edge).

A window holds an entity's recent readings for one feature set, in (event time, event
id) order, each reading once. A row for an event aggregates only readings with
``event time <= its own`` inside each feature's window (``as_of - window < t <= as_of``),
so it holds only what was known when the event happened, whatever order the events
arrive in. Readings older than twice the feature set's longest window behind the
newest are dropped.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

import orjson

from millrace_common.project import EMPTY_IS_ZERO, FeatureSet, Project
from millrace_common.records import ValidRecord
from millrace_common.windows import REDUCERS, Reducer, counting

_LAST_ID = "\U0010ffff"  # sorts after every event id: (t, _LAST_ID) follows every (t, id)


@dataclass(frozen=True, slots=True)
class Reading:
    """One event's values of the fields a feature set reads."""

    at: float  # event time, epoch seconds
    event_id: str
    values: dict[str, Any]


class WindowSource(Protocol):
    """Where a window not in memory starts from: the readings already recorded for
    each entity within ``keep_seconds`` of that entity's newest one."""

    def load(
        self, feature_set: FeatureSet, entities: Collection[str], *, keep_seconds: float
    ) -> dict[str, list[Reading]]: ...


class NoHistory:
    """A source with nothing recorded: every window starts empty."""

    def load(
        self, feature_set: FeatureSet, entities: Collection[str], *, keep_seconds: float
    ) -> dict[str, list[Reading]]:
        return {}


class Window:
    """An entity's readings for one feature set, sorted by (event time, event id), kept
    as one column per field (a feature slices its column: no per-reading lookups)."""

    __slots__ = ("_keys", "_ids", "_columns", "_gaps", "_sticky", "_older")

    def __init__(
        self,
        fields: Sequence[str],
        readings: Iterable[Reading] = (),
        *,
        sticky: Sequence[str] = (),
    ) -> None:
        ordered = sorted(readings, key=lambda r: (r.at, r.event_id))
        self._keys = [(r.at, r.event_id) for r in ordered]
        self._ids = {r.event_id for r in ordered}
        self._columns = {f: [r.values.get(f) for r in ordered] for f in fields}
        # the fields that have ever had a missing value here: only their slices are
        # filtered (a conservative mark; a trimmed gap leaves it set)
        self._gaps = {f for f, column in self._columns.items() if None in column}
        # the fields whose newest value outlives the window (``latest``), and that value
        # with its event time once its reading is trimmed
        self._sticky = tuple(sticky)
        self._older: dict[str, tuple[float, Any]] = {}

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def readings(self) -> list[Reading]:
        columns = self._columns.items()
        return [
            Reading(at, event_id, {f: c[i] for f, c in columns if c[i] is not None})
            for i, (at, event_id) in enumerate(self._keys)
        ]

    def add(self, reading: Reading, *, keep_seconds: float) -> bool:
        """Add ``reading`` (False, and no change, when its event is already here), then
        drop what is more than ``keep_seconds`` older than the newest reading."""
        if reading.event_id in self._ids:
            return False
        key = (reading.at, reading.event_id)
        values = reading.values
        in_order = not self._keys or key > self._keys[-1]  # the usual case
        at = len(self._keys) if in_order else bisect.bisect_right(self._keys, key)
        self._keys.insert(at, key)
        for field, column in self._columns.items():
            value = values.get(field)
            if value is None:
                self._gaps.add(field)
            column.insert(at, value)
        self._ids.add(reading.event_id)
        self._trim(self._keys[-1][0] - keep_seconds)
        return True

    def _trim(self, oldest: float) -> None:
        if self._keys[0][0] >= oldest:
            return
        cut = bisect.bisect_left(self._keys, (oldest, ""))
        for field in self._sticky:
            self._keep_newest(field, cut)
        for _at, event_id in self._keys[:cut]:
            self._ids.discard(event_id)
        del self._keys[:cut]
        for column in self._columns.values():
            del column[:cut]

    def span(self, start: float, as_of: float) -> tuple[int, int]:
        """The index range of the readings with ``start < event time <= as_of``."""
        lo = bisect.bisect_right(self._keys, (start, _LAST_ID))
        hi = bisect.bisect_right(self._keys, (as_of, _LAST_ID))
        return lo, hi

    def _keep_newest(self, field: str, cut: int) -> None:
        """Before the readings up to ``cut`` go: remember the newest value of ``field``
        among them, when it is newer than the one remembered."""
        column = self._columns[field]
        for i in range(cut - 1, -1, -1):
            if column[i] is not None:
                at = self._keys[i][0]
                if field not in self._older or self._older[field][0] <= at:
                    self._older[field] = (at, column[i])
                return

    def latest(self, field: str, as_of: float) -> Any:
        """The newest value of ``field`` at or before ``as_of``, however old; None when
        there is none (or when the only one known is newer than a late ``as_of``)."""
        column = self._columns[field]
        for i in range(bisect.bisect_right(self._keys, (as_of, _LAST_ID)) - 1, -1, -1):
            if column[i] is not None:
                return column[i]
        older = self._older.get(field)
        return older[1] if older is not None and older[0] <= as_of else None

    def last_before(self, field: str, as_of: float, *, since: float) -> float | None:
        """The event time of the newest reading before ``as_of`` (and after ``since``)
        that has ``field``, or None."""
        column = self._columns[field]
        i = bisect.bisect_left(self._keys, (as_of, "")) - 1
        while i >= 0 and self._keys[i][0] > since:
            if column[i] is not None:
                return self._keys[i][0]
            i -= 1
        return None

    def values(self, field: str, lo: int, hi: int) -> list[Any]:
        """The field's values in the index range, missing ones left out."""
        values = self._columns[field][lo:hi]
        return [v for v in values if v is not None] if field in self._gaps else values


class Plan:
    """A feature set compiled for the hot path: features grouped by window length, so
    each window is sliced once per event; then the times since the last reading and the
    ratios, which read the others."""

    def __init__(self, feature_set: FeatureSet) -> None:
        self.feature_set = feature_set
        self.name = feature_set.name
        self.version = feature_set.version
        self.label = feature_set.label
        aggregated = [f for f in feature_set.features if f.ratio is None]
        self.names = [f.name for f in feature_set.features]
        # a missing value where nothing was aggregated, but a count or a sum is 0
        self.empty: dict[str, float | None] = {
            f.name: 0.0 if f.agg in EMPTY_IS_ZERO else None for f in feature_set.features
        }
        # window length -> field -> the (name, reducer) of the features reading it
        self.by_window: dict[int, dict[str, list[tuple[str, Reducer]]]] = {}
        self.since: list[tuple[str, str, int]] = []  # (name, field, window seconds)
        self.latest: list[tuple[str, str]] = []  # (name, field)
        for f in aggregated:
            if f.agg == "since_last":
                self.since.append((f.name, f.field, f.window_seconds))
                continue
            if f.agg == "latest":
                self.latest.append((f.name, f.field))
                continue
            reduce = counting(f.equals) if f.equals is not None else REDUCERS[f.agg]  # type: ignore[index]
            group = self.by_window.setdefault(f.window_seconds, {})
            group.setdefault(f.field, []).append((f.name, reduce))
        self.ratios = [(f.name, *f.ratio) for f in feature_set.features if f.ratio is not None]
        self.fields = sorted({f.field for f in aggregated})
        self.keep_seconds = 2 * feature_set.max_window_seconds

    def window(self, readings: Iterable[Reading] = ()) -> Window:
        return Window(self.fields, readings, sticky=self.feature_set.latest_fields)

    def compute(self, window: Window, as_of: float) -> dict[str, float | None]:
        out = dict(self.empty)  # in the declared order
        for seconds, fields in self.by_window.items():
            lo, hi = window.span(as_of - seconds, as_of)
            if lo == hi:
                continue  # nothing in the window: every aggregation is empty
            for field, features in fields.items():
                values = window.values(field, lo, hi)
                for name, reduce in features:
                    out[name] = reduce(values)
        for name, field in self.latest:
            value = window.latest(field, as_of)
            out[name] = None if value is None else float(value)
        for name, field, seconds in self.since:
            before = window.last_before(field, as_of, since=as_of - seconds)
            out[name] = None if before is None else as_of - before
        for name, numerator, denominator in self.ratios:
            top, bottom = out[numerator], out[denominator]
            out[name] = None if top is None or not bottom else top / bottom
        return out


class Row(NamedTuple):
    """A computed feature row: the ``FeatureRowComputed`` contract's fields, kept plain
    on the hot path (validated input in, ``to_json`` out), and the reading behind it.
    A named tuple: made for every event, it costs a third of a frozen dataclass."""

    event_id: str
    feature_set: str
    feature_set_version: int
    entity_id: str
    event_time: datetime
    features: dict[str, float | None]
    label: float | None
    inputs: dict[str, Any]
    trace_id: str | None = None

    def to_json(self) -> bytes:
        """The row as ``features`` carries it (the FeatureRowComputed JSON Schema)."""
        return orjson.dumps(
            {
                "schema_version": 1,
                "event_id": self.event_id,
                "feature_set": self.feature_set,
                "feature_set_version": self.feature_set_version,
                "entity_id": self.entity_id,
                "event_time": self.event_time,
                "features": self.features,
                "label": self.label,
            },
            option=orjson.OPT_UTC_Z,
        )


class Event(NamedTuple):
    """A validated record and the id it is known by (its own, or one derived from its
    position on the topic, so a replay is recognised)."""

    record: ValidRecord
    event_id: str
    trace_id: str | None = None


class FeatureEngine:
    """Rows for batches of events, with the windows of recently seen entities kept in
    memory (at most ``max_windows``; the least recently used go first and are loaded
    again from the source when their entity comes back)."""

    def __init__(
        self, project: Project, *, source: WindowSource | None = None, max_windows: int = 200_000
    ) -> None:
        self._plans: dict[str, list[Plan]] = {}
        for fs in project.feature_sets.values():
            self._plans.setdefault(fs.dataset, []).append(Plan(fs))
        self._source = source or NoHistory()
        self._max = max_windows
        self._windows: OrderedDict[tuple[str, str], Window] = OrderedDict()

    def plans_of(self, dataset: str) -> list[Plan]:
        return self._plans.get(dataset, [])

    def forget(self) -> None:
        """Drop every window in memory (after a rebalance another worker may have moved
        them on; the source has what they wrote)."""
        self._windows.clear()

    def rows(self, events: Sequence[Event]) -> list[Row]:
        """One row per event and feature set of its dataset, in event order."""
        self._load_missing(events)
        rows: list[Row] = []
        for event in events:
            record = event.record
            ts, values = record.ts, record.values
            at = ts.timestamp()
            event_time = ts if ts.tzinfo is UTC else ts.astimezone(UTC)
            for plan in self.plans_of(record.dataset):
                window = self._window(plan, record.entity_id)
                inputs = {f: values[f] for f in plan.fields if f in values}
                window.add(Reading(at, event.event_id, inputs), keep_seconds=plan.keep_seconds)
                label = record.labels.get(plan.label) if plan.label else None
                rows.append(
                    Row(
                        event.event_id,
                        plan.name,
                        plan.version,
                        record.entity_id,
                        event_time,
                        plan.compute(window, at),
                        None if label is None else float(label),
                        inputs,
                        event.trace_id,
                    )
                )
        self._bound(keep=len({(r.feature_set, r.entity_id) for r in rows}))
        return rows

    def _window(self, plan: Plan, entity: str) -> Window:
        key = (plan.name, entity)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = plan.window()
        else:
            self._windows.move_to_end(key)
        return window

    def _load_missing(self, events: Sequence[Event]) -> None:
        for plan in {id(p): p for e in events for p in self.plans_of(e.record.dataset)}.values():
            missing = {
                e.record.entity_id
                for e in events
                if e.record.dataset == plan.feature_set.dataset
                and (plan.name, e.record.entity_id) not in self._windows
            }
            if not missing:
                continue
            loaded = self._source.load(plan.feature_set, missing, keep_seconds=plan.keep_seconds)
            for entity in missing:
                self._windows[(plan.name, entity)] = plan.window(loaded.get(entity, ()))

    def _bound(self, *, keep: int) -> None:
        """Evict the least recently used windows down to ``max_windows``, never one the
        last batch touched (the ``keep`` most recent): its rows may not be stored yet,
        so the source could not give it back whole."""
        for _ in range(min(len(self._windows) - self._max, len(self._windows) - keep)):
            self._windows.popitem(last=False)
