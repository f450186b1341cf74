"""Group fairness statistics: accuracy and per-class recall by group, their gaps, and intervals for both.

Groups are the values of a demographic attribute (e.g. attribute "sex", groups "F" and "M"); a metric of
group g of attribute a is named `accuracy/a=g` or `recall/<class>/a=g`, and the gap between two groups
`accuracy_gap/a(first-second)` (first minus second). Per-seed rates come from `group_metrics`; the counts
behind them (`group_counts`) can be pooled over seeds (`pool_counts`) and given Wilson intervals per group
and Newcombe intervals per gap (`audit`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fer_common.metrics import wilson_interval

Pairs = Mapping[str, tuple[str, str]]  # attribute -> (first group, second group): gaps are first minus second


@dataclass(frozen=True)
class GroupCounts:
    """The counts behind one group's rates: correct / n overall and, per true class, correct / n (recall)."""

    correct: int = 0
    n: int = 0
    recall: dict[str, tuple[int, int]] = field(default_factory=dict)

    def __add__(self, other: GroupCounts) -> GroupCounts:
        recall = dict(self.recall)
        for name, (correct, n) in other.recall.items():
            previous_correct, previous_n = recall.get(name, (0, 0))
            recall[name] = (previous_correct + correct, previous_n + n)
        return GroupCounts(self.correct + other.correct, self.n + other.n, recall)

    def to_json(self) -> dict:
        return {
            "correct": self.correct,
            "n": self.n,
            "recall": {name: list(pair) for name, pair in self.recall.items()},
        }

    @classmethod
    def from_json(cls, entry: Mapping) -> GroupCounts:
        recall = {name: (int(correct), int(n)) for name, (correct, n) in entry["recall"].items()}
        return cls(int(entry["correct"]), int(entry["n"]), recall)


def _groups(values: np.ndarray, ignore: Collection[str]) -> list[str]:
    return sorted(set(values.tolist()) - set(ignore))


def group_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    attribute: str,
    values: np.ndarray,
    class_names: Sequence[str],
    *,
    ignore: Collection[str] = (),
) -> dict[str, float]:
    """`accuracy/<attribute>=<g>` and `recall/<class>/<attribute>=<g>` for every group g not in `ignore`.

    values: each test case's group. A recall whose group has no test case of that class is NaN (undefined).
    """
    y_true, y_pred, values = np.asarray(y_true), np.asarray(y_pred), np.asarray(values)
    result: dict[str, float] = {}
    for group in _groups(values, ignore):
        members = values == group
        result[f"accuracy/{attribute}={group}"] = float(np.mean(y_pred[members] == y_true[members]))
        for index, name in enumerate(class_names):
            of_class = members & (y_true == index)
            result[f"recall/{name}/{attribute}={group}"] = (
                float(np.mean(y_pred[of_class] == index)) if of_class.any() else math.nan
            )
    return result


def _metric_heads(class_names: Sequence[str]) -> list[tuple[str, str]]:
    """("accuracy", "") and ("recall", "/<class>") for each class: the two halves of a group metric's name."""
    return [("accuracy", "")] + [("recall", f"/{name}") for name in class_names]


def group_gaps(values: Mapping[str, float], class_names: Sequence[str], pairs: Pairs) -> dict[str, float]:
    """`accuracy_gap/<a>(<first>-<second>)` and `recall_gap/<class>/<a>(...)` for each attribute a of `pairs`,
    from `group_metrics` values; NaN where either side is missing or NaN."""
    gaps: dict[str, float] = {}
    for attribute, (first, second) in pairs.items():
        suffix = f"{attribute}({first}-{second})"
        for head, tail in _metric_heads(class_names):
            a = values.get(f"{head}{tail}/{attribute}={first}", math.nan)
            b = values.get(f"{head}{tail}/{attribute}={second}", math.nan)
            gaps[f"{head}_gap{tail}/{suffix}"] = a - b
    return gaps


