"""A project that cannot work is refused when it is loaded, with the file, the line and
the field: a mean of a text field used to pass, then crash the features worker on its
first record."""

from __future__ import annotations

from pathlib import Path

import pytest
from millrace_common.errors import InvalidInput
from millrace_common.project import load_project

SPEC = """\
project: churn
datasets:
  customers:
    entity: customer_id
    time: as_of
    fields:
      tenure: int
      contract: str
feature_sets:
  profile:
    dataset: customers
    features:
      - {name: tenure_last, field: tenure, agg: last, window: 3650d}
      - {name: contract_mean, field: contract, agg: {agg}, window: 30d}
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "millrace.yaml").write_text(text)
    return tmp_path


def test_a_mean_of_a_text_field_is_refused_naming_the_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as refused:
        load_project(write(tmp_path, SPEC.replace("{agg}", "mean")))
    assert refused.value.field == "feature_sets.profile.features.1.agg"
    assert "millrace.yaml line 14: feature 'contract_mean' of 'profile': mean cannot" in (
        refused.value.message
    )


def test_counting_a_text_field_is_fine(tmp_path: Path) -> None:
    project = load_project(write(tmp_path, SPEC.replace("{agg}", "count")))
    assert [f.agg for f in project.feature_set("profile").features] == ["last", "count"]


def test_an_unknown_field_and_a_bad_value_name_their_lines(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as unknown:
        load_project(
            write(
                tmp_path,
                SPEC.replace("{agg}", "count").replace("field: contract", "field: contrct"),
            )
        )
    assert "line 14: feature 'contract_mean' of 'profile' reads unknown field" in (
        unknown.value.message
    )
    with pytest.raises(InvalidInput) as malformed:
        load_project(write(tmp_path, SPEC.replace("{agg}", "count").replace("30d", "a month")))
    assert "millrace.yaml line 14: feature_sets.profile.features.1.window" in (
        malformed.value.message
    )


@pytest.mark.parametrize(
    ("feature", "field", "says"),
    [
        (
            "{name: r, ratio: [tenure_last, nope]}",
            "ratio",
            "ratio 'r' of 'profile' divides ['nope'], not aggregated features",
        ),
        (
            "{name: c, field: contract, agg: count, equals: 3}",
            "equals",
            "equals 3 is not a value of 'contract', a str field",
        ),
        ("{name: c, field: contract, agg: sum, equals: x}", "", "agg must be count"),
        ("{name: r, field: tenure, agg: sum, ratio: [a, b]}", "", "no field, agg or equals"),
        ("{name: r, window: 30d}", "", "needs a field and an agg"),
    ],
)
def test_a_feature_that_cannot_work_is_refused(
    tmp_path: Path, feature: str, field: str, says: str
) -> None:
    spec = SPEC.replace("{name: contract_mean, field: contract, agg: {agg}, window: 30d}", feature)
    with pytest.raises(InvalidInput) as refused:
        load_project(write(tmp_path, spec))
    assert says in refused.value.message and "millrace.yaml line 14" in refused.value.message
    if field:
        assert refused.value.field == f"feature_sets.profile.features.1.{field}"
