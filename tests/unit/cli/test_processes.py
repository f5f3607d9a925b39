"""A child process that dies before it is ready: the supervisor's one line names the
cause its log gave, not just an exit code (``millrace dev`` prints only that line)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from millrace_cli.processes import ExitedEarly, ProcessSpec, Supervisor, ephemeral_ports


def dying(*lines: str, code: int = 3) -> ProcessSpec:
    said = "\n".join(lines)
    program = f"import sys; print({said!r}, file=sys.stderr); sys.exit({code})"
    return ProcessSpec(name="svc", argv=[sys.executable, "-c", program], ready_port=1)


def test_the_error_log_line_is_the_cause_not_the_shutdown_chatter(tmp_path: Path) -> None:
    bind = "[Errno 98] error while attempting to bind on address: address already in use"
    lines = [
        json.dumps({"event": "Application startup complete.", "level": "info"}),
        json.dumps({"event": bind, "level": "error"}),
        json.dumps({"event": "Application shutdown complete.", "level": "info"}),
    ]
    with pytest.raises(ExitedEarly) as raised:
        Supervisor(tmp_path).start(dying(*lines), timeout=60)
    assert str(raised.value).startswith(f"svc exited with 3 before it was ready: {bind} (")
    assert str(raised.value).endswith(f"{tmp_path / 'svc.log'})")


def test_a_plain_last_line_is_the_cause(tmp_path: Path) -> None:
    lines = [json.dumps({"event": "starting", "level": "info"}), "millrace-svc: no such project"]
    with pytest.raises(ExitedEarly, match="exited with 1 before it was ready: millrace-svc: no"):
        Supervisor(tmp_path).start(dying(*lines, code=1), timeout=60)


def test_a_silent_death_says_so(tmp_path: Path) -> None:
    with pytest.raises(ExitedEarly, match="its log names no cause"):
        Supervisor(tmp_path).start(dying("", code=2), timeout=60)


def test_the_kernels_range_for_outgoing_ports_is_read() -> None:
    ports = ephemeral_ports()
    assert 1024 <= ports.start < ports.stop <= 65536
