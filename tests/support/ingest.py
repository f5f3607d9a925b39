"""The centre's ingest as a process, for the integration tests."""

from __future__ import annotations

from pathlib import Path

from millrace_cli.processes import ProcessSpec, Supervisor, free_port, script


def start_ingest(supervisor: Supervisor, *, name: str, broker: str, project_dir: Path) -> int:
    """Start the centre's ingest on a free port; return the port once /readyz is 200."""
    port = free_port()
    supervisor.start(
        ProcessSpec(
            name=name,
            argv=[script("millrace-ingest")],
            env={
                "MILLRACE_BROKER": broker,
                "MILLRACE_PROJECT": str(project_dir),
                "MILLRACE_INGEST_PORT": str(port),
            },
            ready_url=f"http://127.0.0.1:{port}/readyz",
        )
    )
    return port


CUSTOMERS_SPEC = """
project: churn
datasets:
  customers:
    entity: customer_id
    time: as_of
    fields: {tenure: int, monthly_charges: float}
    labels: {churned: int}
feature_sets:
  customer_profile:
    dataset: customers
    label: churned
    features:
      - {name: charges_mean_90d, field: monthly_charges, agg: mean, window: 90d}
models:
  churn:
    feature_set: customer_profile
    task: classification
    estimator: sklearn.linear_model.LogisticRegression
"""
"""A churn project whose dataset names its entity and time fields its own way."""
