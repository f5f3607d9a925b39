"""The registry's check that a version's artifact is what its registration claims: an
object of this registry's store (never a path on some host, never another bucket), of the
claimed size, with the claimed sha256. Serving, sites and the trainer's lineage all trust
that digest, so it is checked where it enters the catalog."""

from __future__ import annotations

import hashlib

from millrace_common.errors import InvalidInput, MillraceError, NotFound
from millrace_common.objectstore import ObjectStore, get_verified, key_of

CHUNK = 1024 * 1024


class Artifacts:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    def verify(self, *, uri: str, sha256: str, size: int) -> None:
        """Raise ``InvalidInput`` naming the field that does not hold."""
        key = self._key_in_store(uri)
        try:
            info = self._store.stat(key)
        except NotFound:
            raise InvalidInput(
                f"no object {key} in the registry's store {self._store.url}: upload it first",
                field="artifact_uri",
            ) from None
        if info.size != size:
            raise InvalidInput(f"the artifact has {info.size} bytes, not {size}", field="size")
        actual = self._digest(key)
        if actual != sha256:
            raise InvalidInput(f"the artifact's sha256 is {actual}", field="sha256")

    def read(self, *, uri: str, sha256: str) -> bytes:
        """A registered version's file, its digest checked (a mismatch is an
        ``IntegrityError``: the store changed under the catalog)."""
        return get_verified(self._store, self._key_in_store(uri), sha256)

    def _key_in_store(self, uri: str) -> str:
        outside = InvalidInput(
            f"{uri} is not in the registry's store {self._store.url}", field="artifact_uri"
        )
        try:
            key = key_of(uri)
            inside = self._store.uri(key) == uri
        except MillraceError:
            raise outside from None
        if not inside or not key or ".." in key.split("/"):
            raise outside
        return key

    def _digest(self, key: str) -> str:
        digest = hashlib.sha256()
        with self._store.open(key) as stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
        return digest.hexdigest()