def group_counts(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    attributes: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    *,
    ignore: Collection[str] = (),
) -> dict[str, GroupCounts]:
    """{"<attribute>=<group>": its counts} for every attribute and group: the counts behind `group_metrics`."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    counts: dict[str, GroupCounts] = {}
    for attribute, values in attributes.items():
        values = np.asarray(values)
        for group in _groups(values, ignore):
            members = values == group
            recall = {}
            for index, name in enumerate(class_names):
                of_class = members & (y_true == index)
                recall[name] = (int(np.sum(y_pred[of_class] == index)), int(of_class.sum()))
            counts[f"{attribute}={group}"] = GroupCounts(
                int(np.sum(y_pred[members] == y_true[members])), int(members.sum()), recall
            )
    return counts


def pool_counts(per_seed: Iterable[Mapping[str, GroupCounts]]) -> dict[str, GroupCounts]:
    """The sum of several `group_counts` results (e.g. one per seed), group by group."""
    pooled: dict[str, GroupCounts] = {}
    for counts in per_seed:
        for key, entry in counts.items():
            pooled[key] = pooled.get(key, GroupCounts()) + entry
    return pooled


def metric_denominators(counts: Mapping[str, GroupCounts]) -> dict[str, int]:
    """{group metric: n} for every defined group metric, so a record can give its row a Wilson interval."""
    denominators = {}
    for group, entry in counts.items():
        if entry.n:
            denominators[f"accuracy/{group}"] = entry.n
        for name, (_, n) in entry.recall.items():
            if n:
                denominators[f"recall/{name}/{group}"] = n
    return denominators


def difference_interval(correct_a: int, n_a: int, correct_b: int, n_b: int) -> tuple[float, float]:
    """Newcombe's hybrid score interval (his method 10) for p_a − p_b, built from the two Wilson intervals.

    Newcombe (1998), Statistics in Medicine 17:873-890; 56/70 − 48/80 gives 0.2000 in (0.0524, 0.3339).
    """
    if n_a <= 0 or n_b <= 0:
        raise ValueError(f"difference_interval needs two non-empty groups, got n_a={n_a}, n_b={n_b}")
    p_a, p_b = correct_a / n_a, correct_b / n_b
    low_a, high_a = wilson_interval(correct_a, n_a)
    low_b, high_b = wilson_interval(correct_b, n_b)
    difference = p_a - p_b
    return (
        difference - math.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2),
        difference + math.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2),
    )


def rate_with_interval(correct: int, n: int) -> dict:
    """{"correct", "n", "value", "wilson_95"} (JSON); value and interval are None when n is 0."""
    if n == 0:
        return {"correct": 0, "n": 0, "value": None, "wilson_95": None}
    return {"correct": correct, "n": n, "value": correct / n, "wilson_95": list(wilson_interval(correct, n))}


def audit(counts: Mapping[str, GroupCounts], class_names: Sequence[str], pairs: Pairs) -> dict:
    """{"groups": rate and Wilson interval per group (and per class), "gaps": value and Newcombe interval per
    gap of `pairs`} (JSON), from counts that may be pooled over seeds; a gap with an empty side is left out."""
    groups = {
        key: {
            **rate_with_interval(entry.correct, entry.n),
            "recall": {name: rate_with_interval(*entry.recall[name]) for name in class_names},
        }
        for key, entry in sorted(counts.items())
    }
    gaps = {}
    for attribute, (first, second) in pairs.items():
        a, b = counts.get(f"{attribute}={first}"), counts.get(f"{attribute}={second}")
        if not (a and b):
            continue
        sides = {"accuracy_gap": ((a.correct, a.n), (b.correct, b.n))}
        sides.update({f"recall_gap/{name}": (a.recall[name], b.recall[name]) for name in class_names})
        for head, ((correct_a, n_a), (correct_b, n_b)) in sides.items():
            if n_a and n_b:
                gaps[f"{head}/{attribute}({first}-{second})"] = {
                    "value": correct_a / n_a - correct_b / n_b,
                    "newcombe_95": list(difference_interval(correct_a, n_a, correct_b, n_b)),
                }
    return {"groups": groups, "gaps": gaps}
