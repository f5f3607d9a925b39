"""What a site may fetch through the registry, with its own ``site:<id>`` credential and
no key to the object store: its manifest, and the artifacts that manifest names. Not
another site's manifest, not a model it was not given."""

from __future__ import annotations

from millrace_common.contracts import SiteManifest
from millrace_common.errors import NotFound
from millrace_common.objectstore import ObjectStore, key_of

from millrace_registry.adapters.manifests import manifest_key


class SiteObjects:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    def fetch(self, *, site: str, key: str, etag: str | None) -> tuple[bytes, str] | None:
        """The object and its ETag, None when it still has ``etag``; NotFound when the
        site may not have it (or it is not there)."""
        own = manifest_key(site)
        if key != own:
            manifest = SiteManifest.model_validate_json(self._store.get(own))
            if key not in {key_of(target.artifact_uri) for target in manifest.models}:
                raise NotFound(f"'{key}' is not an object of site '{site}'", field="key")
        return self._store.get_if_changed(key, etag)
