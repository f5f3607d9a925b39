"""The churn example: customers of a subscription business, a weekly record each, and
whether they left. Deterministic for a seed, and its rule is known, so a model's quality
on it can be judged: ``millrace init`` writes it as a new project's sample data, and
``examples/churn`` generates its data file with it.

The rule: a customer's risk grows with support calls in the last four weeks, with the
monthly bill and on a month-to-month contract, and falls with tenure; a customer churns
in a week when risk plus noise passes a threshold (about one week in five)."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

CONTRACTS = ("month-to-month", "one-year", "two-year")
COLUMNS = (
    "customer_id",
    "as_of",
    "tenure_weeks",
    "monthly_charges",
    "total_charges",
    "support_calls",
    "contract",
    "paperless_billing",
    "churned",
)

SPEC = """\
# Customer churn: a weekly record per customer; label = the customer left that week.
project: churn

datasets:
  customers:
    entity: customer_id        # the dataset's own names for the entity and the time
    time: as_of
    fields:
      tenure_weeks: int
      monthly_charges: float
      total_charges: float
      support_calls: int        # calls this week
      contract: str             # month-to-month, one-year, two-year
      paperless_billing: bool
    labels:
      churned: int              # 0 or 1

feature_sets:
  customer_profile:
    version: 1
    dataset: customers
    label: churned
    features:
      - {name: tenure_weeks, field: tenure_weeks, agg: latest}
      - {name: monthly_charges, field: monthly_charges, agg: latest}
      - {name: total_charges, field: total_charges, agg: latest}
      - {name: support_calls_28d, field: support_calls, agg: sum, window: 28d}
      - {name: support_calls_max_28d, field: support_calls, agg: max, window: 28d}
      - {name: paperless_billing, field: paperless_billing, agg: latest}
      # a category as numbers: this week's record is (1) or is not (0) of that contract
      - {name: month_to_month, field: contract, agg: count, equals: month-to-month, window: 7d}
      - {name: two_year, field: contract, agg: count, equals: two-year, window: 7d}
      - {name: charges_per_call_28d, ratio: [monthly_charges, support_calls_28d]}  # null: 0 calls

models:
  churn:
    feature_set: customer_profile
    task: classification
    estimator: sklearn.ensemble.RandomForestClassifier
    params: {n_estimators: 60, max_depth: 6}
    seed: 7
    metric: roc_auc
    direction: maximize
    promotion_margin: 0.0
    holdout_fraction: 0.2
    retrain:
      every_n_labelled_rows: 2000
      at_most_every: 1m
"""


README = """\
# churn

A Millrace project (`millrace init` wrote it): customers of a subscription business, a
weekly record each in `customers.csv`, and whether they left that week.

```bash
millrace up --project .                                   # the platform, for this project
millrace ingest file customers.csv --dataset customers  # in another terminal, the key exported
# once `churn v1 is in production`:
curl -X POST localhost:8030/v1/models/churn/predict -H "Authorization: Bearer $MILLRACE_TOKEN" \\
  -H 'content-type: application/json' -d '{"entity_ids": ["c-0007"]}'
```

The data's rule is known, so a model can be judged: a customer's risk grows with support
calls in the last four weeks, with the monthly bill and on a month-to-month contract, and
falls with tenure; a customer churns when risk plus noise passes a threshold (about one
week in five). Edit `millrace.yaml` (datasets, feature sets, models; see the platform's
docs/projects.md) and send your own data the same way.
"""


def churn_records(
    *, customers: int = 400, weeks: int = 10, seed: int = 11, start: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """``weeks`` weekly records of ``customers`` customers, in time order."""
    rng = random.Random(seed)
    begin = start or datetime(2026, 6, 1, tzinfo=UTC)
    people = [_customer(i, rng) for i in range(customers)]
    for week in range(weeks):
        at = (begin + timedelta(weeks=week)).isoformat().replace("+00:00", "Z")
        for person in people:
            yield _week(person, at, rng)


def write_csv(path: Path, records: Iterator[dict[str, Any]]) -> int:
    """The records as a CSV file with a header; how many were written."""
    count = 0
    with path.open("w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=COLUMNS)
        out.writeheader()
        for record in records:
            out.writerow(record)
            count += 1
    return count


def _customer(index: int, rng: random.Random) -> dict[str, Any]:
    return {
        "customer_id": f"c-{index:04d}",
        "tenure": rng.randint(1, 150),
        "charges": round(rng.uniform(20, 110), 2),
        "contract": rng.choices(CONTRACTS, weights=(5, 3, 2))[0],
        "paperless": rng.random() < 0.6,
        "calls": [0, 0, 0],  # the three weeks before this one
        "total": 0.0,
    }


def _week(person: dict[str, Any], at: str, rng: random.Random) -> dict[str, Any]:
    calls = min(6, int(rng.expovariate(1.0) * (1.6 if person["charges"] > 80 else 0.8)))
    recent = sum(person["calls"]) + calls
    person["tenure"] += 1
    person["total"] = round(person["total"] + person["charges"], 2)
    risk = (
        0.35 * recent
        + 0.02 * (person["charges"] - 60)
        + (0.8 if person["contract"] == "month-to-month" else 0.0)
        - 0.012 * person["tenure"]
    )
    churned = int(risk + rng.gauss(0, 0.5) > 1.4)
    person["calls"] = [*person["calls"][1:], calls]
    return {
        "customer_id": person["customer_id"],
        "as_of": at,
        "tenure_weeks": person["tenure"],
        "monthly_charges": person["charges"],
        "total_charges": person["total"],
        "support_calls": calls,
        "contract": person["contract"],
        "paperless_billing": "true" if person["paperless"] else "false",
        "churned": churned,
    }
