"""The CMU paper's relative claim on FER2013 (cmu_proxy): both models in one job, their difference, the cost
estimate. The quick profile runs end to end on a 1,000-image subset of the real FER2013 (one epoch)."""

import numpy as np
import pytest

from fer_common.contract import Prepared
from fer_common.registry import REPLICATIONS
from fer_common.resume import checkpoint_folder
from fer_common.runner import run_replication
from fer_common.train import RuntimeOptions
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


def test_a_job_stopped_after_the_baseline_resumes_without_training_it_again(monkeypatch, tmp_path, caplog):
    """The job is both models: a session that ends while ResNet18 trains must not cost the baseline's hours."""
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    generator = np.random.default_rng(0)
    labels = np.repeat(np.arange(7), 20)
    images = generator.integers(0, 256, (len(labels), 48, 48, 1), dtype=np.uint8)
    data = cmu_proxy.Fer2013Data(images, labels, {"data": "synthetic", "code": "test"})
    prepared = Prepared(data, [f"class{index}" for index in range(7)], "synthetic", "proxy")
    config = {
        "validation_fraction": 0.1,
        "test_fraction": 0.1,
        "epochs": 1,
        "batch_size": 32,
        "learning_rate": 5e-4,
        "baseline_channels": [2, 2, 2, 2, 2],
    }
    runtime = RuntimeOptions()
    keys = {setting: cmu_proxy.run_key(data, setting, 0, config, runtime) for setting in ("baseline", "resnet18")}
    original = cmu_proxy.fit_resumable

    def stop_at_resnet18(*args, run_key, **kwargs):
        if run_key == keys["resnet18"]:
            raise KeyboardInterrupt  # the session ends
        return original(*args, run_key=run_key, **kwargs)

    monkeypatch.setattr(cmu_proxy, "fit_resumable", stop_at_resnet18)
    with pytest.raises(KeyboardInterrupt):
        cmu_proxy.CmuProxy().run_job(prepared, ("baseline", "resnet18"), 0, config, runtime)
    assert checkpoint_folder(keys["baseline"]).is_dir(), "the finished baseline's checkpoint is kept"

    monkeypatch.setattr(cmu_proxy, "fit_resumable", original)
    with caplog.at_level("INFO", logger="fer_common.resume"):
        outcomes = cmu_proxy.CmuProxy().run_job(prepared, ("baseline", "resnet18"), 0, config, runtime)
    assert f"[resume] {keys['baseline']}: continuing after epoch 1/1" in caplog.text
    assert f"[resume] {keys['resnet18']}" not in caplog.text
    assert "accuracy_minus_baseline" in outcomes["resnet18"].metrics
    assert not any(checkpoint_folder(key).exists() for key in keys.values()), "a finished job leaves none"


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
