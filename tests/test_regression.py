"""CI regression bands: one rule, values that are the records' own, and every recorded CPU kind inside."""

from __future__ import annotations

import math
import statistics

import pytest

from fer_common.cpu_kinds import PairedShift, ci_values_by_kind, cpu_kinds_markdown
from fer_common.errors import MetadataError
from fer_common.metadata import RegressionBand, list_replications, load_metadata
from fer_common.provenance import cpu_kind
from fer_common.records import load_record
from fer_common.regression import FLOOR_IMAGES, check_regression_run, ci_band
from fer_common.rows import metric_denominator
from fer_common.schema import Record, Setting

from .helpers import REPO_ROOT, made_record, seed_entry

WITH_BANDS = [name for name in list_replications() if load_metadata(name).regression]
# What the ci profile of Chen gave for seed 0 on each CPU kind (issue: the AMX value broke the old band).
CHEN_SEED_0 = {"avx512-bf16": 0.8883, "avx2": 0.9137, "amx-bf16": 0.8782}


def _one_seed_run(setting: str, metric: str, value: float) -> Record:
    """A run of one seed whose `metric` in `setting` came out as `value`."""
    ran = Setting(seeds={"0": seed_entry(metrics={metric: value})}, summary={})
    return made_record(profile="ci", settings={setting: ran})


def _band(**fields) -> RegressionBand:
    return RegressionBand(profile="ci", metric="accuracy", setting="s", **fields)


def test_every_replication_with_a_ci_profile_has_bands():
    assert set(WITH_BANDS) == {"boyce", "chen", "cmu_proxy", "hong", "neamtiu"}


def test_a_proportion_band_is_the_recorded_range_widened_by_the_sampling_term():
    band = ci_band(_band(n=[100], values=[0.5, 0.6]))
    sampling = 1.96 * math.sqrt(0.55 * 0.45 / 100)
    assert (band.low, band.high, band.binding) == pytest.approx((0.5 - sampling, 0.6 + sampling, "sampling"))


def test_a_few_test_images_are_the_margin_where_the_sampling_term_is_smaller():
    band = ci_band(_band(n=[50], values=[0.98, 0.99]))
    assert band.binding == "floor" and band.margin == pytest.approx(FLOOR_IMAGES / 50)
    assert band.high == 1.0  # a proportion's band stops at 1


def test_a_difference_takes_the_widest_sampling_term_of_both_sets():
    band = ci_band(_band(kind="difference", n=[100, 50], values=[0.0, 0.1]))
    assert band.margin == pytest.approx(1.96 * math.sqrt(0.25 / 100 + 0.25 / 50))
    assert band.low == pytest.approx(-band.margin)


def test_a_value_band_is_widened_by_its_own_floor():
    band = ci_band(_band(kind="value", floor=0.05, values=[0.3, 0.4]))
    assert (band.low, band.high, band.sampling) == pytest.approx((0.25, 0.45, None))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"n": [], "values": [0.5, 0.6]}, "a proportion needs 1 test-set size"),
        ({"kind": "difference", "n": [10], "values": [0.1, 0.2]}, "a difference needs 2 test-set size"),
        ({"kind": "value", "values": [0.1, 0.2]}, "needs its margin as `floor`"),
        ({"n": [10], "values": [0.5]}, "at least 2 items"),
    ],
)
def test_a_band_without_what_its_rule_needs_is_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        _band(**fields)


def test_the_bands_need_one_value_per_recorded_seed(tmp_path):
    source = (REPO_ROOT / "replications" / "chen" / "metadata.yaml").read_text()
    folder = tmp_path / "chen"
    folder.mkdir()
    (folder / "metadata.yaml").write_text(
        source.replace(
            "seeds: [0, 1, 2]}\n  - {profile: ci, record: ci-2026120",
            "seeds: [0, 1]}\n  - {profile: ci, record: ci-2026120",
            1,
        )
    )
    with pytest.raises(MetadataError, match="7 values, but the regression_runs of profile 'ci' hold 6 seeds"):
        load_metadata(folder / "metadata.yaml")


