"""What routes get through ``Depends``: the runtime ``bootstrap`` built, and its use cases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from millrace_registry.artifacts import Artifacts
from millrace_registry.catalog import Catalog
from millrace_registry.fleet import Fleet
from millrace_registry.lifecycle import Lifecycle
from millrace_registry.monitoring import Monitoring
from millrace_registry.run_artifacts import RunArtifacts
from millrace_registry.runs import Runs
from millrace_registry.runtime import Runtime
from millrace_registry.site_objects import SiteObjects
from millrace_registry.sites import Sites
from millrace_registry.traffic import TrafficPolicies
from millrace_registry.uploads import Uploads


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_lifecycle(runtime: RuntimeDep) -> Lifecycle:
    return runtime.lifecycle


def get_catalog(runtime: RuntimeDep) -> Catalog:
    return runtime.catalog


def get_runs(runtime: RuntimeDep) -> Runs:
    return runtime.runs


def get_sites(runtime: RuntimeDep) -> Sites:
    return runtime.sites


def get_site_objects(runtime: RuntimeDep) -> SiteObjects:
    return runtime.site_objects


SiteObjectsDep = Annotated[SiteObjects, Depends(get_site_objects)]


def get_fleet(runtime: RuntimeDep) -> Fleet:
    return runtime.fleet


def get_traffic(runtime: RuntimeDep) -> TrafficPolicies:
    return runtime.traffic


def get_run_artifacts(runtime: RuntimeDep) -> RunArtifacts:
    return runtime.run_artifacts


def get_artifacts(runtime: RuntimeDep) -> Artifacts:
    return runtime.artifacts


def get_uploads(runtime: RuntimeDep) -> Uploads:
    return runtime.uploads


LifecycleDep = Annotated[Lifecycle, Depends(get_lifecycle)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
RunsDep = Annotated[Runs, Depends(get_runs)]
SitesDep = Annotated[Sites, Depends(get_sites)]
FleetDep = Annotated[Fleet, Depends(get_fleet)]
TrafficDep = Annotated[TrafficPolicies, Depends(get_traffic)]
UploadsDep = Annotated[Uploads, Depends(get_uploads)]
RunArtifactsDep = Annotated[RunArtifacts, Depends(get_run_artifacts)]
ArtifactsDep = Annotated[Artifacts, Depends(get_artifacts)]


def get_monitoring(runtime: RuntimeDep) -> Monitoring:
    return runtime.monitoring


MonitoringDep = Annotated[Monitoring, Depends(get_monitoring)]
