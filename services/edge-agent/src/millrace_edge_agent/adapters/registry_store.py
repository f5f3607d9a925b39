"""A site's manifest and models read through the registry
(``GET /v1/sites/<site>/objects/<key>``) with the site's own ``site:<id>`` key, so that a
site holds no key to the object store and can read nothing of another site's. Selected
with ``MILLRACE_OBJECT_STORE=registry+http://registry:8020``."""

from __future__ import annotations

from urllib.parse import quote

import httpx
from millrace_common.errors import NotFound, Unauthorized, Unavailable

REGISTRY_SCHEME = "registry+"


class RegistryStore:
    def __init__(
        self,
        base_url: str,
        *,
        site: str,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = f"{REGISTRY_SCHEME}{base_url.rstrip('/')}"
        self._base = f"{base_url.rstrip('/')}/v1/sites/{quote(site, safe='')}/objects/"
        self._client = client or httpx.Client(headers=headers, timeout=timeout)

    def get(self, key: str) -> bytes:
        found = self.get_if_changed(key, None)
        assert found is not None  # no ETag sent: never a 304
        return found[0]

    def get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None:
        where = self._base + quote(key, safe="/")
        try:
            answer = self._client.get(where, headers={"If-None-Match": etag} if etag else {})
        except httpx.HTTPError as exc:
            raise Unavailable(f"the registry is unreachable: {exc!r}") from None
        if answer.status_code == 304:
            return None
        if answer.status_code == 404:
            raise NotFound(f"no object {key}")
        if answer.status_code in (401, 403):
            # the site's key is wrong or revoked: nothing it fetches can be trusted to come
            raise Unauthorized(f"the registry refused this site's credential: {answer.text[:200]}")
        if answer.status_code != 200:
            raise Unavailable(f"the registry answered {answer.status_code} for {key}")
        return answer.content, answer.headers.get("etag", "")

    def close(self) -> None:
        self._client.close()
