"""Millrace from Python: ``from millrace import Client``.

    client = Client()                      # MILLRACE_*_URL and MILLRACE_TOKEN, else local
    client.send("customers", frame)        # records in (a DataFrame or dicts)
    train = client.training_frame("customer_profile", entities)  # point in time
    with client.run("churn", params={"C": 1.0}) as run:
        run.log_metrics(f1=0.71)
        run.log_artifact("confusion.png")
    version = client.upload("churn", "model.onnx", samples=samples)
    client.promote("churn", version["version"], reason="beats production offline")
    client.predict("churn", entity_ids=["c-0007"])

docs/client.md has the whole tour."""

from millrace.client import Client, Error, Run

__all__ = ["Client", "Error", "Run"]
