"""Traffic policies: which loaded version answers a request for a model's production.

- ``canary:P`` — P% of requests go to the ``challenger`` alias, the rest to production
  (at random, or by a hash of the request's routing key when it carries one);
- ``shadow`` — production answers, every request is mirrored to ``challenger`` after the
  answer (both predictions are logged);
- ``sticky:P`` — requests are bucketed by a hash of their routing key, so the same key
  always lands on the same side; P% of keys go to the challenger, keyless requests stay
  on production.

The routing key is the request's ``key`` (X-Millrace-Routing-Key header, the body's
``"key"``, the V2 ``routing_key`` parameter) or, with ``key_field=entity_id``, its first
entity id. A request that names an alias other than production, or a pinned version,
bypasses the policy. Policies come from the registry (``GET /v1/models/{name}/traffic``,
see ``traffic_follower``); ``MILLRACE_SERVING_TRAFFIC`` overrides it for the models it names.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from millrace_common.dataplane import DEFAULT_ALIAS, Choice, Route, Selector, slot_selector
from millrace_common.errors import InvalidInput
from millrace_common.scoring import ModelSlots

from millrace_serving.metrics import ROUTED

Mode = Literal["canary", "shadow", "sticky"]
KeyField = Literal["key", "entity_id"]
SPLITS = frozenset({"canary", "sticky"})
KEY_FIELDS = frozenset({"key", "entity_id"})


@dataclass(frozen=True)
class Policy:
    mode: Mode
    percent: float = 0.0
    challenger: str = "challenger"
    key_field: KeyField = "key"

    def describe(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "challenger_alias": self.challenger,
            "percent": self.percent if self.mode in SPLITS else None,
            "key_field": self.key_field,
        }


def parse_policies(spec: str) -> dict[str, Policy]:
    """``"machine-failure:canary:10,spindle:shadow,lathe:sticky:5"`` → a policy per model."""
    policies: dict[str, Policy] = {}
    for item in (p.strip() for p in spec.split(",")):
        if not item:
            continue
        name, _, rest = item.partition(":")
        mode, _, percent = rest.partition(":")
        if mode == "shadow" and name and not percent:
            policies[name] = Policy(mode="shadow")
        elif mode in SPLITS and name and _is_percent(percent):
            policies[name] = Policy(
                mode="canary" if mode == "canary" else "sticky", percent=float(percent)
            )
        else:
            raise InvalidInput(
                f"MILLRACE_SERVING_TRAFFIC: {item!r} is not "
                f"name:canary:<0-100>, name:sticky:<0-100> or name:shadow",
                field="traffic",
            )
    return policies


class BadPolicy(ValueError):
    """A registry policy serving cannot apply; ``field`` names what is wrong."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def policy_from_registry(doc: Mapping[str, Any]) -> Policy | None:
    """The registry's ``GET /v1/models/{name}/traffic`` body → a policy (None: mode none)."""
    mode = doc.get("mode")
    if mode == "none":
        return None
    if mode not in ("canary", "shadow", "sticky"):
        raise BadPolicy(f"unknown mode {mode!r}", field="mode")
    challenger = doc.get("challenger_alias") or "challenger"
    if not isinstance(challenger, str):
        raise BadPolicy(f"{challenger!r} is not an alias", field="challenger_alias")
    key_field = doc.get("key_field") or "key"
    if key_field not in KEY_FIELDS:
        raise BadPolicy(f"{key_field!r} is not one of {sorted(KEY_FIELDS)}", field="key_field")
    if mode == "shadow":
        return Policy(mode="shadow", challenger=challenger)
    percent = doc.get("percent")
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100:
        raise BadPolicy(f"{percent!r} is not a number from 0 to 100", field="percent")
    return Policy(
        mode=mode,
        percent=float(percent),
        challenger=challenger,
        key_field="entity_id" if key_field == "entity_id" else "key",
    )


def _is_percent(value: str) -> bool:
    try:
        return 0.0 <= float(value) <= 100.0
    except ValueError:
        return False


def bucket(key: str | None, rng: Callable[[], float]) -> float:
    """A number in [0, 1): a hash of the key when there is one (sticky), else random."""
    if key is None:
        return rng()
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


class TrafficSelector:
    def __init__(
        self,
        slots: ModelSlots,
        policies: dict[str, Policy],
        *,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.slots = slots
        self.policies = dict(policies)
        self.rng = rng
        self._plain: Selector = slot_selector(slots)

    def set_policy(self, name: str, policy: Policy | None) -> None:
        """Apply ``policy`` to ``name`` from the next request on (None: no policy)."""
        if policy is None:
            self.policies.pop(name, None)
        else:
            self.policies[name] = policy

    def __call__(self, route: Route) -> Choice:
        base = self._plain(route)
        policy = self.policies.get(route.name)
        if (
            policy is None
            or route.version is not None
            or (route.alias or DEFAULT_ALIAS) != DEFAULT_ALIAS
        ):
            return base
        challenger = self.slots.find(route.name, policy.challenger)
        if challenger is None:
            return base
        if policy.mode == "shadow":
            ROUTED.labels(route.name, base.alias, "shadow").inc()
            return Choice(
                model=base.model,
                alias=base.alias,
                shadow=challenger,
                shadow_alias=policy.challenger,
            )
        key = route.entity if policy.key_field == "entity_id" else route.key
        if (key is not None or policy.mode == "canary") and bucket(
            key, self.rng
        ) * 100 < policy.percent:
            ROUTED.labels(route.name, policy.challenger, policy.mode).inc()
            return Choice(model=challenger, alias=policy.challenger)
        ROUTED.labels(route.name, base.alias, policy.mode).inc()
        return base
