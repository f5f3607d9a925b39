"""``millrace ingest file``: the file connector, sent to ingest over REST."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from millrace_common.errors import InvalidInput
from millrace_common.project import Dataset
from millrace_ingest.connectors.files import read_records
from rich.console import Console


def send_file(*, path: Path, dataset: str, url: str, batch: int, console: Console) -> int:
    with httpx.Client(base_url=url, timeout=60) as client:
        described = client.get(f"/v1/datasets/{dataset}")
        if described.status_code != 200:
            raise InvalidInput(described.json().get("message", described.text))
        spec = Dataset.model_validate({k: v for k, v in described.json().items() if k != "name"})
        spec.name = dataset
        sent = 0
        pending: list[tuple[int, dict[str, Any]]] = []
        for line, record in read_records(path, spec):
            pending.append((line, record))
            if len(pending) == batch:
                sent += _post(client, dataset, pending)
                pending = []
                console.print(f"  {sent} records sent", end="\r")
        if pending:
            sent += _post(client, dataset, pending)
    return sent


def _post(client: httpx.Client, dataset: str, pending: list[tuple[int, dict[str, Any]]]) -> int:
    response = client.post(
        f"/v1/datasets/{dataset}/records", json={"records": [record for _, record in pending]}
    )
    if response.status_code == 422:
        raise InvalidInput(_locate(response.json(), pending))
    response.raise_for_status()
    return len(pending)


def _locate(body: dict[str, Any], pending: list[tuple[int, dict[str, Any]]]) -> str:
    """Turn ``records[3].temperature`` into the file's line number."""
    field = str(body.get("field", ""))
    if field.startswith("records[") and "]" in field:
        index = int(field[len("records[") : field.index("]")])
        name = field[field.index("]") + 2 :]
        return f"line {pending[index][0]}: {name}: {body['errors'][0]['message']}"
    return str(body.get("message"))
