"""``millrace init``: a project to start from (the churn example, whose rule is known);
``examples/churn`` is exactly what it writes, so the example cannot drift from it."""

from __future__ import annotations

from pathlib import Path

from millrace_cli.scaffold import FILES
from millrace_common.project import load_project

from tests.support.cli import run_cli
from tests.support.paths import ROOT


def test_init_writes_a_project_that_loads(tmp_path: Path) -> None:
    code, output = run_cli("init", str(tmp_path / "mine"))
    assert code == 0 and "next: millrace up --project" in output
    project = load_project(tmp_path / "mine")
    assert project.dataset("customers").entity == "customer_id"
    lines = (tmp_path / "mine" / "customers.csv").read_text().splitlines()
    assert len(lines) == 4_001 and lines[0].startswith("customer_id,as_of,")


def test_init_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "millrace.yaml").write_text("mine")
    code, output = run_cli("init", str(tmp_path))
    assert code == 1 and "already has millrace.yaml; nothing written" in output
    assert (tmp_path / "millrace.yaml").read_text() == "mine"
    assert not (tmp_path / "customers.csv").exists()


def test_examples_churn_is_what_init_writes(tmp_path: Path) -> None:
    run_cli("init", str(tmp_path / "fresh"))
    for name in FILES:
        assert (ROOT / "examples" / "churn" / name).read_bytes() == (
            tmp_path / "fresh" / name
        ).read_bytes(), f"examples/churn/{name} differs: run millrace init again"
