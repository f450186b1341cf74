"""Verdicts that mean what they say: reproduced, not reproduced, or inconclusive, by one stated rule.

The paper reports one run (or a mean) scored on its own test set; we have k seeds of our protocol. What our
runs make plausible for one more run, scored on a test set of the paper's size, is the 95% prediction
interval (Hahn & Meeker 1991, the normal prediction interval for one further observation):

    mean ± t(0.975, k−1) · sqrt(s²·(1 + 1/k) + p(1−p)·max(0, 1/n_paper − 1/n_ours))

s² (the spread over seeds) already holds our own test set's sampling noise; the second term adds what a
smaller test set of the paper's adds (proportions only). Each claim has an equivalence margin m (the
metadata's `margins:`, default DEFAULT_MARGINS), and the interval is read as in an equivalence test
(Schuirmann 1987's two one-sided tests, in their interval form; Lakens 2017):

- claim "about v": *reproduced* when the whole interval lies within v ± m (equivalence shown: our runs
  could have told a difference of m, and show none that large; a smaller difference is said in words);
  *not reproduced* when v lies outside the interval and equivalence is not shown (below / above names
  which side our runs fall on); *inconclusive* when v lies inside an interval wider than v ± m.
- claim "at least t" (at most: mirrored): *reproduced* when the 95% confidence interval of our mean lies
  above t − m and most seeds reach t; *not reproduced* when even the prediction interval stays below t;
  *inconclusive* otherwise.

One seed gives no spread: its interval counts the test sampling only and it can at most be inconclusive.
Proxy data gets no verdict; rows without a value are not run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import t as student_t

from .bands import ABOVE, AT_LEAST, AT_MOST, BELOW, BEYOND_PAPER, NOT_RUN, PROXY, REPRODUCED

INCONCLUSIVE = "inconclusive"
VERDICTS = (REPRODUCED, BELOW, ABOVE, INCONCLUSIVE, PROXY, NOT_RUN, BEYOND_PAPER)
# The equivalence margin of a claim whose metadata gives none: 5 points of a proportion; for a value (a loss,
# a difference), the row's own floor.
DEFAULT_MARGINS = {"proportion": 0.05}
METHOD = (
    "95% prediction interval for one more run of our protocol on a test set of the paper's size (Hahn & Meeker "
    "1991), read against an equivalence margin per claim (two one-sided tests in interval form: Schuirmann "
    "1987; Lakens 2017)"
)
_MAX_SEEDS = 200  # the search for the seeds a margin needs stops here


@dataclass(frozen=True)
class Judgement:
    """A claim's verdict, the interval it was read against and why."""

    verdict: str
    low: float | None
    high: float | None
    margin: float
    reason: str

    @property
    def half_width(self) -> float | None:
        return None if self.low is None else (self.high - self.low) / 2


def _extra_sampling(mean: float, kind: str, n_ours: float | None, n_paper: int | None) -> float:
    """The sampling variance a paper-sized test set adds beyond ours (0 for a value, or a larger paper set)."""
    if kind != "proportion" or not n_paper:
        return 0.0
    p = min(max(mean, 0.0), 1.0)
    ours = 1.0 / n_ours if n_ours else 0.0
    return p * (1.0 - p) * max(0.0, 1.0 / n_paper - ours)


def prediction_half_width(sd: float, k: int, extra: float) -> float:
    """Half-width of the 95% prediction interval for one more run from k seeds of spread sd."""
    if k < 2:
        return 1.959963984540054 * math.sqrt(extra)
    return float(student_t.ppf(0.975, k - 1)) * math.sqrt(sd**2 * (1.0 + 1.0 / k) + extra)


def seeds_needed(sd: float, extra: float, margin: float) -> int | None:
    """The fewest seeds whose prediction interval would be within the margin, None when no number would
    (the test sampling or the run-to-run spread alone is wider)."""
    if 1.959963984540054 * math.sqrt(sd**2 + extra) > margin:
        return None
    for k in range(2, _MAX_SEEDS + 1):
        if prediction_half_width(sd, k, extra) <= margin:
            return k
    return None


def _percent(value: float, kind: str) -> str:
    return f"{100 * value:.1f}%" if kind == "proportion" else f"{value:.3f}"


def judge(
    values: Sequence[float],
    reported: float,
    *,
    claim: str,
    kind: str,
    margin: float,
    n_ours: float | None,
    n_paper: int | None,
    data: str,
) -> Judgement:
    """The verdict of a paper's figure against our per-seed values (see the module docstring)."""
    values = [float(value) for value in values if value is not None]
    if data == "missing" or not values:
        return Judgement(NOT_RUN, None, None, margin, "not run")
    k = len(values)
    mean = sum(values) / k
    sd = math.sqrt(sum((value - mean) ** 2 for value in values) / (k - 1)) if k > 1 else 0.0
    extra = _extra_sampling(mean, kind, n_ours, n_paper)
    half = prediction_half_width(sd, k, extra)
    low, high = mean - half, mean + half
    if kind == "proportion":
        low, high = max(low, 0.0), min(high, 1.0)
    interval = f"[{_percent(low, kind)}, {_percent(high, kind)}]"

    def result(verdict: str, reason: str) -> Judgement:
        return Judgement(verdict if data == "real" else PROXY, low, high, margin, reason)

    if claim in (AT_LEAST, AT_MOST):
        return _threshold(values, mean, sd, k, reported, claim, kind, margin, interval, low, high, result)
    if k >= 2 and low >= reported - margin and high <= reported + margin:
        return result(REPRODUCED, f"what our runs make plausible {interval} lies within ±{_percent(margin, kind)}")
    if reported < low:
        return result(ABOVE, f"the paper's {_percent(reported, kind)} is below what our runs make plausible {interval}")
    if reported > high:
        return result(BELOW, f"the paper's {_percent(reported, kind)} is above what our runs make plausible {interval}")
    if k < 2:
        return result(INCONCLUSIVE, f"one seed: its run-to-run spread is unknown ({interval}: test sampling only)")
    needed = seeds_needed(sd, extra, margin)
    more = (
        f"about {needed} seeds would resolve ±{_percent(margin, kind)}"
        if needed
        else f"no number of seeds resolves ±{_percent(margin, kind)}: the spread or the test size alone is wider"
    )
    margin_text = _percent(margin, kind)
    return result(INCONCLUSIVE, f"consistent, but {interval} is wider than the paper's ±{margin_text}; {more}")


def _threshold(values, mean, sd, k, threshold, claim, kind, margin, interval, low, high, result) -> Judgement:
    """An "at least" / "at most" claim (see the module docstring)."""
    sign = 1.0 if claim == AT_LEAST else -1.0
    reaching = sum(sign * (value - threshold) >= 0 for value in values)
    word = "at least" if claim == AT_LEAST else "at most"
    if k >= 2:
        confidence = float(student_t.ppf(0.975, k - 1)) * sd / math.sqrt(k)
        nearest = mean - sign * confidence  # the confidence bound on the claim's side
        if sign * (nearest - (threshold - sign * margin)) >= 0 and reaching * 2 > k:
            return result(
                REPRODUCED, f"{reaching} of {k} seeds {word} {_percent(threshold, kind)}; our mean's 95% bound is too"
            )
    far = high if claim == AT_LEAST else low
    if sign * (far - threshold) < 0:
        return result(
            BELOW if claim == AT_LEAST else ABOVE,
            f"{reaching} of {k} seeds {word} {_percent(threshold, kind)}; even one run rarely would {interval}",
        )
    return result(INCONCLUSIVE, f"{reaching} of {k} seeds {word} {_percent(threshold, kind)}; {interval} allows both")
