"""What serving's own routes get through ``Depends``: the runtime ``bootstrap`` built and
its use cases. (The scoring routes take what they need when they are built: on the hot
path, FastAPI's dependency solving costs more than scoring a small model.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from millrace_serving.admin import ModelAdmin
from millrace_serving.runtime import Runtime
from millrace_serving.traffic_follower import TrafficFollower


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_admin(runtime: RuntimeDep) -> ModelAdmin:
    return runtime.admin


def get_traffic(runtime: RuntimeDep) -> TrafficFollower:
    return runtime.traffic_follower


AdminDep = Annotated[ModelAdmin, Depends(get_admin)]
TrafficDep = Annotated[TrafficFollower, Depends(get_traffic)]
