"""Run every benchmark module present in ``bench/`` (discovered, not listed, so parallel
work can land in any order). A module either has ``run() -> list[dict]`` (its rows,
printed here as one table, titled by its ``TITLE``) or ``main() -> None`` printing its
own figures."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def modules(selected: list[str]) -> list[str]:
    found = sorted(
        m.name
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if not m.name.startswith("_")
    )
    unknown = sorted(set(selected) - set(found))
    if unknown:
        raise SystemExit(f"no bench module named {', '.join(unknown)} (have {', '.join(found)})")
    return [m for m in found if not selected or m in selected]


def table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    columns = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[_cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([line, rule, *body])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 10 else f"{value:.3g}"
    return str(value)


def main(argv: list[str]) -> int:
    failed = []
    for name in modules(argv):
        module = importlib.import_module(f"bench.{name}")
        title = getattr(module, "TITLE", name)
        print(f"\n== {title} ==", flush=True)
        started = time.perf_counter()
        try:
            if hasattr(module, "run"):
                print(table(module.run()), flush=True)
            else:
                module.main()
        except Exception:  # noqa: BLE001 - one broken bench must not hide the others
            traceback.print_exc()
            failed.append(name)
        print(f"({name}: {time.perf_counter() - started:.0f}s)", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
