"""Who may call which registry route (docs/security.md has the whole table)."""

from __future__ import annotations

from millrace_common.identity import DEPLOYER, OPEN_ROUTES, READERS, SCIENTIST, TRAINER, Rules

RULES = Rules(
    *OPEN_ROUTES,
    # a site: its own heartbeats and status, nothing of another site's
    ("POST", "/v1/sites/{site}/heartbeats", {"site:{site}"}),
    ("GET", "/v1/sites/{site}", READERS | {"site:{site}"}),
    ("GET", "/v1/sites/{site}/status", READERS | {"site:{site}"}),
    # its manifest and the models it names, without a key to the object store
    ("GET", "/v1/sites/{site}/objects/**", READERS | {"site:{site}"}),
    ("GET", "/v1/**", READERS),
    ("GET", "/", READERS),
    ("GET", "/ui", READERS),
    ("GET", "/ui/**", READERS),
    # versions: candidates from scientists; ready ones only from the trainer (lifecycle)
    ("POST", "/v1/models/{name}/versions", {SCIENTIST, TRAINER}),
    ("POST", "/v1/models/{name}/versions/{version}/checks", {TRAINER}),
    # a model of one's own: stored, then evaluated and registered by the trainer
    ("POST", "/v1/models/{name}/uploads", {SCIENTIST}),
    ("PUT", "/v1/models/{name}/runs/{run_id}", {SCIENTIST, TRAINER}),
    ("PUT", "/v1/models/{name}/runs/{run_id}/artifacts/**", {SCIENTIST, TRAINER}),
    ("PATCH", "/v1/models/{name}", {SCIENTIST, DEPLOYER}),
    ("PATCH", "/v1/models/{name}/versions/{version}", {SCIENTIST, DEPLOYER}),
    # what runs where: deployers
    ("POST DELETE", "/v1/models/{name}/aliases/{alias}", {DEPLOYER}),
    ("POST", "/v1/models/{name}/rollback", {DEPLOYER}),
    ("PUT", "/v1/models/{name}/traffic", {DEPLOYER}),
    ("PUT DELETE", "/v1/sites/{site}/deployments/{model}", {DEPLOYER}),
    ("PUT", "/v1/site-groups/{group}", {DEPLOYER}),
    ("PUT DELETE", "/v1/site-groups/{group}/deployments/{model}", {DEPLOYER}),
)
