"""The promotion rule: who becomes production, and the reason the audit log keeps."""

from __future__ import annotations

import pytest
from millrace_common.errors import InvalidInput
from millrace_registry.names import check_alias
from millrace_registry.promotion_rule import Champion, PromotionRule, decide

F1 = PromotionRule(metric="f1", direction="maximize", margin=0.0)


def test_first_ready_version_is_promoted() -> None:
    decision = decide(rule=F1, candidate={"f1": 0.8}, champion=None)
    assert decision.promote
    assert "no production version yet" in decision.reason


def test_better_candidate_beats_champion_on_the_same_holdout() -> None:
    decision = decide(
        rule=F1,
        candidate={"f1": 0.91},
        champion=Champion(version=1, metrics={"f1": 0.88}, evaluated_version=1),
    )
    assert decision.promote
    assert decision.reason == "f1 0.9100 beats champion v1 0.8800 by margin 0.0000"


def test_worse_or_equal_candidate_stays_a_candidate() -> None:
    for value in (0.85, 0.88):
        decision = decide(
            rule=F1, candidate={"f1": value}, champion=Champion(version=1, metrics={"f1": 0.88})
        )
        assert not decision.promote
        assert decision.reason.startswith(
            f"not promoted: f1 {value:.4f} does not beat champion v1 0.8800"
        )


def test_margin_must_be_met() -> None:
    rule = PromotionRule(metric="f1", margin=0.05)
    champion = Champion(version=2, metrics={"f1": 0.80})
    assert not decide(rule=rule, candidate={"f1": 0.84}, champion=champion).promote
    assert decide(rule=rule, candidate={"f1": 0.86}, champion=champion).promote


def test_minimize_direction_prefers_lower_values() -> None:
    rule = PromotionRule(metric="rmse", direction="minimize", margin=0.1)
    champion = Champion(version=1, metrics={"rmse": 2.0})
    assert decide(rule=rule, candidate={"rmse": 1.8}, champion=champion).promote
    assert not decide(rule=rule, candidate={"rmse": 1.95}, champion=champion).promote
    assert not decide(rule=rule, candidate={"rmse": 2.5}, champion=champion).promote


def test_champion_without_comparable_metrics_blocks_automatic_promotion() -> None:
    unknown = decide(rule=F1, candidate={"f1": 0.99}, champion=Champion(version=3, metrics=None))
    assert not unknown.promote and "champion v3 has no f1" in unknown.reason
    stale = decide(
        rule=F1,
        candidate={"f1": 0.99},
        champion=Champion(version=4, metrics={"f1": 0.5}, evaluated_version=3),
    )
    assert not stale.promote and "champion changed since evaluation" in stale.reason


def test_candidate_without_the_metric_is_not_promoted() -> None:
    assert not decide(rule=F1, candidate={"accuracy": 0.9}, champion=None).promote
    assert not decide(rule=F1, candidate={"f1": float("nan")}, champion=None).promote


@pytest.mark.parametrize("alias", ["production", "staging", "canary-2", "a"])
def test_valid_alias_names(alias: str) -> None:
    assert check_alias(alias) == alias


@pytest.mark.parametrize("alias", ["Production", "2nd", "has_underscore", "-x", "a" * 64, ""])
def test_invalid_alias_names_name_the_field(alias: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_alias(alias)
    assert info.value.field == "alias"


def test_the_baseline_must_be_beaten_by_the_margin_even_with_no_champion() -> None:
    """A model no better than a dummy on the same holdout is not served, first or not."""
    rule = PromotionRule(metric="roc_auc", margin=0.02, baseline={"roc_auc": 0.5})
    for value in (0.44, 0.51):
        decision = decide(rule=rule, candidate={"roc_auc": value}, champion=None)
        assert not decision.promote
        assert decision.reason == (
            f"not promoted: roc_auc {value:.4f} does not beat the baseline 0.5000 (the best "
            "trivial model on the same holdout) by margin 0.0200"
        )
    assert decide(rule=rule, candidate={"roc_auc": 0.83}, champion=None).promote
    champion = Champion(version=1, metrics={"roc_auc": 0.9})
    beaten = decide(rule=rule, candidate={"roc_auc": 0.83}, champion=champion)
    assert not beaten.promote and "does not beat champion v1" in beaten.reason


def test_a_baseline_without_the_metric_leaves_the_champion_to_decide() -> None:
    rule = PromotionRule(metric="f1", baseline={"accuracy": 0.9})
    assert decide(rule=rule, candidate={"f1": 0.3}, champion=None).promote
