"""The CMU paper's relative claim on FER2013 (cmu_proxy): one job per model on the seed's split, their paired
difference, the stopping rule, the cost estimate. The quick profile runs end to end on a 1,000-image subset of
the real FER2013 (at most two epochs)."""

import numpy as np
import pytest

from fer_common.per_image import decode_labels
from fer_common.registry import REPLICATIONS
from fer_common.runner import run_replication
from fer_common.train import RuntimeOptions
from replications.cmu_proxy import replication as cmu_proxy
from studies.cmu_proxy_cost import full_run_hours

from .helpers import requires_dataset


@pytest.fixture(scope="module")
def quick_record():
    record, _ = run_replication(REPLICATIONS.get("cmu_proxy"), "quick", write=False, make_plots=False)
    return record


@requires_dataset("fer2013")
def test_quick_profile_trains_both_models_on_one_split(quick_record):
    assert quick_record.data == "proxy"
    seeds = {setting: quick_record.settings[setting].seeds["0"] for setting in ("baseline", "resnet18")}
    sizes = {setting: entry.details["sizes"] for setting, entry in seeds.items()}
    assert sizes["baseline"] == sizes["resnet18"] == {"train": 800, "validation": 100, "test": 100}
    for entry in seeds.values():
        assert entry.report.n == 100, "validation accuracy is the reported figure"
        assert 0.0 <= entry.metrics["test_accuracy"] <= 1.0
        epochs = entry.details["epochs_trained"]
        assert len(entry.history["val_accuracy"]) == epochs <= 2
        assert entry.details["stopped_early"] == (epochs < 2)
        held_out = entry.details["held_out"]
        assert np.mean(decode_labels(held_out["true"]) == decode_labels(held_out["predicted"])) == pytest.approx(
            entry.metrics["test_accuracy"]
        )
    assert seeds["baseline"].predictions["true"] == seeds["resnet18"].predictions["true"], "one split"


@requires_dataset("fer2013")
def test_the_difference_is_resnet18_minus_baseline_on_the_same_images_with_a_paired_test(quick_record):
    baseline = quick_record.settings["baseline"].seeds["0"]
    resnet18 = quick_record.settings["resnet18"].seeds["0"]
    rows = {(row.setting, row.metric): row for row in quick_record.rows}
    assert rows[("resnet18", "accuracy_minus_baseline")].mean == pytest.approx(
        resnet18.metrics["accuracy"] - baseline.metrics["accuracy"]
    )
    assert rows[("resnet18", "test_accuracy_minus_baseline")].mean == pytest.approx(
        resnet18.metrics["test_accuracy"] - baseline.metrics["test_accuracy"]
    )
    assert "accuracy_minus_baseline" not in resnet18.metrics, "derived from the predictions, not stored"
    difference = rows[("resnet18", "accuracy_minus_baseline")]
    assert "paired, same images: seed 0" in difference.note and "McNemar p=" in difference.note
    assert (difference.kind, difference.reported, difference.verdict) == ("value", 0.02, "proxy")
    assert difference.band.terms["floor"] == 0.01 and difference.band.terms["sampling"] is None
    assert rows[("baseline", "accuracy")].verdict == rows[("resnet18", "accuracy")].verdict == "proxy"


@requires_dataset("fer2013")
def test_resnet18_rows_say_random_weights(quick_record):
    assert quick_record.settings["resnet18"].seeds["0"].notes == [cmu_proxy.RANDOM_WEIGHTS_NOTE]
    assert quick_record.settings["baseline"].seeds["0"].notes == []
    for row in quick_record.rows:
        assert ("random weights" in row.note) == (row.setting == "resnet18"), row.metric


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


class _Model:
    stop_training = False


def test_training_stops_once_validation_accuracy_has_not_improved_for_the_patience_and_resumes_its_count():
    stopper = cmu_proxy.PlateauStop(patience=3)
    stopper.set_model(_Model())
    for epoch, accuracy in enumerate([0.30, 0.35, 0.34, 0.35]):  # equal is no improvement
        stopper.on_epoch_end(epoch, {"val_accuracy": accuracy})
    assert not stopper.model.stop_training and stopper.wait == 2
    resumed = cmu_proxy.PlateauStop(patience=3)  # a session ended: the checkpoint carries the count
    resumed.set_model(_Model())
    resumed.restore_resume_state(*stopper.resume_state())
    resumed.on_epoch_end(4, {"val_accuracy": 0.33})
    assert resumed.model.stop_training and resumed.best == 0.35


@pytest.mark.slow
@requires_dataset("fer2013")
def test_cmu_proxy_ci_profile_seed_0_lands_in_its_regression_bands():
    """Both models on a 6,000-image subset for 3 epochs, one seed, against `regression:` (every recorded ci seed).

    Another thread count gives other numbers, and a test session's thread pools are sized by whichever test
    ran TensorFlow first: the job runs in a fresh one-thread worker, as its seeds did (`--threads 1
    --executor process`)."""
    from fer_common.executors import ExecutorOptions
    from fer_common.metadata import load_metadata
    from fer_common.regression import check_regression_run

    record, _ = run_replication(
        REPLICATIONS.get("cmu_proxy"),
        "ci",
        seeds=[0],
        options=RuntimeOptions(threads=1),
        executor=ExecutorOptions(kind="process", workers=1),
        write=False,
        make_plots=False,
    )
    problems = check_regression_run(load_metadata("cmu_proxy"), "ci", record)
    assert not problems, "\n".join(problems)
