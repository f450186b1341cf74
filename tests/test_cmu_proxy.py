"""The CMU paper's relative claim on FER2013 (cmu_proxy): both models in one job, their difference, the cost
estimate. The quick profile runs end to end on a 1,000-image subset of the real FER2013 (one epoch)."""

import numpy as np
import pytest

from fer_common.registry import REPLICATIONS
from fer_common.runner import run_replication
from replications.cmu_proxy import replication as cmu_proxy
from replications.cmu_proxy.cost import full_run_hours

from .helpers import requires_dataset


@pytest.fixture(scope="module")
def quick_record():
    record, _ = run_replication(REPLICATIONS.get("cmu_proxy"), "quick", write=False, make_plots=False)
    return record


@requires_dataset("fer2013")
def test_quick_profile_trains_both_models_on_one_split(quick_record):
    assert quick_record["data"] == "proxy"
    seeds = {setting: quick_record["settings"][setting]["seeds"]["0"] for setting in ("baseline", "resnet18")}
    sizes = {setting: entry["details"]["sizes"] for setting, entry in seeds.items()}
    assert sizes["baseline"] == sizes["resnet18"] == {"train": 800, "validation": 100, "test": 100}
    for entry in seeds.values():
        assert entry["report"]["n"] == 100, "validation accuracy is the reported figure"
        assert 0.0 <= entry["metrics"]["test_accuracy"] <= 1.0
        assert len(entry["history"]["val_accuracy"]) == 1


@requires_dataset("fer2013")
def test_the_difference_is_resnet18_minus_baseline_on_the_validation_split(quick_record):
    baseline = quick_record["settings"]["baseline"]["seeds"]["0"]
    resnet18 = quick_record["settings"]["resnet18"]["seeds"]["0"]
    assert resnet18["metrics"]["accuracy_minus_baseline"] == pytest.approx(
        resnet18["metrics"]["accuracy"] - baseline["metrics"]["accuracy"]
    )
    assert resnet18["metrics"]["test_accuracy_minus_baseline"] == pytest.approx(
        resnet18["metrics"]["test_accuracy"] - baseline["metrics"]["test_accuracy"]
    )
    assert resnet18["denominators"]["accuracy_minus_baseline"] == 100
    rows = {(row["setting"], row["metric"]): row for row in quick_record["rows"]}
    difference = rows[("resnet18", "accuracy_minus_baseline")]
    assert (difference["kind"], difference["reported"], difference["verdict"]) == ("value", 0.02, "proxy")
    assert difference["band"]["terms"]["floor"] == 0.01 and difference["band"]["terms"]["sampling"] is None
    assert rows[("baseline", "accuracy")]["verdict"] == rows[("resnet18", "accuracy")]["verdict"] == "proxy"


@requires_dataset("fer2013")
def test_resnet18_rows_say_random_weights(quick_record):
    assert quick_record["settings"]["resnet18"]["seeds"]["0"]["notes"] == [cmu_proxy.RANDOM_WEIGHTS_NOTE]
    assert quick_record["settings"]["baseline"]["seeds"]["0"]["notes"] == []
    for row in quick_record["rows"]:
        assert ("random weights" in row["note"]) == (row["setting"] == "resnet18"), row["metric"]


def test_subset_keeps_class_proportions_and_is_the_same_for_every_seed():
    labels = np.repeat(np.arange(7), [40, 5, 40, 70, 50, 30, 50])
    chosen = cmu_proxy.subset_indices(labels, 142)
    assert len(chosen) == 142
    np.testing.assert_allclose(np.bincount(labels[chosen]) / 142, np.bincount(labels) / len(labels), atol=0.02)
    np.testing.assert_array_equal(chosen, cmu_proxy.subset_indices(labels, 142))
    assert len(cmu_proxy.subset_indices(labels, None)) == len(labels)


def test_full_run_hours_add_both_models_epochs_and_seeds():
    rate = {"train_images_per_s": 100.0, "inference_images_per_s": 1000.0}
    rates = {f"{setting}@{size}px": rate for setting in ("baseline", "resnet18") for size in (48, 96)}
    sizes = {"train": 3600, "validation": 1800, "test": 1800}
    # per model and seed: 2 epochs x (36 s + 1.8 s) + 3.6 s final scoring = 79.2 s; x 2 models x 3 seeds
    assert full_run_hours(rates, sizes, epochs=2, seeds=3) == {"48px": 0.13, "96px": 0.13}
