"""Projects that change without a restart: on SIGHUP a service reads its ``millrace.yaml``
again and, when it loads, applies it (new datasets and feature sets, a new feature-set
version, changed policies). A spec that does not load is refused: the service goes on
with the one it has, and says why (logged, counted). The trainer needs none of this: it
reads the project at every train request."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import Counter

from millrace_common.errors import InvalidInput
from millrace_common.project import Project, load_project

log = structlog.get_logger(__name__)
RELOADS = Counter(
    "millrace_project_reloads_total",
    "Project reloads on SIGHUP, by outcome (applied, refused: the spec did not load)",
    ["outcome"],
)


class ProjectReloader:
    """Reload ``folder``'s project on SIGHUP and hand it to ``apply``; ``current`` is the
    project in use (to log what changed)."""

    def __init__(
        self,
        folder: str | Path,
        *,
        current: Callable[[], Project],
        apply: Callable[[Project], Awaitable[None]],
    ) -> None:
        self._folder = folder
        self._current = current
        self._apply = apply
        self._running: asyncio.Task[bool] | None = None
        self._again = False
        self._installed = False

    def install(self) -> None:
        """Listen for SIGHUP on the running loop. Only a process's main thread receives
        signals: a loop in another thread (a test client's) does without."""
        if not hasattr(signal, "SIGHUP"):
            return
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.trigger)
        except (ValueError, RuntimeError):  # not the main thread
            log.info("project_reload_on_sighup_off", reason="the loop is not the main thread's")
            return
        self._installed = True

    def uninstall(self) -> None:
        if getattr(self, "_installed", False):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._installed = False

    def trigger(self) -> None:
        """A reload now; one asked for while another runs follows it (the file may have
        changed again)."""
        if self._running is not None and not self._running.done():
            self._again = True
            return
        self._running = asyncio.create_task(self._reload_until_settled(), name="project-reload")

    async def _reload_until_settled(self) -> bool:
        while True:
            self._again = False
            applied = await self.reload()
            if not self._again:
                return applied

    async def reload(self) -> bool:
        """Load and apply the project; False (logged, counted) when it does not load."""
        try:
            project = await asyncio.to_thread(load_project, self._folder)
        except InvalidInput as exc:
            RELOADS.labels("refused").inc()
            log.error("project_reload_refused", reason=exc.message, kept="the running project")
            return False
        changes = changed(self._current(), project)
        await self._apply(project)
        RELOADS.labels("applied").inc()
        log.info("project_reloaded", **changes)
        return True


def changed(before: Project, after: Project) -> dict[str, Any]:
    """What differs, by part: ``feature_sets_changed=['profile']`` and the like."""
    found: dict[str, Any] = {}
    for part in ("datasets", "feature_sets", "models"):
        old, new = getattr(before, part), getattr(after, part)
        for kind, names in (
            ("added", sorted(set(new) - set(old))),
            ("removed", sorted(set(old) - set(new))),
            ("changed", sorted(n for n in set(old) & set(new) if old[n] != new[n])),
        ):
            if names:
                found[f"{part}_{kind}"] = names
    return found
