"""Tolerance bands around a paper's reported figures, and the verdicts they give.

Band = reported ± max(sampling, seeds, floor) (see ../shared/REPLICATIONS.md):
- sampling: 1.96·sqrt(p(1−p)/n_test), the binomial noise of the paper's own test set (proportions only);
- seeds: 2·sd of our result over seeds, the run-to-run noise of training;
- floor: a minimum width (1 point by default), so a tiny test set variance never makes a band absurdly tight.
Every term is kept so a reader sees why the band is as wide as it is.

A threshold claim ("above 90%", "below 5%"; `claim: at_least | at_most` in the metadata) gets a one-sided
band with the same half-width around its threshold: at_least t is reproduced when our mean is at or above
t − max(sampling, seeds, floor), at_most t when it is at or below t + that half-width; otherwise it is
"not reproduced (below)" / "not reproduced (above)". The sampling term is that of a proportion equal to
the threshold on the paper's test size, so a claim at the edge of what its test set can show is not failed
by test-set noise alone. `claim: about` (the default) is the two-sided band above.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

REPRODUCED = "reproduced"
BELOW = "not reproduced (below)"
ABOVE = "not reproduced (above)"
PROXY = "proxy"
NOT_RUN = "not run"
BEYOND_PAPER = "beyond paper"
VERDICTS = (REPRODUCED, BELOW, ABOVE, PROXY, NOT_RUN, BEYOND_PAPER)

DATA_KINDS = ("real", "proxy", "missing")
# What a paper claims about a figure: that it is about the value (two-sided band) or a threshold it clears.
ABOUT = "about"
AT_LEAST = "at_least"
AT_MOST = "at_most"
CLAIMS = (ABOUT, AT_LEAST, AT_MOST)
# How a row reads its sentence: the reading we take, or another reading of an ambiguous sentence.
PRIMARY = "primary"
ALTERNATIVE = "alternative"
READINGS = (PRIMARY, ALTERNATIVE)
KINDS = ("proportion", "value")
DEFAULT_FLOOR = 0.01
# Means that differ from a band edge by float round-off only still count as inside.
_EDGE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Band:
    """An interval [low, high] and the terms its half-width is the maximum of (None = not applicable)."""

    low: float
    high: float
    half_width: float
    terms: dict[str, float | None]
    binding: str

    def position(self, value: float) -> str:
        """'inside', 'below' or 'above' the band."""
        if value < self.low - _EDGE_TOLERANCE:
            return "below"
        if value > self.high + _EDGE_TOLERANCE:
            return "above"
        return "inside"

    def to_dict(self) -> dict:
        return asdict(self)


def _check_number(name: str, value: float | None, *, allow_none: bool = False, signed: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0 and not signed:
        raise ValueError(f"{name} must not be negative, got {value!r}")


def paper_band(
    reported: float,
    n_test: int | None,
    seed_sd: float | None,
    *,
    kind: str = "proportion",
    floor: float = DEFAULT_FLOOR,
) -> Band:
    """The band around a reported figure.

    kind "proportion" (accuracy, recall, ...): all three terms; needs n_test. Proportion bands are clipped
    to [0, 1], which never changes a verdict. kind "value" (e.g. a loss): no sampling term, and the floor
    comes from the metadata. seed_sd None (not known, e.g. nothing was run) leaves the seeds term out.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    _check_number("reported", reported, signed=True)
    _check_number("seed_sd", seed_sd, allow_none=True)
    _check_number("floor", floor)
    sampling = None
    if kind == "proportion":
        if not 0.0 <= reported <= 1.0:
            raise ValueError(f"a proportion must lie in [0, 1], got {reported!r} (use kind='value'?)")
        if isinstance(n_test, bool) or not isinstance(n_test, int) or n_test <= 0:
            raise ValueError(f"a proportion's band needs the paper's test size n_test > 0, got {n_test!r}")
        sampling = 1.96 * math.sqrt(reported * (1.0 - reported) / n_test)
    terms = {
        "sampling": sampling,
        "seeds": None if seed_sd is None else 2.0 * seed_sd,
        "floor": float(floor),
    }
    # Ties go to the first term in this order, so the binding term is deterministic.
    binding = max((name for name in terms if terms[name] is not None), key=lambda name: terms[name])
    half_width = float(terms[binding])
    low, high = reported - half_width, reported + half_width
    if kind == "proportion":
        low, high = max(0.0, low), min(1.0, high)
    return Band(low=low, high=high, half_width=half_width, terms=terms, binding=binding)


def claim_band(band: Band, claim: str, kind: str = "proportion") -> Band:
    """The band of a claim: `band` itself for "about", its one-sided version for a threshold claim.

    at_least keeps the low edge and opens the top (to 1 for a proportion), at_most keeps the high edge and
    opens the bottom (to 0); `verdict` then reads the position as for any band. Only proportions have a
    natural open end, so a threshold claim on kind "value" is refused.
    """
    if claim not in CLAIMS:
        raise ValueError(f"claim must be one of {CLAIMS}, got {claim!r}")
    if claim == ABOUT:
        return band
    if kind != "proportion":
        raise ValueError(f"a threshold claim ({claim}) needs kind 'proportion', got {kind!r}")
    if claim == AT_LEAST:
        return replace(band, high=1.0)
    return replace(band, low=0.0)


def verdict(mean: float | None, band: Band | None, data: str) -> str:
    """The verdict of a reproduced mean against a paper band, given what data it was run on."""
    if data not in DATA_KINDS:
        raise ValueError(f"data must be one of {DATA_KINDS}, got {data!r}")
    if data == "missing" or mean is None:
        return NOT_RUN
    if data == "proxy":
        return PROXY
    if band is None:
        raise ValueError("a verdict on real data needs a band")
    position = band.position(mean)
    return {"inside": REPRODUCED, "below": BELOW, "above": ABOVE}[position]


def regression_band(expected_mean: float, expected_sd: float, floor: float = DEFAULT_FLOOR) -> tuple[float, float]:
    """Where our own result is expected to land again: our mean ± max(2·sd, floor)."""
    _check_number("expected_mean", expected_mean, signed=True)
    _check_number("expected_sd", expected_sd)
    _check_number("floor", floor)
    half = max(2.0 * expected_sd, floor)
    return expected_mean - half, expected_mean + half
