"""What routes get through ``Depends``: the runtime ``bootstrap`` built, and its parts."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from millrace_edge_agent.adapters.queue.dead_letters import DeadLetterLog
from millrace_edge_agent.intake import RecordIntake
from millrace_edge_agent.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_intake(runtime: RuntimeDep) -> RecordIntake:
    return runtime.intake


def get_dead_letters(runtime: RuntimeDep) -> DeadLetterLog:
    return runtime.queues.dead_letters


IntakeDep = Annotated[RecordIntake, Depends(get_intake)]
DeadLettersDep = Annotated[DeadLetterLog, Depends(get_dead_letters)]
