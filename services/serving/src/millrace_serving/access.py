"""Who may call which serving route (docs/security.md has the whole table). The Open
Inference Protocol's server metadata and health stay open, as its clients expect."""

from __future__ import annotations

from millrace_common.identity import (
    DEPLOYER,
    OPEN_ROUTES,
    PRODUCER,
    PUBLIC,
    READERS,
    SCIENTIST,
    Rules,
)

ACCESS_ERRORS = (401, 403, 413, 503)
"""What the layers in front of the app may answer on a protected route: the guard's
401/403 (503 while credentials cannot be checked) and the body limit's 413."""
PREDICTORS = frozenset({PRODUCER, SCIENTIST, DEPLOYER})
RULES = Rules(
    *OPEN_ROUTES,
    ("GET", "/v2", PUBLIC),
    ("GET", "/v2/health/live", PUBLIC),
    ("GET", "/v2/health/ready", PUBLIC),
    ("POST", "/v1/models/{name}/predict", PREDICTORS),
    ("GET", "/v1/models", PREDICTORS | READERS),
    ("POST", "/v2/models/**", PREDICTORS),
    ("GET", "/v2/models/**", PREDICTORS | READERS),
    ("POST", "/v2/repository/index", PREDICTORS | READERS),
    ("POST", "/v1/admin/models/{name}/load", {DEPLOYER}),
    ("POST", "/v1/admin/models/{name}/unload", {DEPLOYER}),
    ("POST", "/v1/admin/models/{name}/reload", {DEPLOYER}),
    ("GET", "/v1/admin/traffic", READERS),
)
