"""Who may call which features route (docs/security.md has the whole table)."""

from __future__ import annotations

from millrace_common.identity import OPEN_ROUTES, READERS, SCIENTIST, Rules

RULES = Rules(
    *OPEN_ROUTES,
    ("POST", "/v1/models/{model}/train-requests", {SCIENTIST}),
    ("GET", "/v1/models/{model}/drift", READERS),
)