@pytest.mark.parametrize("replication", WITH_BANDS)
def test_the_listed_values_are_the_recorded_runs_values(replication):
    """Every value of a band is its record's, to the 4 decimals listed; each record's test set and CPU kind are
    the ones the band names."""
    meta = load_metadata(replication)
    for entry in meta.regression:
        for (run, seed), listed in zip(meta.regression_seeds(entry.profile), entry.values, strict=True):
            record = load_record(REPO_ROOT / "results" / replication / run.record)
            assert record.profile == run.profile and seed in record.provenance.seeds
            recorded = record.settings[entry.setting].seeds[str(seed)]
            label = f"{replication} {entry.metric} [{entry.setting}] seed {seed} of {run.record}"
            assert listed == pytest.approx(recorded.metrics[entry.metric], abs=5e-5), label
            if entry.kind == "proportion":
                assert metric_denominator(entry.metric, recorded) == entry.n[0], label
            provenance = record.provenance
            # Records made before provenance kept the CPU kind name only the vendor: the Intel machine has AMX.
            recorded_kind = provenance.cpu_kind or ("amx-bf16" if "Intel" in provenance.cpu else None)
            assert recorded_kind in (None, run.cpu), label
            assert ("Intel" in provenance.cpu) == (run.cpu == "amx-bf16"), label


@pytest.mark.parametrize("replication", WITH_BANDS)
def test_every_recorded_value_lands_in_its_band_through_the_check(replication):
    meta = load_metadata(replication)
    for entry in meta.regression:
        for value in entry.values:
            problems = check_regression_run(meta, entry.profile, _one_seed_run(entry.setting, entry.metric, value))
            assert not [p for p in problems if f"{entry.metric} [{entry.setting}]:" in p and "outside" in p], problems


@pytest.mark.parametrize(("cpu", "value"), CHEN_SEED_0.items())
def test_chen_seed_0_of_every_cpu_kind_lands_in_the_accuracy_band(cpu, value):
    problems = check_regression_run(load_metadata("chen"), "ci", _one_seed_run("random_split", "accuracy", value))
    assert not [p for p in problems if "accuracy [random_split]" in p], (cpu, problems)


def test_a_model_that_stops_learning_leaves_the_band():
    meta = load_metadata("chen")
    problems = check_regression_run(meta, "ci", _one_seed_run("random_split", "accuracy", 1 / 7))
    (accuracy,) = [p for p in problems if "accuracy [random_split]" in p]
    assert "0.1429 outside the band [0.8142, 0.9574]" in accuracy and "sampling" in accuracy


def test_a_run_without_the_banded_value_is_a_problem_not_a_pass():
    problems = check_regression_run(load_metadata("hong"), "ci", made_record(profile="ci"))
    assert problems and all("the run has no such value" in p for p in problems)


def test_the_cpu_kind_is_read_from_the_widest_matrix_flag():
    assert cpu_kind("flags\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n") == "amx-bf16"
    assert cpu_kind("flags\t: fpu avx2 avx512f avx512_bf16\n") == "avx512-bf16"
    assert cpu_kind("flags\t: fpu sse4_2 avx2 fma\n") == "avx2"
    assert cpu_kind("flags\t: fpu sse4_2\n") == "other"


# --- how far the CPU kind moves a run (results/audits.md) -------------------------------------------------


def test_a_paired_shift_has_the_mean_and_t_interval_of_its_seed_differences():
    shift = PairedShift("accuracy", "s", "amx-bf16", "avx512-bf16", (0, 1, 2), (-0.01, -0.05, -0.036))
    half = 4.302653 * statistics.stdev(shift.differences) / math.sqrt(3)
    assert shift.mean == pytest.approx(-0.032)
    assert shift.interval == pytest.approx((-0.032 - half, -0.032 + half), abs=1e-6)
    assert PairedShift("accuracy", "s", "avx2", "avx512-bf16", (0, 1), (0.01, 0.02)).interval is None


def test_the_ci_values_are_regrouped_by_cpu_kind_and_paired_by_seed():
    accuracy = ci_values_by_kind(load_metadata("chen"))[0]
    assert accuracy.by_kind == {
        "avx512-bf16": {0: 0.8883, 1: 0.9086, 2: 0.9086},
        "avx2": {0: 0.9137},
        "amx-bf16": {0: 0.8782, 1: 0.8579, 2: 0.8731},
    }
    avx2, amx = accuracy.shifts()
    assert (avx2.seeds, avx2.differences) == ((0,), pytest.approx((0.0254,)))
    assert (amx.reference, amx.seeds) == ("avx512-bf16", (0, 1, 2))


def test_the_audits_page_shows_the_shifts_and_names_replications_run_on_one_kind():
    metas = [load_metadata(name) for name in ("chen", "hong")]
    text = "\n".join(cpu_kinds_markdown(metas, REPO_ROOT / "results"))
    assert "amx-bf16 − avx512-bf16: -3.2 [-8.3, +1.9] (seeds 0, 1, 2: -1.0, -5.1, -3.5)" in text
    assert "Full run repeated on Intel(R) Xeon(R) Processor" in text  # results/chen/repeats/
    assert "| accuracy [random_split] | +0.1 [-3.2, +3.4]" in text
    assert "Recorded on one CPU kind only, so far: `hong` (avx512-bf16)." in text
