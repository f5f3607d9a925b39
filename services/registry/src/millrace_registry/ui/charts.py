"""Charts as geometry, no I/O: the numbers of a monitoring report turned into the
coordinates a template draws as inline SVG (no script, nothing fetched), each point and
bar with the text a browser shows on hover."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from millrace_registry.live_quality import WindowQuality

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 26, 34
SIGNIFICANT = 0.2
"""The PSI above which a shift is significant, by the usual rule of thumb."""
COLOURS = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#0550ae", "#6e7781")


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    text: str


@dataclass
class Series:
    name: str
    colour: str
    points: list[Point] = field(default_factory=list)

    @property
    def path(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


@dataclass(frozen=True)
class Tick:
    at: float
    text: str
    anchor: str = "middle"
    """Where the text hangs from ``at``: the first and last time ticks stay inside."""


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    label: str
    text: str


@dataclass(frozen=True)
class Frame:
    """The plot area and its axes, shared by both kinds of chart."""

    width: int
    height: int
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    title: str

    @property
    def bottom(self) -> int:
        return self.height - BOTTOM

    @property
    def right(self) -> int:
        return self.width - RIGHT

    @property
    def left(self) -> int:
        return LEFT

    @property
    def top(self) -> int:
        return TOP


@dataclass(frozen=True)
class LineChart:
    frame: Frame
    series: list[Series]


@dataclass(frozen=True)
class BarChart:
    frame: Frame
    bars: list[Bar]


def _key(entry: WindowQuality) -> str:
    where = f" at {entry.site}" if entry.site else ""
    return f"v{entry.version} {entry.alias or 'pinned'}{where}"


def _y_range(values: Sequence[float], metric: str) -> tuple[float, float]:
    if metric in {"accuracy", "f1", "precision", "recall", "roc_auc"}:
        return 0.0, 1.0
    low, high = min(values), max(values)
    if math.isclose(low, high):
        pad = abs(low) * 0.1 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.08
    return low - pad, high + pad


def _y_ticks(low: float, high: float, scale: Callable[[float], float]) -> list[Tick]:
    return [
        Tick(scale(low + (high - low) * i / 4), f"{low + (high - low) * i / 4:.3g}")
        for i in range(5)
    ]


def quality_over_time(windows: Sequence[WindowQuality], metric: str) -> LineChart | None:
    """``metric`` per window, a line per version, alias and site; None without a value."""
    valued = [w for w in windows if metric in w.metrics]
    if not valued:
        return None
    starts = [w.start.timestamp() for w in valued]
    first, last = min(starts), max(starts)
    span = (last - first) or 1.0
    low, high = _y_range([w.metrics[metric] for w in valued], metric)

    def x_of(at: float) -> float:
        return (
            LEFT + (at - first) / span * (WIDTH - LEFT - RIGHT)
            if last > first
            else (LEFT + WIDTH - RIGHT) / 2
        )

    def y_of(value: float) -> float:
        return HEIGHT - BOTTOM - (value - low) / (high - low) * (HEIGHT - TOP - BOTTOM)

    series: dict[str, Series] = {}
    for w in sorted(valued, key=lambda w: w.start):
        key = _key(w)
        if key not in series:
            series[key] = Series(key, COLOURS[len(series) % len(COLOURS)])
        series[key].points.append(
            Point(
                x_of(w.start.timestamp()),
                y_of(w.metrics[metric]),
                f"{key}, {_when(w.start)}: {metric} {w.metrics[metric]:.4f} "
                f"on {w.labelled} labelled of {w.predictions}",
            )
        )
    times = sorted({first, (first + last) / 2, last})
    anchors = ["start", "middle", "end"] if len(times) == 3 else ["middle"]
    x_ticks = [
        Tick(x_of(at), _when(datetime.fromtimestamp(at, valued[0].start.tzinfo)), anchor)
        for at, anchor in zip(times, anchors, strict=True)
    ]
    frame = Frame(WIDTH, HEIGHT, x_ticks, _y_ticks(low, high, y_of), f"live {metric} per window")
    return LineChart(frame, list(series.values()))


def quality_by_version(overall: Sequence[WindowQuality], metric: str) -> BarChart | None:
    """``metric`` over the whole range, a bar per version, alias and site."""
    valued = [w for w in overall if metric in w.metrics]
    if not valued:
        return None
    low, high = _y_range([w.metrics[metric] for w in valued], metric)
    low = min(low, 0.0)

    def y_of(value: float) -> float:
        return HEIGHT - BOTTOM - (value - low) / (high - low) * (HEIGHT - TOP - BOTTOM)

    slot = (WIDTH - LEFT - RIGHT) / len(valued)
    bars = []
    for i, w in enumerate(valued):
        value = w.metrics[metric]
        top = y_of(value)
        bars.append(
            Bar(
                x=LEFT + i * slot + slot * 0.15,
                y=top,
                width=slot * 0.7,
                height=max(0.5, y_of(low) - top),
                colour=COLOURS[i % len(COLOURS)],
                label=_key(w),
                text=f"{_key(w)}: {metric} {value:.4f} on {w.labelled} labelled of {w.predictions}",
            )
        )
    frame = Frame(WIDTH, HEIGHT, [], _y_ticks(low, high, y_of), f"live {metric} by version")
    return BarChart(frame, bars)


def _when(at: datetime) -> str:
    return at.strftime("%m-%d %H:%M")


def drift_by_feature(psi: dict[str, float], version: int) -> BarChart | None:
    """Each feature's PSI for one version, highest first (the line at 0.2: a significant
    shift)."""
    if not psi:
        return None
    high = max(0.25, max(psi.values()) * 1.1)

    def y_of(value: float) -> float:
        return HEIGHT - BOTTOM - value / high * (HEIGHT - TOP - BOTTOM)

    slot = (WIDTH - LEFT - RIGHT) / len(psi)
    bars = [
        Bar(
            x=LEFT + i * slot + slot * 0.15,
            y=y_of(value),
            width=slot * 0.7,
            height=max(0.5, y_of(0.0) - y_of(value)),
            colour=COLOURS[1] if value > SIGNIFICANT else COLOURS[0],
            label=name,
            text=f"{name}: PSI {value:.3f} (v{version}'s served inputs against its snapshot)",
        )
        for i, (name, value) in enumerate(psi.items())
    ]
    ticks = [Tick(y_of(high * i / 4), f"{high * i / 4:.2g}") for i in range(5)]
    title = f"v{version}: PSI of the inputs served, per feature (above {SIGNIFICANT:g}: a shift)"
    return BarChart(Frame(WIDTH, HEIGHT, [], ticks, title), bars)
