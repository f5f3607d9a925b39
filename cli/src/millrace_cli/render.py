"""How the CLI prints. Tables for people: rich tables on a terminal; piped or redirected,
plain aligned columns at their full width, one row a line (as ``kubectl get`` prints), so
``grep`` and ``sort`` see whole rows. JSON for scripts: the service's document as it came,
one document. Errors: one line on stderr."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console()
err = Console(stderr=True)
Cell = str | Text
"""A cell: a ``str`` is shown as it is (never read as markup); a ``Text`` carries a style."""
Doc = TypeVar("Doc")
GAP = "   "


@dataclass
class Grid:
    """A table as data: rendered by ``show`` for a terminal or for a pipe."""

    columns: Sequence[str]
    rows: list[Sequence[Cell]] = field(default_factory=list)
    title: str | None = None
    caption: str | None = None

    def add(self, *cells: Cell) -> None:
        self.rows.append(cells)


def styled(text: str, style: str) -> Text:
    return Text(text, style=style)


def one_line(text: str) -> str:
    """Newlines and runs of whitespace as single spaces."""
    return re.sub(r"\s+", " ", text).strip()


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def metrics_text(metrics: dict[str, Any]) -> str:
    return " ".join(f"{k}={fmt(v)}" for k, v in sorted(metrics.items())) or "-"


def to_terminal() -> bool:
    return console.is_terminal


def show(grid: Grid) -> None:
    if to_terminal():
        console.print(rich_table(grid))
    else:
        console.file.write(plain(grid))
        console.file.flush()


def rich_table(grid: Grid) -> Table:
    table = Table(
        *grid.columns,
        title=Text(grid.title) if grid.title else None,
        caption=Text(grid.caption) if grid.caption else None,
    )
    for row in grid.rows:
        table.add_row(*(cell if isinstance(cell, Text) else Text(cell) for cell in row))
    return table


def plain(grid: Grid) -> str:
    """Aligned columns, upper-case headers, no borders, no wrapping, no colour."""
    rows = [[c.upper() for c in grid.columns]]
    rows += [[one_line(c.plain if isinstance(c, Text) else c) for c in row] for row in grid.rows]
    widths = [max(cell_len(row[i]) for row in rows) for i in range(len(grid.columns))]
    lines = [grid.title] if grid.title else []
    for row in rows:
        padded = [
            cell + " " * (width - cell_len(cell)) for cell, width in zip(row, widths, strict=True)
        ]
        lines.append(GAP.join(padded).rstrip())
    if grid.caption:
        lines.append(grid.caption)
    return "\n".join(lines) + "\n"


def print_json(doc: Any) -> None:
    """One JSON document on stdout: highlighted on a terminal, plain when piped."""
    if to_terminal():
        console.print_json(data=doc)
    else:
        console.file.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        console.file.flush()


def emit(doc: Doc, *, as_json: bool, view: Callable[[Doc], Grid]) -> None:
    if as_json:
        print_json(doc)
    else:
        show(view(doc))


def say(line: str, *, to_err: bool = False) -> None:
    """A line of results, printed as it is (no markup, never wrapped)."""
    (err if to_err else console).print(Text(line), soft_wrap=True)


def print_error(message: str) -> None:
    # soft_wrap: one line whatever the terminal's width, so scripts can grep it
    err.print(Text("error:", style="red") + Text(f" {one_line(message)}"), soft_wrap=True)
