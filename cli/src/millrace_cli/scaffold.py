"""``millrace init DIR``: a new project folder to start from, the churn example (its spec,
sample data whose rule is known, and a README saying what to do next)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from millrace_cli.churn import README, SPEC, churn_records, write_csv
from millrace_cli.errors import CliError
from millrace_cli.render import console

FILES = ("millrace.yaml", "customers.csv", "README.md")


def init(
    folder: Annotated[Path, typer.Argument(help="the new project's folder (made if missing)")],
) -> None:
    """Write a project to start from: millrace.yaml, customers.csv and a README."""
    taken = [name for name in FILES if (folder / name).exists()]
    if taken:
        raise CliError(f"millrace init: {folder} already has {', '.join(taken)}; nothing written")
    try:
        records = scaffold(folder)
    except OSError as exc:
        raise CliError(f"millrace init: cannot write {folder}: {exc.strerror}") from None
    console.print(
        f"wrote {folder}: millrace.yaml, customers.csv ({records:,} records), README.md\n"
        f"next: millrace up --project {folder}",
        soft_wrap=True,
        markup=False,
    )


def scaffold(folder: Path) -> int:
    """Write the project; how many records its data file holds."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "millrace.yaml").write_text(SPEC)
    (folder / "README.md").write_text(README)
    return write_csv(folder / "customers.csv", churn_records())
