"""The whole platform as processes: Tansu, Postgres, S3 (moto's server), six services."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.platform import Platform, factory_project, running_platform


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    project = factory_project(tmp_path_factory.mktemp("project"))
    with running_platform(tmp_path_factory.mktemp("platform"), project) as platform:
        yield platform
