"""The on-disk model cache: the last-known-good models, so a process that scores (the
edge agent, serving) answers after a restart with no network.

    <root>/current.json                          what is loaded (AliasTarget list)
    <root>/refused.json                          versions rolled back: never adopted again
    <root>/models/<name>/<version>/model.onnx
    <root>/models/<name>/<version>/meta.json     its AliasTarget

Every file is written to a temporary name, flushed and renamed, so a crash leaves
either the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path

import orjson

from millrace_common.contracts import AliasTarget
from millrace_common.errors import InvalidInput
from millrace_common.objectstore import sha256_hex

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name per process and thread: serving writes from several worker threads
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class ModelCache:
    def __init__(self, root: Path, *, keep: int = 3) -> None:
        self.root = root
        self.keep = keep

    @property
    def current_path(self) -> Path:
        return self.root / "current.json"

    def model_dir(self, name: str, version: int) -> Path:
        if not _SAFE_NAME.fullmatch(name):
            raise InvalidInput(f"model name not usable as a path: {name!r}", field="name")
        return self.root / "models" / name / str(version)

    def write(self, target: AliasTarget, data: bytes) -> None:
        directory = self.model_dir(target.name, target.version)
        write_atomic(directory / "model.onnx", data)
        write_atomic(directory / "meta.json", target.model_dump_json(by_alias=True).encode())

    def read(self, name: str, version: int) -> bytes | None:
        path = self.model_dir(name, version) / "model.onnx"
        return path.read_bytes() if path.exists() else None

    def read_verified(self, target: AliasTarget) -> bytes | None:
        """``target``'s bytes if the cache holds them and their sha256 is the target's."""
        data = self.read(target.name, target.version)
        return data if data is not None and sha256_hex(data) == target.sha256 else None

    def current(self) -> list[AliasTarget]:
        if not self.current_path.exists():
            return []
        body = orjson.loads(self.current_path.read_bytes())
        return [AliasTarget.model_validate(item) for item in body["models"]]

    def set_current(self, targets: list[AliasTarget]) -> None:
        body = {
            "models": [t.model_dump(mode="json", by_alias=True) for t in targets],
            "updated_at": datetime.now(UTC).isoformat(),
        }
        write_atomic(self.current_path, orjson.dumps(body, option=orjson.OPT_INDENT_2))

    @property
    def refused_path(self) -> Path:
        return self.root / "refused.json"

    def refused(self) -> dict[tuple[str, str, int, str], str]:
        """(name, alias, version, sha256) → why, for every version refused for good."""
        if not self.refused_path.exists():
            return {}
        return {
            (e["name"], e["alias"], int(e["version"]), e["sha256"]): e["reason"]
            for e in orjson.loads(self.refused_path.read_bytes())["refused"]
        }

    def refuse(self, identity: tuple[str, str, int, str], reason: str) -> None:
        known = self.refused()
        known[identity] = reason
        entries = [
            {"name": n, "alias": a, "version": v, "sha256": d, "reason": r}
            for (n, a, v, d), r in known.items()
        ]
        write_atomic(
            self.refused_path, orjson.dumps({"refused": entries}, option=orjson.OPT_INDENT_2)
        )

    def discard(self, name: str, version: int) -> None:
        shutil.rmtree(self.model_dir(name, version), ignore_errors=True)

    def prune(self, name: str) -> list[int]:
        """Keep the versions in use and the newest others, ``keep`` in all; return removed."""
        in_use = {t.version for t in self.current() if t.name == name}
        base = self.root / "models" / name
        cached = (
            sorted(
                (p for p in base.iterdir() if p.is_dir() and p.name.isdigit()),
                key=lambda p: p.stat().st_mtime_ns,
                reverse=True,
            )
            if base.exists()
            else []
        )
        spare = max(0, self.keep - len(in_use))
        others = [p for p in cached if int(p.name) not in in_use]
        removed = [int(p.name) for p in others[spare:]]
        for path in others[spare:]:
            shutil.rmtree(path, ignore_errors=True)
        return removed
