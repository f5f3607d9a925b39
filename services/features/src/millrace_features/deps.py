"""What routes get through ``Depends``: the runtime ``bootstrap`` built."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from millrace_features.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
