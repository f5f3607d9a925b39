"""The object-store port and its adapters: S3/MinIO (``minio`` client), a local directory,
and an in-memory fake for unit tests.

URLs: ``s3://bucket/prefix?endpoint=http://host:9000&region=us-east-1`` (keys from
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``), or ``file:///path``.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, cast
from urllib.parse import parse_qs, urlparse

from millrace_common.errors import IntegrityError, InvalidInput, NotFound, Unavailable


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str


class ReadableStore(Protocol):
    """What an edge agent reads models and manifests from: an object store, or the
    registry on a site's behalf (``millrace_edge_agent.adapters.registry_store``)."""

    def get(self, key: str) -> bytes: ...

    def get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None: ...


class ObjectStore(Protocol):
    """Keys are ``/``-separated paths; objects are immutable once written (but manifests)."""

    url: str

    def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> ObjectInfo: ...

    def get(self, key: str) -> bytes: ...

    def open(self, key: str) -> AbstractContextManager[IO[bytes]]:
        """The object as a stream read as it arrives (for objects too large to hold)."""
        ...

    def get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None:
        """The object and its ETag, or None when its ETag still equals ``etag``."""
        ...

    def stat(self, key: str) -> ObjectInfo: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order (as S3 lists them)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; a key that is not there is no error (as on S3)."""
        ...

    def uri(self, key: str) -> str: ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def get_verified(store: ObjectStore, key: str, sha256: str) -> bytes:
    """Fetch an object and check its digest; raise IntegrityError on a mismatch."""
    data = store.get(key)
    actual = sha256_hex(data)
    if actual != sha256:
        raise IntegrityError(f"sha256 mismatch for {key}: expected {sha256}, got {actual}")
    return data


def key_of(uri: str) -> str:
    """The key inside the store of an ``s3://bucket/key`` or ``file:///root/key`` uri."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return parsed.path.lstrip("/")
    if parsed.scheme == "mem":
        return parsed.path.lstrip("/")
    if parsed.scheme == "file":
        marker = parsed.path.find("/::/")
        return parsed.path[marker + 4 :] if marker >= 0 else parsed.path.lstrip("/")
    raise InvalidInput(f"not an object uri: {uri}")


class LocalStore:
    """A directory on disk; writes are atomic (write then rename)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise InvalidInput(f"key escapes the store: {key}")
        return path

    def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return ObjectInfo(key, len(data), sha256_hex(data))

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no object {key}") from None

    def open(self, key: str) -> AbstractContextManager[IO[bytes]]:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise NotFound(f"no object {key}") from None

    def get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None:
        data = self.get(key)
        digest = sha256_hex(data)
        return None if digest == etag else (data, digest)

    def stat(self, key: str) -> ObjectInfo:
        data = self.get(key)
        return ObjectInfo(key, len(data), sha256_hex(data))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        keys = []
        for path in self.root.rglob("*"):
            # a dot file is a write in progress (see put), not an object
            if path.is_file() and not path.name.startswith("."):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        # S3 orders keys by their UTF-8 bytes
        for key in sorted(keys, key=lambda k: k.encode()):
            yield self.stat(key)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def uri(self, key: str) -> str:
        return f"file://{self.root}/::/{key}"


class MemoryStore:
    """In-memory fake of the port, for unit tests."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.url = "mem://"

    def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        self.objects[key] = bytes(data)
        return ObjectInfo(key, len(data), sha256_hex(data))

    def get(self, key: str) -> bytes:
        try:
            return self.objects[key]
        except KeyError:
            raise NotFound(f"no object {key}") from None

    def open(self, key: str) -> AbstractContextManager[IO[bytes]]:
        return closing(io.BytesIO(self.get(key)))

    def get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None:
        data = self.get(key)
        digest = sha256_hex(data)
        return None if digest == etag else (data, digest)

    def stat(self, key: str) -> ObjectInfo:
        data = self.get(key)
        return ObjectInfo(key, len(data), sha256_hex(data))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for key in sorted((k for k in self.objects if k.startswith(prefix)), key=str.encode):
            yield self.stat(key)

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def uri(self, key: str) -> str:
        return f"mem:///{key}"


