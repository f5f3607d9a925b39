"""The batch sender every connector shares: records to ingest's REST API in batches.

Everything before the first bad record is sent (a batch ingest refuses is re-sent without
the bad record and what follows it), then the error names the record and how many were sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from millrace_common.errors import InvalidInput, MillraceError
from millrace_common.project import Dataset
from millrace_common.settings import bearer_from_env


@dataclass(frozen=True)
class Item:
    """One record to send, ``where`` it came from (for errors), and what to remember once
    ingest acknowledged it (the SQL connector's cursor)."""

    where: str
    record: dict[str, Any]
    checkpoint: Any = None


class ConnectorError(MillraceError):
    """A connector stopped; ``sent`` records were acknowledged before it did."""

    code = "connector_error"

    def __init__(self, message: str, *, sent: int) -> None:
        super().__init__(message)
        self.sent = sent


class RecordRejected(InvalidInput):
    def __init__(self, message: str, *, accepted: int) -> None:
        super().__init__(message)
        self.accepted = accepted


class IngestClient:
    """ingest's REST API, as the connectors use it."""

    def __init__(
        self, url: str, *, timeout: float = 60.0, http: httpx.Client | None = None
    ) -> None:
        self.url = url
        self._http = http or httpx.Client(base_url=url, timeout=timeout, headers=bearer_from_env())

    def __enter__(self) -> IngestClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._http.close()

    def dataset(self, name: str) -> Dataset:
        response = self._request("GET", f"/v1/datasets/{name}")
        if response.status_code != 200:
            raise InvalidInput(_message(response), field="dataset")
        try:
            described = response.json()
            spec = Dataset.model_validate({k: v for k, v in described.items() if k != "name"})
        except (ValueError, AttributeError):
            raise InvalidInput(f"{self.url} does not answer as ingest does") from None
        spec.name = name
        return spec

    def post(self, dataset: str, items: list[Item]) -> None:
        """Send ``items``; RecordRejected names the first bad one (none of them is sent)."""
        response = self._request(
            "POST", f"/v1/datasets/{dataset}/records", json={"records": [i.record for i in items]}
        )
        if response.status_code == 422:
            index, text = _first_rejection(response)
            if index is None:
                raise InvalidInput(text)
            raise RecordRejected(f"{items[index].where}: {text}", accepted=index)
        if response.status_code >= 400:
            raise InvalidInput(f"ingest answered {response.status_code}: {_message(response)}")

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise InvalidInput(f"cannot reach ingest at {self.url}: {exc}") from None


def send_all(
    *,
    client: IngestClient,
    dataset: str,
    items: Iterable[Item],
    batch: int,
    on_ack: Callable[[list[Item]], None] = lambda _items: None,
    progress: Callable[[int], None] = lambda _sent: None,
) -> int:
    """Send ``items`` in batches, calling ``on_ack`` after ingest acknowledged each.
    Returns how many were sent; any error is a ConnectorError carrying that count."""
    sent = 0

    def flush(pending: list[Item]) -> None:
        nonlocal sent
        if not pending:
            return
        try:
            client.post(dataset, pending)
        except RecordRejected as exc:
            # keep the promise "everything before the bad record is in"
            flush(pending[: exc.accepted])
            raise
        sent += len(pending)
        on_ack(pending)
        progress(sent)

    pending: list[Item] = []

    def flush_pending() -> None:
        taken = pending[:]
        pending.clear()
        flush(taken)

    try:
        for item in _guarded(items, flush=flush_pending):
            pending.append(item)
            if len(pending) >= batch:
                flush_pending()
        flush_pending()
    except MillraceError as exc:
        raise ConnectorError(exc.message, sent=sent) from None
    return sent


def _guarded(items: Iterable[Item], *, flush: Callable[[], None]) -> Iterator[Item]:
    """``items``, but when the source fails (a bad line, a lost connection) what was read
    before it is sent first."""
    iterator = iter(items)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except MillraceError:
            flush()
            raise
        yield item


def _first_rejection(response: httpx.Response) -> tuple[int | None, str]:
    """``records[3].temperature`` → (3, "temperature: expected float, got str")."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text
    errors = body.get("errors") or []
    located = [e for e in errors if str(e.get("field", "")).startswith("records[")]
    if not located:
        return None, str(body.get("message") or response.text)
    first = min(located, key=lambda e: _index(e["field"]))
    field = first["field"]
    name = field[field.index("]") + 2 :]
    text = f"{name}: {first['message']}" if name else first["message"]
    return _index(field), text


def _index(field: str) -> int:
    return int(field[len("records[") : field.index("]")])


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message") or response.text)
    except ValueError:
        return response.text
