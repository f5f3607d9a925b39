"""What the ``millrace`` commands print: whole rows when piped, the service's JSON with
``--json``, and one line with exit code 1 when something fails."""

from __future__ import annotations

import io
import json
import subprocess
from typing import Any

import pytest
from millrace_cli import render
from millrace_cli.main import app
from millrace_cli.processes import script
from millrace_cli.views import versions_grid
from rich.console import Console
from typer.testing import CliRunner

from tests.support.cli import Answer, FakeService
from tests.support.cli_documents import AUDIT, DRIFT, LONG_REASON, MODEL, RUNS, SITES, VERSIONS

MODELS = "/v1/models"
M = f"{MODELS}/machine-failure"


def millrace(*args: str) -> tuple[int, str, str]:
    """The command as a user's script runs it: stdout and stderr captured (pipes)."""
    run = subprocess.run(
        [script("millrace"), *args], capture_output=True, text=True, timeout=60, check=False
    )
    return run.returncode, run.stdout, run.stderr


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    """The command in this process, its stdout captured (not a terminal)."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "80", **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def invoked(*args: str) -> tuple[int, str, str]:
    result = invoke(*args)
    return result.exit_code, result.stdout, result.stderr


def test_a_piped_table_keeps_every_row_whole_on_one_line(service: FakeService) -> None:
    service.answer("GET", f"{M}/versions", VERSIONS)
    code, out, errors = millrace("models", "versions", "machine-failure", "--registry", service.url)
    assert code == 0, errors
    lines = out.splitlines()
    assert lines[0].split() == ["VERSION", "STATUS", "ALIASES", "METRICS", "CREATED", "DECISION"]
    assert len(lines) == 3  # a header and one line per version, never wrapped at 80
    assert lines[2].endswith(LONG_REASON) and lines[2].startswith("2 ")
    assert "champion, production" in lines[1] and "f1=0.8123 roc_auc=0.9311" in lines[1]
    assert "\x1b[" not in out and "│" not in out and "…" not in out  # no colour, box, cut
    # the columns line up: each starts at the same offset in every row
    start = lines[0].index("DECISION")
    assert lines[1][start:].startswith("first version") and lines[2][start:].startswith("not")


def test_a_piped_table_keeps_its_title_and_caption(service: FakeService) -> None:
    service.answer("GET", "/v1/models/machine-failure/drift", DRIFT)
    result = invoke("models", "drift", "machine-failure", "--features-url", service.url)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == ("machine-failure: 300 rows of the last 10m vs snapshot snap-1 (1200 rows)")
    assert lines[1].split() == ["FEATURE", "PSI"]
    assert lines[2].split() == [
        "temperature_mean_10m",
        "5.9500",
        "over",
        "the",
        "policy's",
        "threshold",
    ]
    assert lines[3].split() == ["speed_last", "0.1200", "shifting"]
    assert lines[4].split() == ["pressure_mean_10m", "0.0100"]
    assert lines[5] == "policy: PSI over 0.2; it would not retrain now"


def test_values_that_look_like_markup_are_printed_as_they_are(service: FakeService) -> None:
    service.answer("GET", M, MODEL)
    result = invoke("models", "show", "machine-failure", "--registry", service.url)
    assert result.exit_code == 0, result.output
    assert "team=[plant]" in result.output
    assert "champion→v1, production→v1" in result.output


@pytest.mark.parametrize(
    ("args", "path", "document"),
    [
        (("models", "list"), MODELS, [MODEL]),
        (("models", "show", "machine-failure"), M, MODEL),
        (("models", "versions", "machine-failure"), f"{M}/versions", VERSIONS),
        (("models", "audit", "machine-failure"), f"{M}/audit", AUDIT),
        (("runs", "list", "machine-failure"), f"{M}/runs", RUNS),
        (("sites", "list"), "/v1/sites", SITES),
        (("sites", "show", "plant-1"), "/v1/sites/plant-1", SITES[0]),
    ],
)
def test_json_is_the_registrys_document_as_it_came(
    service: FakeService, args: tuple[str, ...], path: str, document: Any
) -> None:
    service.answer("GET", path, document)
    code, out, errors = invoked(*args, "--registry", service.url, "--json")
    assert code == 0, errors
    assert json.loads(out) == document  # one document, nothing around it
    table = invoke(*args, "--registry", service.url)
    assert table.exit_code == 0, table.output


def test_drift_json_is_the_features_services_document(service: FakeService) -> None:
    service.answer("GET", "/v1/models/machine-failure/drift", DRIFT)
    code, out, _ = invoked(
        "models", "drift", "machine-failure", "--features-url", service.url, "--json"
    )
    assert code == 0 and json.loads(out) == DRIFT


def test_search_options_reach_the_registry(service: FakeService) -> None:
    service.answer("GET", f"{M}/versions", VERSIONS)
    result = invoke(
        "models",
        "versions",
        "machine-failure",
        "--tag",
        "team",
        "--tag",
        "stage=prod",
        "--metric",
        "f1>=0.8",
        "--registry",
        service.url,
    )
    assert result.exit_code == 0, result.output
    [(_, _, params, _)] = service.received
    assert params == {"tag": ["team", "stage=prod"], "metric": ["f1>=0.8"], "limit": ["100"]}


def test_a_name_is_one_path_segment(service: FakeService) -> None:
    service.answer("GET", "/v1/models/a%2Fb%20c", MODEL)
    assert invoke("models", "show", "a/b c", "--registry", service.url).exit_code == 0


def test_the_registry_url_comes_from_the_environment(service: FakeService) -> None:
    service.answer("GET", MODELS, [MODEL])
    result = invoke("models", "list", "--json", env={"MILLRACE_REGISTRY_URL": service.url})
    assert result.exit_code == 0 and json.loads(result.output) == [MODEL]


def one_error_line(code: int, out: str, errors: str) -> str:
    assert code == 1, (out, errors)
    assert out == ""
    lines = errors.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), errors
    assert "Traceback" not in errors
    return lines[0]


def test_an_error_body_is_one_line_naming_the_field(service: FakeService) -> None:
    service.answer(
        "POST",
        f"{M}/aliases/production",
        {"error": "invalid_input", "message": "a reason is required", "field": "reason"},
        status=422,
    )
    line = one_error_line(
        *millrace(
            "models", "promote", "machine-failure", "1", "--reason", " ", "--registry", service.url
        )
    )
    assert line == "error: HTTP 422: a reason is required (field: reason)"


def test_every_field_at_fault_is_named(service: FakeService) -> None:
    problems = [
        {"field": "version", "message": "Input should be greater than or equal to 1"},
        {"field": "reason", "message": "String should have at least 1 character"},
    ]
    body = {
        "error": "invalid_input",
        "message": "version: ...",
        "field": "version",
        "errors": problems,
    }
    service.answer("POST", f"{M}/rollback", body, status=422)
    line = one_error_line(
        *invoked(
            "models", "rollback", "machine-failure", "--reason", "x", "--registry", service.url
        )
    )
    assert line == (
        "error: HTTP 422: version: Input should be greater than or equal to 1; "
        "reason: String should have at least 1 character"
    )


def test_a_body_that_is_not_the_platforms_is_still_one_line(service: FakeService) -> None:
    service.answers[("GET", MODELS)] = Answer(
        502, "<html>\n<b>Bad gateway</b>\n</html>", content_type="text/html"
    )
    line = one_error_line(*invoked("models", "list", "--registry", service.url))
    assert line == "error: HTTP 502: <html> <b>Bad gateway</b> </html>"


def test_a_service_that_is_away_is_one_line(service: FakeService) -> None:
    away = service.url.rsplit(":", 1)[0] + ":1"
    line = one_error_line(*invoked("sites", "list", "--registry", away))
    assert line.startswith(f"error: cannot reach {away}/v1/sites: ")


def test_an_unknown_model_is_one_line_from_every_listing(service: FakeService) -> None:
    for args in (
        ("models", "versions", "nope"),
        ("runs", "list", "nope"),
        ("models", "audit", "nope"),
    ):
        line = one_error_line(*invoked(*args, "--registry", service.url))
        assert line.startswith("error: HTTP 404: no route /v1/models/nope/"), line


def test_a_terminal_gets_a_rich_table_fitted_to_its_width(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = Console(file=io.StringIO(), force_terminal=True, width=80, color_system=None)
    monkeypatch.setattr(render, "console", screen)
    render.show(versions_grid(VERSIONS))
    drawn = screen.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert drawn[0].startswith("┏") and all(len(line) <= 80 for line in drawn)
    assert len(drawn) > 6  # the long decision wraps inside its cell
