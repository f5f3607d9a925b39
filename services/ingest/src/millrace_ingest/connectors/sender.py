"""The batch sender every connector shares: records to ingest's REST API in batches.

A bad record (a line the reader cannot make a record of, or one ingest refuses) is counted
with its reason and the rest goes on, up to ``max_refused`` of them; one more stops the
run after everything before it was sent, and the error names the record and how many were
sent. A batch ingest refuses is re-sent without the bad record, in order, so the records
around it still arrive once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from millrace_common.errors import InvalidInput, MillraceError
from millrace_common.project import Dataset
from millrace_common.settings import bearer_from_env


@dataclass(frozen=True)
class Item:
    """One record to send, ``where`` it came from (for errors), and what to remember once
    ingest acknowledged it (the SQL connector's cursor). ``refusal``: why the source's
    line is no record (it is counted, never sent)."""

    where: str
    record: dict[str, Any]
    checkpoint: Any = None
    refusal: str | None = None


@dataclass(frozen=True)
class Refusal:
    where: str
    reason: str
    record: dict[str, Any]


@dataclass
class Sent:
    """What a connector run did: records sent, and those refused with their reasons."""

    sent: int = 0
    refused: list[Refusal] = field(default_factory=list)

    def reasons(self, most: int = 3) -> str:
        """``tenure_weeks: expected int (7), as_of: required (3)``: the commonest reasons."""
        counted = Counter(_without_value(r.reason) for r in self.refused)
        shown = [f"{reason} ({n})" for reason, n in counted.most_common(most)]
        others = len(counted) - most
        return ", ".join(shown) + (f" and {others} other reasons" if others > 0 else "")


class ConnectorError(MillraceError):
    """A connector stopped; ``sent`` records were acknowledged before it did, ``refused``
    counted before the one that stopped it."""

    code = "connector_error"

    def __init__(self, message: str, *, sent: int, refused: int = 0) -> None:
        super().__init__(message)
        self.sent = sent
        self.refused = refused


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
    max_refused: int = 0,
    on_ack: Callable[[list[Item]], None] = lambda _items: None,
    progress: Callable[[int], None] = lambda _sent: None,
) -> Sent:
    """Send ``items`` in batches, calling ``on_ack`` after ingest acknowledged each (and
    for each refused record, so a cursor moves past it). Refused records are counted with
    their reasons up to ``max_refused``; any error is a ConnectorError carrying the counts."""
    done = Sent()

    def refuse(item: Item, reason: str) -> None:
        if len(done.refused) >= max_refused:
            message = f"{item.where}: {reason}"
            if max_refused:
                message += f" (more than --max-refused {max_refused} records refused)"
            raise ConnectorError(message, sent=done.sent, refused=len(done.refused))
        done.refused.append(Refusal(item.where, reason, item.record))
        on_ack([item])

    def post(chunk: list[Item]) -> None:
        """Send ``chunk`` (every item a record); what ingest refuses is counted."""
        while chunk:
            try:
                client.post(dataset, chunk)
            except RecordRejected as exc:
                post(chunk[: exc.accepted])  # everything before the bad record is in
                bad = chunk[exc.accepted]
                refuse(bad, exc.message.removeprefix(f"{bad.where}: "))
                chunk = chunk[exc.accepted + 1 :]
                continue
            done.sent += len(chunk)
            on_ack(chunk)
            progress(done.sent)
            return

    def flush(pending: list[Item]) -> None:
        start = 0
        for i, item in enumerate(pending):
            if item.refusal is not None:
                post(pending[start:i])
                refuse(item, item.refusal)
                start = i + 1
        post(pending[start:])

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
    except ConnectorError:
        raise
    except MillraceError as exc:
        raise ConnectorError(exc.message, sent=done.sent, refused=len(done.refused)) from None
    return done


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


def _without_value(reason: str) -> str:
    """A reason without the value that broke it (``expected int, got 'x'`` counts with
    ``expected int, got 'y'``)."""
    return reason.split(", got ", 1)[0]


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message") or response.text)
    except ValueError:
        return response.text
