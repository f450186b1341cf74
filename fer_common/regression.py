"""CI regression bands: where a short profile's run (e.g. `ci`) must land again, on any CPU kind.

A `ci` test exists to catch broken wiring (a model that stops learning moves accuracy by tens of points), not
a one-image drift between CPU kinds. So one rule makes every band from the values recorded for it (every seed
of the profile on every CPU kind recorded; `regression_runs` in the metadata):

    band = [min(values) − margin, max(values) + margin],  margin = max(sampling, floor)

- sampling: 1.96·√(Σ p(1−p)/n_i), the test set's binomial noise. A proportion of n test cases: p = the mean of
  the values. A difference of two proportions (of n1 and n2 cases): p = ½ for each part, the widest, since
  the parts are not listed.
- floor: FLOOR_IMAGES test cases of the smallest set, for a proportion or a difference; the entry's own
  `floor` (in its units) for any other value, e.g. a loss.

Every recorded value lies in its band by construction; the margin is what a new seed on a new CPU kind may
add beyond the recorded spread. A run of several seeds is checked by its mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import MetadataError
from .metadata import RegressionBand, ReplicationMetadata
from .rows import derived_summaries
from .schema import Record

# A few test cases: how far one image-level drift may move a proportion beyond the recorded values, at least.
FLOOR_IMAGES = 3
_Z95 = 1.96


@dataclass(frozen=True)
class CiBand:
    """A regression band and the terms its margin is the larger of."""

    low: float
    high: float
    margin: float
    sampling: float | None
    floor: float

    @property
    def binding(self) -> str:
        return "sampling" if self.sampling is not None and self.sampling > self.floor else "floor"

    def holds(self, value: float) -> bool:
        return self.low <= value <= self.high


def ci_band(entry: RegressionBand) -> CiBand:
    """The band of one `regression:` entry, by the rule in this module's docstring."""
    values = entry.values
    if entry.kind == "value":
        sampling, floor = None, float(entry.floor)
    else:
        p = sum(values) / len(values) if entry.kind == "proportion" else 0.5
        p = min(max(p, 0.0), 1.0)
        sampling = _Z95 * math.sqrt(sum(p * (1.0 - p) / n for n in entry.n))
        floor = FLOOR_IMAGES / min(entry.n)
    margin = max(sampling or 0.0, floor)
    low, high = min(values) - margin, max(values) + margin
    if entry.kind != "value":  # a proportion lies in [0, 1], a difference of two in [-1, 1]
        low, high = max(low, 0.0 if entry.kind == "proportion" else -1.0), min(high, 1.0)
    return CiBand(low, high, margin, sampling, floor)


def check_regression_run(meta: ReplicationMetadata, profile: str, record: Record) -> list[str]:
    """Problems of a fresh run of `profile` (a record, e.g. from `run_replication(..., write=False)`) against
    the metadata's `regression:` bands of that profile: each metric's mean over the run's seeds must lie in
    its band. MetadataError when the metadata has no band for the profile."""
    bands = [entry for entry in meta.regression if entry.profile == profile]
    if not bands:
        raise MetadataError(f"{meta.path}: no regression bands for profile {profile!r}")
    records = ", ".join(dict.fromkeys(run.record for run, _ in meta.regression_seeds(profile)))
    problems = []
    summaries = derived_summaries(meta, record.settings)
    for entry in bands:
        label = f"{meta.id} {profile}: {entry.metric} [{entry.setting}]"
        summary = summaries.get(entry.setting, {}).get(entry.metric)
        if summary is None or summary.mean is None:
            problems.append(f"{label}: the run has no such value")
            continue
        band = ci_band(entry)
        if not band.holds(summary.mean):
            problems.append(
                f"{label}: {summary.mean:.4f} outside the band [{band.low:.4f}, {band.high:.4f}] "
                f"(recorded {min(entry.values):.4f}-{max(entry.values):.4f} ± {band.margin:.4f}, {band.binding}; "
                f"{records})"
            )
    return problems
