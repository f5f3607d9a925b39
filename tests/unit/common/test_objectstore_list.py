"""Listing the object store (every key under a prefix, in S3's UTF-8 byte order) and
reading an object as a stream."""

from __future__ import annotations

from pathlib import Path

import pytest
from millrace_common.errors import NotFound
from millrace_common.objectstore import LocalStore, MemoryStore, ObjectStore, sha256_hex


def fill(store: ObjectStore) -> None:
    for key in ("in/b.csv", "in/a/z.csv", "in/é.csv", "in/B.csv", "out/a.csv"):
        store.put(key, key.encode())


def test_local_store_lists_in_key_order_under_a_prefix(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    fill(store)
    (tmp_path / "in" / ".b.csv.123.tmp").write_bytes(b"a write in progress")
    listed = list(store.list("in/"))
    assert [i.key for i in listed] == ["in/B.csv", "in/a/z.csv", "in/b.csv", "in/é.csv"]
    assert listed[0].size == len(b"in/B.csv") and listed[0].etag == sha256_hex(b"in/B.csv")
    assert len(list(store.list())) == 5 and list(store.list("nothing/")) == []


def test_memory_store_lists_like_the_others() -> None:
    store = MemoryStore()
    fill(store)
    assert [i.key for i in store.list("in/")] == ["in/B.csv", "in/a/z.csv", "in/b.csv", "in/é.csv"]


def test_objects_open_as_streams(tmp_path: Path) -> None:
    for store in (LocalStore(tmp_path), MemoryStore()):
        store.put("big/x.csv", b"a,b\n1,2\n")
        with store.open("big/x.csv") as stream:
            assert stream.readline() == b"a,b\n" and stream.read() == b"1,2\n"
        with pytest.raises(NotFound):
            store.open("big/missing.csv")
