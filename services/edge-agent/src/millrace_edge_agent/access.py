"""Who may call which edge-agent route: keys from its keys file or OIDC tokens, checked at
the site with no call to the centre (docs/security.md has the whole table)."""

from __future__ import annotations

from millrace_common.identity import (
    DEPLOYER,
    OPEN_ROUTES,
    PRODUCER,
    READERS,
    SCIENTIST,
    Rules,
)

PREDICTORS = frozenset({PRODUCER, SCIENTIST, DEPLOYER})
RULES = Rules(
    *OPEN_ROUTES,
    ("POST", "/v1/models/{name}/predict", PREDICTORS),
    ("GET", "/v1/models", PREDICTORS | READERS),
    ("POST", "/v1/datasets/{name}/records", {PRODUCER}),
    ("GET", "/v1/dead-letters", READERS),
    ("GET", "/v1/status", READERS),
)
