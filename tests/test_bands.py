"""Band arithmetic for each binding term, and every verdict."""

import math

import pytest

from fer_common.bands import (
    ABOUT,
    ABOVE,
    AT_LEAST,
    AT_MOST,
    BELOW,
    NOT_RUN,
    PROXY,
    REPRODUCED,
    Band,
    claim_band,
    paper_band,
    regression_band,
    verdict,
)
from fer_common.schema import BandEntry


def test_sampling_term_binds_for_small_test_set():
    band = paper_band(0.75, 80, 0.01)
    sampling = 1.96 * math.sqrt(0.75 * 0.25 / 80)  # 0.0949
    assert band.terms == pytest.approx({"sampling": sampling, "seeds": 0.02, "floor": 0.01})
    assert band.binding == "sampling"
    assert band.half_width == pytest.approx(sampling)
    assert (band.low, band.high) == pytest.approx((0.75 - sampling, 0.75 + sampling))


def test_seeds_term_binds_for_noisy_training():
    band = paper_band(0.9, 100_000, 0.03)
    assert band.binding == "seeds"
    assert band.half_width == pytest.approx(0.06)
    assert (band.low, band.high) == pytest.approx((0.84, 0.96))


def test_floor_binds_for_huge_test_set_and_stable_seeds():
    band = paper_band(0.5, 1_000_000, 0.001)
    assert band.binding == "floor"
    assert band.half_width == pytest.approx(0.01)
    assert (band.low, band.high) == pytest.approx((0.49, 0.51))


def test_value_band_has_no_sampling_term():
    band = paper_band(0.5008, None, 0.01, kind="value", floor=0.05)
    assert band.terms == {"sampling": None, "seeds": 0.02, "floor": 0.05}
    assert band.binding == "floor"
    assert (band.low, band.high) == pytest.approx((0.4508, 0.5508))
    assert paper_band(0.5008, None, 0.04, kind="value", floor=0.05).binding == "seeds"


def test_unknown_seed_sd_leaves_term_out():
    band = paper_band(0.75, 80, None)
    assert band.terms["seeds"] is None and band.binding == "sampling"


def test_proportion_band_is_clipped_to_unit_interval():
    band = paper_band(0.995, 100, 0.0)
    assert band.high == 1.0 and band.low == pytest.approx(0.995 - band.half_width)


def test_band_dict_is_what_a_record_row_holds():
    band = paper_band(0.75, 80, 0.01)
    assert BandEntry.model_validate(band.to_dict()).model_dump() == band.to_dict()


def test_band_input_errors():
    with pytest.raises(ValueError, match="n_test"):
        paper_band(0.75, None, 0.01)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        paper_band(83.25, 197, 0.01)
    with pytest.raises(ValueError, match="kind"):
        paper_band(0.5, 10, 0.01, kind="ratio")
    with pytest.raises(ValueError, match="floor"):
        paper_band(0.5, 10, 0.01, floor=-1)


@pytest.mark.parametrize(
    ("mean", "data", "expected"),
    [
        (0.75, "real", REPRODUCED),
        (0.70, "real", REPRODUCED),  # inside [0.70, 0.80], edge included
        (0.69, "real", BELOW),
        (0.81, "real", ABOVE),
        (0.10, "proxy", PROXY),  # proxy whatever the band
        (0.75, "proxy", PROXY),
        (0.75, "missing", NOT_RUN),
        (None, "real", NOT_RUN),
        (None, "proxy", NOT_RUN),
    ],
)
def test_verdicts(mean, data, expected):
    band = Band(
        low=0.70,
        high=0.80,
        half_width=0.05,
        terms={"sampling": None, "seeds": 0.0, "floor": 0.05},
        binding="floor",
    )
    assert verdict(mean, band, data) == expected


def test_verdict_rejects_unknown_data_kind():
    with pytest.raises(ValueError, match="data"):
        verdict(0.5, paper_band(0.5, 10, 0.0), "synthetic")


def test_regression_band():
    assert regression_band(0.90, 0.01) == pytest.approx((0.88, 0.92))
    assert regression_band(0.90, 0.001) == pytest.approx((0.89, 0.91))  # floor
    assert regression_band(0.90, 0.001, floor=0.05) == pytest.approx((0.85, 0.95))


# --- threshold claims -------------------------------------------------------------------------------------


def test_about_claim_keeps_the_two_sided_band():
    band = paper_band(0.9, 15, 0.02)
    assert claim_band(band, ABOUT) is band


@pytest.mark.parametrize(
    ("claim", "mean", "expected"),
    [
        (AT_LEAST, 0.95, REPRODUCED),  # above the threshold: the open side
        (AT_LEAST, 0.85, REPRODUCED),  # below 0.9 but within the sampling tolerance (0.152 for 15 cases)
        (AT_LEAST, 0.70, BELOW),
        (AT_MOST, 0.05, REPRODUCED),
        (AT_MOST, 0.99, REPRODUCED),  # above 0.9, within the tolerance
        (AT_MOST, 0.2, REPRODUCED),
    ],
)
def test_threshold_claims_are_one_sided(claim, mean, expected):
    band = claim_band(paper_band(0.9, 15, 0.01), claim)
    tolerance = 1.96 * math.sqrt(0.9 * 0.1 / 15)
    if claim == AT_LEAST:
        assert (band.low, band.high) == pytest.approx((0.9 - tolerance, 1.0))
    else:
        assert (band.low, band.high) == pytest.approx((0.0, 1.0))  # 0.9 + 0.152 is clipped to 1
    assert verdict(mean, band, "real") == expected


def test_at_most_fails_above_its_tolerance():
    band = claim_band(paper_band(0.1, 1000, 0.0), AT_MOST)
    assert band.high == pytest.approx(0.1 + 1.96 * math.sqrt(0.09 / 1000))
    assert verdict(0.2, band, "real") == ABOVE
    assert verdict(0.115, band, "real") == REPRODUCED


def test_threshold_claim_tolerance_includes_the_seeds_term():
    band = claim_band(paper_band(0.9, 100_000, 0.05), AT_LEAST)
    assert band.binding == "seeds" and band.low == pytest.approx(0.8)
    assert verdict(0.81, band, "real") == REPRODUCED and verdict(0.79, band, "real") == BELOW


def test_threshold_claim_on_proxy_or_missing_data():
    band = claim_band(paper_band(0.9, 50, None), AT_LEAST)
    assert verdict(0.5, band, "proxy") == PROXY
    assert verdict(None, band, "missing") == NOT_RUN


def test_threshold_claims_need_a_proportion_and_a_known_claim():
    with pytest.raises(ValueError, match="needs kind 'proportion'"):
        claim_band(paper_band(45.0, None, 1.0, kind="value", floor=10.0), AT_LEAST, "value")
    with pytest.raises(ValueError, match="claim must be one of"):
        claim_band(paper_band(0.9, 50, None), "over")
