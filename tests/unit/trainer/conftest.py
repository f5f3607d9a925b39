"""Synthetic factory snapshots (the ``machine_health`` feature set) for the trainer's tests."""

from __future__ import annotations

import pytest

from tests.support.snapshots import factory_snapshot, parquet


@pytest.fixture
def snapshot_bytes() -> bytes:
    return factory_snapshot()


@pytest.fixture
def make_snapshot():  # type: ignore[no-untyped-def]
    return factory_snapshot


@pytest.fixture
def make_parquet():  # type: ignore[no-untyped-def]
    return parquet