@contextmanager
def reaching_the_store() -> Iterator[None]:
    """The S3 client's transport errors (refused, reset, timed out, after its own
    retries) as ``Unavailable``: a dependency away, which an HTTP answer turns into a 503
    with Retry-After and a consumer waits out, never a bug."""
    import urllib3

    try:
        yield
    except urllib3.exceptions.HTTPError as exc:
        raise Unavailable("the object store is unreachable; retry shortly", retry_after=2) from exc


class S3Store:
    """S3 or MinIO through the ``minio`` client; the store away is ``Unavailable``."""

    def __init__(
        self,
        *,
        endpoint: str,
        bucket: str,
        secure: bool,
        region: str | None,
        access_key: str | None,
        secret_key: str | None,
        create_bucket: bool,
    ) -> None:
        from minio import Minio

        self.bucket = bucket
        self.url = f"s3://{bucket}"
        self._client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region
        )
        if create_bucket:
            with reaching_the_store():
                if not self._client.bucket_exists(bucket):
                    self._client.make_bucket(bucket)

    def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        with reaching_the_store():
            result = self._client.put_object(
                self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
            )
        return ObjectInfo(key, len(data), result.etag or "")

    def get(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    @contextmanager
    def open(self, key: str) -> Iterator[IO[bytes]]:
        import urllib3
        from minio.error import S3Error

        with reaching_the_store():
            try:
                response = self._client.get_object(self.bucket, key)
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchBucket"):
                    raise NotFound(f"no object {key}") from None
                raise
            # urllib3 closes a response read to its end, under the io wrappers (gzip, text)
            # that still read it; they need it open until they are done
            if isinstance(response, urllib3.HTTPResponse):
                response.auto_close = False
            try:
                yield cast(IO[bytes], response)  # urllib3's response is a readable io stream
            finally:
                response.close()
                response.release_conn()

    def get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None:
        info = self.stat(key)
        if etag is not None and info.etag == etag:
            return None
        return self.get(key), info.etag

    def stat(self, key: str) -> ObjectInfo:
        from minio.error import S3Error

        try:
            with reaching_the_store():
                stat = self._client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                raise NotFound(f"no object {key}") from None
            raise
        return ObjectInfo(key, stat.size or 0, (stat.etag or "").strip('"'))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        from minio.error import S3Error

        try:
            with reaching_the_store():
                listed = list(self._client.list_objects(self.bucket, prefix=prefix, recursive=True))
            for item in listed:
                if item.object_name is not None and not item.is_dir:
                    etag = (item.etag or "").strip('"')
                    yield ObjectInfo(item.object_name, item.size or 0, etag)
        except S3Error as exc:
            if exc.code == "NoSuchBucket":
                raise NotFound(f"no bucket {self.bucket}") from None
            raise

    def delete(self, key: str) -> None:
        with reaching_the_store():
            self._client.remove_object(self.bucket, key)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def open_store(url: str, *, create_bucket: bool = True) -> ObjectStore:
    """Build the adapter named by an object-store URL."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStore(parsed.netloc + parsed.path if parsed.netloc == "." else parsed.path)
    if parsed.scheme == "s3":
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        endpoint = urlparse(query.get("endpoint", "https://s3.amazonaws.com"))
        return S3Store(
            endpoint=endpoint.netloc,
            bucket=parsed.netloc,
            secure=endpoint.scheme == "https",
            region=query.get("region") or os.environ.get("AWS_REGION"),
            access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
            secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
            create_bucket=create_bucket,
        )
    raise InvalidInput(
        f"unsupported object store url: {url} (use s3://bucket?endpoint=… or file:///path)"
    )
