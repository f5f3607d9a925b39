"""Who may call which features route (docs/security.md has the whole table)."""

from __future__ import annotations

from millrace_common.identity import OPEN_ROUTES, READERS, SCIENTIST, Rules

RULES = Rules(
    *OPEN_ROUTES,
    ("POST", "/v1/models/{model}/train-requests", {SCIENTIST}),
    ("GET", "/v1/models/{model}/drift", READERS),
    # reads of the offline store, for training frames: as a GET would be
    ("POST", "/v1/feature-sets/{name}/historical-features", READERS),
)
