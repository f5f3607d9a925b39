"""The trainer's routes are its health and metrics only: all open."""

from __future__ import annotations

from millrace_common.identity import OPEN_ROUTES, Rules

RULES = Rules(*OPEN_ROUTES)
