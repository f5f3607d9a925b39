"""``millrace models drift NAME``: how far the model's recent feature rows have moved from
its latest snapshot (PSI per feature, from the features service), and whether the
model's drift policy would retrain it now."""

from __future__ import annotations

from millrace_cli.client import Service
from millrace_cli.options import FEATURES, FeaturesOpt, JsonOpt
from millrace_cli.render import emit
from millrace_cli.views import drift_grid


def drift(name: str, features_url: FeaturesOpt = FEATURES, as_json: JsonOpt = False) -> None:
    """PSI per feature of the recent window against the latest snapshot."""
    found = Service(features_url).get("models", name, "drift")
    emit(found, as_json=as_json, view=drift_grid)
