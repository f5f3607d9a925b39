"""What every page shares: the template environment and its filters, the route class that
turns platform errors into HTML error pages, paging, and the copyable commands."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from millrace_common.errors import MillraceError
from millrace_common.http import status_of
from pydantic import BaseModel

from millrace_registry.schemas import Site

TEMPLATES = Path(__file__).parent / "templates"
PAGE_SIZE = 25
MAX_PAGE = 200
TITLES = {404: "Not found", 409: "Conflict", 422: "Invalid request"}


@cache
def environment() -> Environment:
    """Autoescaping everywhere: names, tags and reasons are user input. A key missing from a
    lineage document (older trainers recorded less) renders empty rather than failing."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when,
        num=num,
        short=short,
        pretty=pretty,
        seconds=seconds,
        duration=duration,
        plain=plain,
        in_sync=in_sync,
    )
    return env


def render(template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code)


def error_page(status: int, message: str, *, field: str | None = None) -> HTMLResponse:
    title = TITLES.get(status, "Error")
    return render("error.html", status_code=status, title=title, message=message, field=field)


class PageRoute(APIRoute):
    """A UI route: platform errors and invalid query parameters become HTML pages with the
    status the REST API would answer (404 naming what is missing, 422 naming the field)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except MillraceError as exc:
                return error_page(status_of(exc), exc.message, field=exc.field)
            except RequestValidationError as exc:
                return _invalid(exc)

        return page


def _invalid(exc: RequestValidationError) -> HTMLResponse:
    errors = [(str(err["loc"][-1]), str(err["msg"])) for err in exc.errors()]
    message = "; ".join(f"{field}: {msg}" for field, msg in errors)
    return error_page(422, message, field=", ".join(dict.fromkeys(f for f, _ in errors)))


# -- paging --------------------------------------------------------------------------


@dataclass(frozen=True)
class Pager:
    """Where a page sits in a list, with links that keep the page's other parameters."""

    request: Request
    offset: int
    limit: int
    total: int

    @property
    def first(self) -> int:
        return min(self.offset + 1, self.total)

    @property
    def last(self) -> int:
        return min(self.offset + self.limit, self.total)

    @property
    def previous(self) -> str | None:
        if self.offset == 0:
            return None
        return self._link(max(self.offset - self.limit, 0))

    @property
    def next(self) -> str | None:
        return self._link(self.offset + self.limit) if self.last < self.total else None

    def _link(self, offset: int) -> str:
        url = self.request.url.include_query_params(offset=offset, limit=self.limit)
        return f"{url.path}?{url.query}"


# -- commands a user copies ----------------------------------------------------------


@dataclass(frozen=True)
class Command:
    label: str
    cli: str
    curl: str


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def version_commands(
    *, base: str, name: str, version: int, status: str, production: int | None
) -> list[Command]:
    """Promote a ready version that is not in production; roll back to an earlier one."""
    if status != "ready" or version == production:
        return []
    url = f"{base}/v1/models/{quote(name, safe='')}"
    registry = f"--registry {shlex.quote(base)}"
    body = shlex.quote(json.dumps({"version": version, "reason": "why"}))
    header = "-H 'content-type: application/json'"
    found = [
        Command(
            label=f"promote v{version} to production",
            cli=f"millrace models promote {shlex.quote(name)} {version} --reason 'why' {registry}",
            curl=f"curl -X POST {url}/aliases/production {header} -d {body}",
        )
    ]
    if production is not None and version < production:
        found.append(
            Command(
                label=f"roll production back to v{version}",
                cli=f"millrace models rollback {shlex.quote(name)} --to {version} "
                f"--reason 'why' {registry}",
                curl=f"curl -X POST {url}/rollback {header} -d {body}",
            )
        )
    return found


# -- filters -------------------------------------------------------------------------


def when(value: datetime | str | None) -> str:
    """A timestamp in UTC to the second (the API's ISO strings are parsed first)."""
    if value is None or value == "":
        return "-"
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def num(value: Any) -> str:
    """Metrics and params: floats to four decimals (or four significant digits when large)."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value).lower()
    if isinstance(value, float):
        if abs(value) >= 10_000 or (value != 0 and abs(value) < 0.0001):
            return f"{value:.4g}"
        return f"{value:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def seconds(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f} s"


def duration(value: float) -> str:
    """Seconds as the spec writes them: ``1h``, ``10m``, ``90s``, ``1d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{int(value // size)}{unit}"
    return f"{value:g}s"


def short(value: str | None, length: int = 12) -> str:
    return "-" if not value else value[:length]


def plain(value: Any) -> Any:
    """A document as the JSON the API answers (objects as mappings, for the macros)."""
    return value.model_dump(mode="json", by_alias=True) if isinstance(value, BaseModel) else value


def pretty(value: Any) -> str:
    return json.dumps(plain(value), indent=2, sort_keys=True, default=str)


def in_sync(site: Site) -> bool | None:
    """Every model the site follows at the version it should run (None: it follows none)."""
    return all(s.in_sync for s in site.status) if site.status else None
