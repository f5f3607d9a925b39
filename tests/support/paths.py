"""The repository's folders the tests read."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FACTORY = ROOT / "examples" / "factory"
