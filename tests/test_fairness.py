"""Group fairness statistics: rates by group, gaps, pooled counts, Wilson and Newcombe intervals."""

import math

import numpy as np
import pytest

from fer_common.fairness import (
    GroupCounts,
    audit,
    difference_interval,
    group_counts,
    group_gaps,
    group_metrics,
    metric_denominators,
    pool_counts,
)

CLASSES = ("negative", "neutral", "positive")
PAIRS = {"race": ("B", "W"), "sex": ("F", "M")}
# Hand-made test set: classes 0 negative, 1 neutral, 2 positive.
Y_TRUE = np.array([0, 0, 1, 1, 2, 2, 0, 1])
Y_PRED = np.array([0, 1, 1, 1, 2, 0, 0, 2])
RACE = np.array(["B", "B", "B", "B", "W", "W", "W", "W"])
SEX = np.array(["F", "M", "F", "M", "F", "M", "?", "?"])  # "?" = unknown, left out of the groups


def test_group_metrics_on_a_hand_made_example():
    race = group_metrics(Y_TRUE, Y_PRED, "race", RACE, CLASSES)
    # B: true 0 0 1 1, predicted 0 1 1 1 -> 3/4; W: true 2 2 0 1, predicted 2 0 0 2 -> 2/4.
    assert race["accuracy/race=B"] == 0.75
    assert race["accuracy/race=W"] == 0.5
    assert race["recall/negative/race=B"] == 0.5 and race["recall/neutral/race=B"] == 1.0
    assert math.isnan(race["recall/positive/race=B"])  # no positive B face in the test set
    assert race["recall/negative/race=W"] == 1.0 and race["recall/neutral/race=W"] == 0.0
    assert race["recall/positive/race=W"] == 0.5


def test_ignored_group_values_make_no_group():
    sex = group_metrics(Y_TRUE, Y_PRED, "sex", SEX, CLASSES, ignore=("?",))
    per_class = {f"recall/{name}/sex={group}" for name in CLASSES for group in "FM"}
    assert set(sex) == {"accuracy/sex=F", "accuracy/sex=M"} | per_class
    assert sex["accuracy/sex=F"] == 1.0 and sex["accuracy/sex=M"] == pytest.approx(1 / 3)
    assert "accuracy/sex=?" in group_metrics(Y_TRUE, Y_PRED, "sex", SEX, CLASSES)  # not ignored: a group


def test_gaps_are_first_group_minus_second_and_nan_when_a_side_is_undefined():
    values = {
        **group_metrics(Y_TRUE, Y_PRED, "race", RACE, CLASSES),
        **group_metrics(Y_TRUE, Y_PRED, "sex", SEX, CLASSES, ignore=("?",)),
    }
    gaps = group_gaps(values, CLASSES, PAIRS)
    assert gaps["accuracy_gap/race(B-W)"] == 0.25
    assert gaps["accuracy_gap/sex(F-M)"] == pytest.approx(2 / 3)
    assert gaps["recall_gap/negative/race(B-W)"] == -0.5
    assert math.isnan(gaps["recall_gap/positive/race(B-W)"])
    assert group_gaps(values, CLASSES, {"race": ("W", "B")})["accuracy_gap/race(W-B)"] == -0.25


def test_counts_give_the_denominators_of_the_defined_group_metrics():
    counts = group_counts(Y_TRUE, Y_PRED, {"race": RACE, "sex": SEX}, CLASSES, ignore=("?",))
    black_recall = {"negative": (1, 2), "neutral": (2, 2), "positive": (0, 0)}  # (correct, n)
    assert counts["race=B"] == GroupCounts(correct=3, n=4, recall=black_recall)
    assert set(counts) == {"race=B", "race=W", "sex=F", "sex=M"}
    denominators = metric_denominators(counts)
    assert denominators["accuracy/race=B"] == 4 and denominators["recall/negative/race=B"] == 2
    assert "recall/positive/race=B" not in denominators  # undefined: no denominator


def test_counts_survive_a_json_round_trip():
    counts = group_counts(Y_TRUE, Y_PRED, {"race": RACE}, CLASSES)
    assert {key: GroupCounts.from_json(entry.to_json()) for key, entry in counts.items()} == counts


def test_pooled_counts_give_wilson_and_newcombe_intervals():
    counts = group_counts(Y_TRUE, Y_PRED, {"race": RACE, "sex": SEX}, CLASSES, ignore=("?",))
    pooled = pool_counts([counts, counts])  # the same predictions twice: counts double, rates stay
    assert pooled["race=B"].correct == 6 and pooled["race=B"].recall["negative"] == (2, 4)
    result = audit(pooled, CLASSES, PAIRS)
    black = result["groups"]["race=B"]
    assert black["value"] == 0.75 and black["n"] == 8
    assert black["wilson_95"] == pytest.approx([0.4093, 0.9285], abs=1e-4)  # Wilson 6/8
    assert black["recall"]["positive"]["value"] is None
    gap = result["gaps"]["accuracy_gap/race(B-W)"]
    assert gap["value"] == 0.25 and gap["newcombe_95"] == pytest.approx(list(difference_interval(6, 8, 4, 8)))
    assert "recall_gap/positive/race(B-W)" not in result["gaps"]  # no positive B face: no gap


def test_pooling_groups_seen_in_only_some_seeds():
    only_black = {"race=B": GroupCounts(1, 2, {"negative": (1, 2)})}
    only_white = {"race=W": GroupCounts(2, 3, {"negative": (2, 3)})}
    assert pool_counts([only_black, only_white, only_black]) == {
        "race=B": GroupCounts(2, 4, {"negative": (2, 4)}),
        "race=W": GroupCounts(2, 3, {"negative": (2, 3)}),
    }


def test_difference_interval_matches_newcombe_1998_worked_examples():
    # Newcombe, Stat. Med. 17:873 (1998), Table II, method 10 (hybrid score): 56/70 - 48/80 = 0.2000.
    assert 56 / 70 - 48 / 80 == pytest.approx(0.2)
    assert difference_interval(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert difference_interval(9, 10, 3, 10) == pytest.approx((0.1705, 0.8090), abs=1e-4)
    assert difference_interval(5, 56, 0, 29) == pytest.approx((-0.0381, 0.1926), abs=1e-4)


def test_difference_interval_of_an_empty_group_is_a_value_error():
    with pytest.raises(ValueError, match="non-empty"):
        difference_interval(0, 0, 3, 10)
