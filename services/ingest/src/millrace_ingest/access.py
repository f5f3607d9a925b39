"""Who may call which ingest route (docs/security.md has the whole table)."""

from __future__ import annotations

from millrace_common.identity import ANY_SITE, OPEN_ROUTES, PRODUCER, READERS, Rules

RULES = Rules(
    *OPEN_ROUTES,
    ("GET", "/v1/datasets", READERS | {PRODUCER}),
    ("GET", "/v1/datasets/{name}", READERS | {PRODUCER}),
    # records from producers, and from sites forwarding what they buffered
    ("POST", "/v1/datasets/{name}/records", {PRODUCER, ANY_SITE}),
    ("POST", "/v1/predictions", {ANY_SITE}),
    # ground truth that arrived later: from the producers of the data it labels
    ("POST", "/v1/datasets/{name}/labels", {PRODUCER, ANY_SITE}),
)
