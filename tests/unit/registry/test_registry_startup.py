"""Start-up: a signing key the registry cannot use stops it with one line naming the file,
never a trace."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from millrace_cli.processes import script


def test_an_unreadable_signing_key_is_a_one_line_exit(tmp_path: Path) -> None:
    key = tmp_path / "signing.pem"
    key.write_text("not a key\n")
    env = os.environ | {
        "MILLRACE_DATABASE_URL": f"sqlite:///{tmp_path}/millrace.db",
        "MILLRACE_OBJECT_STORE": f"file://{tmp_path}/store",
        "MILLRACE_REGISTRY_SIGNING_KEY_FILE": str(key),
        "MILLRACE_REGISTRY_PORT": "0",
    }
    done = subprocess.run(
        [script("millrace-registry")], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"millrace-registry: {key} is not an unencrypted PEM private key")
    assert "Traceback" not in done.stderr
