"""The verdict rule (fer_common/verdicts.py) on constructed seeds: every outcome, threshold claims, one seed."""

import pytest
from scipy.stats import t as student_t

from fer_common.bands import ABOVE, AT_LEAST, AT_MOST, BELOW, NOT_RUN, PROXY, REPRODUCED
from fer_common.verdicts import INCONCLUSIVE, judge, prediction_half_width, seeds_needed


def _judge(values, reported, claim="about", n_ours=1000, n_paper=1000, margin=0.05, data="real"):
    return judge(
        values, reported, claim=claim, kind="proportion", margin=margin, n_ours=n_ours, n_paper=n_paper, data=data
    )


def test_the_prediction_interval_is_for_one_more_run_on_the_papers_test_size():
    values = [0.80, 0.82, 0.84]  # mean 0.82, sd 0.02
    judgement = _judge(values, 0.82, n_ours=1000, n_paper=500)
    extra = 0.82 * 0.18 * (1 / 500 - 1 / 1000)  # a smaller test set of the paper's adds sampling noise
    half = student_t.ppf(0.975, 2) * (0.02**2 * (1 + 1 / 3) + extra) ** 0.5
    assert judgement.low == pytest.approx(0.82 - half) and judgement.high == pytest.approx(0.82 + half)
    assert prediction_half_width(0.02, 3, 0.0) < half


def test_tight_seeds_within_the_margin_reproduce_even_a_small_difference():
    judgement = _judge([0.620, 0.625, 0.623], 0.632)  # ours 0.9 points lower, the range within ±5
    assert judgement.verdict == REPRODUCED and "within ±5.0%" in judgement.reason


def test_a_paper_value_outside_what_our_runs_make_plausible_is_not_reproduced_with_its_side():
    assert _judge([0.91, 0.91, 0.88, 0.92, 0.93], 0.83).verdict == ABOVE  # ours higher
    assert _judge([0.75, 0.79, 0.75], 0.93).verdict == BELOW  # ours lower


def test_a_value_inside_a_range_wider_than_its_margin_is_inconclusive_and_says_what_would_tell():
    """Chen's anger recall: 98.9% against 5 seeds of 74-96% on 27 images."""
    judgement = _judge([0.852, 0.889, 0.741, 0.778, 0.963], 0.989, n_ours=27, n_paper=27)
    assert judgement.verdict == INCONCLUSIVE and judgement.low < 0.989 <= judgement.high
    assert "no number of seeds resolves" in judgement.reason  # the seeds' spread alone is wider than ±5
    wider = _judge([0.80, 0.82, 0.84], 0.85, margin=0.06)
    assert wider.verdict == INCONCLUSIVE and "about" in wider.reason
    needed = seeds_needed(0.02, 0.0, 0.06)
    assert prediction_half_width(0.02, needed, 0.0) <= 0.06 < prediction_half_width(0.02, needed - 1, 0.0)


def test_at_least_is_reproduced_only_when_most_seeds_and_the_mean_bound_reach_it():
    assert _judge([0.98, 0.98, 0.96, 0.96, 0.96], 0.9, AT_LEAST).verdict == REPRODUCED
    # Chen's fear recall: 4 of 5 seeds under "over 90%"; one more run could still reach it.
    fear = _judge([0.733, 0.8, 0.8, 0.8, 1.0], 0.9, AT_LEAST, n_ours=15, n_paper=15)
    assert fear.verdict == INCONCLUSIVE and fear.reason.startswith("1 of 5 seeds at least 90.0%")
    assert _judge([0.60, 0.62, 0.61], 0.9, AT_LEAST).verdict == BELOW
    assert _judge([0.60, 0.62, 0.61], 0.1, AT_MOST).verdict == ABOVE
    assert _judge([0.02, 0.03, 0.02], 0.1, AT_MOST).verdict == REPRODUCED


def test_one_seed_is_never_reproduced_proxy_data_gets_no_verdict_and_nothing_is_not_run():
    assert _judge([0.85], 0.85).verdict == INCONCLUSIVE
    assert _judge([0.85], 0.30).verdict == ABOVE  # test sampling alone rules 30% out
    assert _judge([0.80, 0.82, 0.84], 0.30, data="proxy").verdict == PROXY
    assert _judge([], 0.85).verdict == NOT_RUN and _judge([0.8], 0.85, data="missing").verdict == NOT_RUN
