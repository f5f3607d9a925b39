"""The services' HTTP APIs as the CLI calls them: JSON in and out, and every failure a
``CliError`` whose one line says what the service answered (its error body's message and
field) or why it could not be reached."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from millrace_common.settings import bearer_from_env

from millrace_cli.errors import CliError
from millrace_cli.render import one_line

Params = dict[str, Any]


class Unreachable(CliError):
    """No answer: refused, timed out, not a host."""


class ServiceError(CliError):
    """The service answered with an error status."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class Service:
    """One service's ``/v1`` API at a base URL. Path parts are quoted one by one, so a
    name with a slash or a space names one resource."""

    def __init__(
        self, base_url: str, *, timeout: float = 30.0, headers: dict[str, str] | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = bearer_from_env() if headers is None else headers
        """The credential: MILLRACE_TOKEN's unless given."""

    def url(self, *parts: str | int) -> str:
        return "/".join([self.base_url, "v1", *(quote(str(p), safe="") for p in parts)])

    def get(self, *parts: str | int, params: Params | None = None) -> Any:
        return self.request("GET", self.url(*parts), params=params)

    def post(self, *parts: str | int, body: Any) -> Any:
        return self.request("POST", self.url(*parts), body=body)

    def put(self, *parts: str | int, body: Any) -> Any:
        return self.request("PUT", self.url(*parts), body=body)

    def delete(self, *parts: str | int, params: Params | None = None) -> Any:
        return self.request("DELETE", self.url(*parts), params=params)

    def post_files(self, *parts: str | int, files: dict[str, Any], form: Params) -> Any:
        """A multipart body: ``files`` maps a part to ``(filename, stream)``, read as it is
        sent."""
        return self.request("POST", self.url(*parts), files=files, form=form)

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        body: Any = None,
        files: dict[str, Any] | None = None,
        form: Params | None = None,
        content: bytes | None = None,
        raw: bool = False,
    ) -> Any:
        """The answer's JSON (its bytes with ``raw``); a ``CliError`` in one line for a
        refusal or a service that does not answer."""
        try:
            response = httpx.request(
                method,
                url,
                params=params,
                json=body,
                files=files,
                data=form,
                content=content,
                timeout=self.timeout,
                headers=self.headers,
            )
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach {url}: {one_line(str(exc) or repr(exc))}") from None
        if response.status_code in (401, 403):
            raise ServiceError(
                f"{error_line(response)} (the credential is MILLRACE_TOKEN: a key from "
                "`millrace keys create`)",
                status=response.status_code,
            )
        if response.status_code >= 400:
            raise ServiceError(error_line(response), status=response.status_code)
        if raw:
            return response.content
        try:
            return response.json()
        except ValueError:
            raise CliError(
                f"{url} answered HTTP {response.status_code} with a body that is not JSON"
            ) from None


def error_line(response: httpx.Response) -> str:
    """``HTTP 422: a reason is required (field: reason)``: the platform's error body
    ``{"error", "message", "field"?, "errors"?}`` in one line; any other body's text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        cause = described(body)
    elif isinstance(body, dict) and isinstance(body.get("error"), str):
        cause = body["error"]  # the Open Inference Protocol's body, under /v2
    else:
        cause = response.text.strip()[:300] or response.reason_phrase
    return f"HTTP {response.status_code}: {one_line(cause)}"


def described(body: dict[str, Any]) -> str:
    problems = [p for p in body.get("errors") or [] if isinstance(p, dict)]
    if len(problems) > 1:
        return "; ".join(f"{p.get('field')}: {p.get('message')}" for p in problems)
    message: str = body["message"]
    field = body.get("field")
    if field and not message.startswith(f"{field}:"):
        return f"{message} (field: {field})"
    return message
