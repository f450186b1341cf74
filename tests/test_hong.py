"""Hong replication: the model, the group metrics of the bias audit, the user-data loaders, the protocol."""

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from fer_common.contract import RunKeys
from fer_common.errors import DatasetError
from replications.hong.data import load_user_morphs
from replications.hong.model import build_model, final_feature_side
from replications.hong.replication import group_extras, mean_over_epochs

from .helpers import requires_dataset, shared_data_dir

CLASSES = ("negative", "neutral", "positive")
# Two photos per class, of four different race x sex cells (CFD subset file names).
CFD_PHOTOS = {
    "negative": ["CFD-BF-001-026-A.jpg", "CFD-WM-006-039-F.jpg"],
    "neutral": ["CFD-BM-004-002-N.jpg", "CFD-WF-006-002-N.jpg"],
    "positive": ["CFD-BF-009-008-HC.jpg", "CFD-WM-001-011-HO.jpg"],
}


def test_model_is_four_convolutions_and_three_fully_connected_layers():
    model = build_model()  # 96x96 grayscale
    assert [layer.__class__.__name__ for layer in model.layers] == [
        "Rescaling",
        *["Conv2D", "MaxPooling2D"] * 4,
        "Flatten",
        "Dense",
        "Dense",
        "Dense",
    ]
    # Feature map: 96 -conv-> 92 -pool-> 46 -> 42 -> 21 -> 17 -> 8 -> 4 -> 2, so Flatten gives 2*2*64 = 256.
    # conv 5*5*1*6+6 = 156, 5*5*6*16+16 = 2416, 5*5*16*32+32 = 12832, 5*5*32*64+64 = 51264;
    # dense 256*120+120 = 30840, 120*84+84 = 10164, 84*3+3 = 255 (hand-computed).
    assert model.layers[-4].output.shape[1:] == (256,)
    assert model.count_params() == 156 + 2416 + 12832 + 51264 + 30840 + 10164 + 255 == 107927
    # Colour only changes the first convolution: 5*5*3*6+6 = 456.
    assert build_model(input_shape=(96, 96, 3)).count_params() == 107927 - 156 + 456


def test_input_too_small_for_four_convolutions_is_rejected():
    assert final_feature_side(76, 4, 5) == 1  # the smallest input that works
    assert final_feature_side(75, 4, 5) == 0
    with pytest.raises(ValueError, match="too small"):
        build_model(input_shape=(32, 32, 1))  # the CIFAR tutorial's size


def test_weights_follow_pytorch_default_initialisation():
    first_dense = build_model().layers[-3]
    kernel, bias = (np.asarray(weight) for weight in first_dense.get_weights())
    bound = 1 / math.sqrt(256)  # U(±1/√fan_in)
    assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound
    assert np.abs(kernel).max() > 0.9 * bound  # uniform over the whole range, not a narrower one


def test_group_extras_are_race_and_sex_rates_and_gaps_without_unknown_groups():
    # Classes 0 negative, 1 neutral, 2 positive; "?" is a file name that is not CFD-style.
    y_true, y_pred = np.array([0, 1, 2, 0, 1, 2]), np.array([0, 1, 2, 1, 1, 0])
    demographics = {"race": np.array(["B", "B", "B", "W", "W", "W"]), "sex": np.array(["F", "M", "?"] * 2)}
    extras = group_extras(y_true, y_pred, demographics, list(CLASSES))
    assert extras["accuracy/race=B"] == 1.0 and extras["accuracy/race=W"] == pytest.approx(1 / 3)
    assert extras["accuracy_gap/race(B-W)"] == pytest.approx(2 / 3)  # B minus W
    assert extras["accuracy_gap/sex(F-M)"] == -0.5  # F 1/2, M 2/2
    assert not any("=?" in key for key in extras)


# --- loaders for the user's morphs ------------------------------------------------------------------


def _copy_cfd_photos(target: Path, by_class: bool) -> dict[str, str]:
    """A few real CFD photos copied into `target` (class folders or flat); {file name: label}."""
    labels = {}
    for label, names in CFD_PHOTOS.items():
        folder = target / label if by_class else target / "photos"
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy(shared_data_dir() / "cfd" / name, folder / name)
            labels[name] = label
    return labels


def _check_loaded(dataset, labels: dict[str, str]) -> None:
    assert len(dataset) == 6 and dataset.images.shape == (6, 256, 256, 3) and dataset.images.dtype == np.uint8
    assert dataset.class_counts() == {"negative": 2, "neutral": 2, "positive": 2}
    for path, label, race, sex in zip(
        dataset.meta["path"], dataset.labels, dataset.meta["race"], dataset.meta["sex"], strict=True
    ):
        name = Path(path).name
        assert CLASSES[label] == labels[name]
        assert (race, sex) == (name[4], name[5])  # CFD-<race><sex>-...
    assert sorted(dataset.groups) == sorted({name[4:10] for name in labels})  # person ids like BF-001


@requires_dataset("cfd")
def test_morphs_in_class_folders_load_with_race_and_sex(tmp_path):
    labels = _copy_cfd_photos(tmp_path / "hong_morphs", by_class=True)
    dataset = load_user_morphs(tmp_path / "hong_morphs")
    _check_loaded(dataset, labels)
    assert dataset.checksum


@requires_dataset("cfd")
def test_morphs_with_a_label_map_csv(tmp_path):
    folder = tmp_path / "hong_morphs"
    labels = _copy_cfd_photos(folder, by_class=False)
    # Labels in any case; file paths relative to the CSV's folder.
    rows = [f"photos/{name},{label.title()}" for name, label in labels.items()]
    (folder / "labels.csv").write_text("file,label\n" + "\n".join(rows) + "\n")
    _check_loaded(load_user_morphs(folder), labels)


def test_missing_morphs_folder_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_user_morphs(tmp_path / "nowhere")


def test_label_map_naming_a_missing_file_is_a_dataset_error(tmp_path):
    folder = tmp_path / "hong_morphs"
    folder.mkdir()
    (folder / "labels.csv").write_text("file,label\nCFD-BF-001-025-A.jpg,negative\n")
    with pytest.raises(DatasetError, match=r"line 2 'CFD-BF-001-025-A\.jpg'"):
        load_user_morphs(folder)


def test_label_map_with_an_unknown_label_is_a_dataset_error(tmp_path):
    folder = tmp_path / "hong_morphs"
    folder.mkdir()
    (folder / "face.jpg").write_bytes(b"")
    (folder / "labels.csv").write_text("file,label\nface.jpg,happy\n")
    with pytest.raises(DatasetError, match="'happy' is not one of negative, neutral, positive"):
        load_user_morphs(folder)


def test_folder_without_classes_or_label_map_is_a_dataset_error(tmp_path):
    (tmp_path / "hong_morphs" / "happy").mkdir(parents=True)
    with pytest.raises(DatasetError, match="No label map"):
        load_user_morphs(tmp_path / "hong_morphs")


# --- prepare and one job ------------------------------------------------------------------------------


@requires_dataset("cfd")
def test_user_morphs_make_a_real_run_and_pool_the_bias_audit_over_seeds(tmp_path, monkeypatch):
    from fer_common.metadata import load_metadata
    from fer_common.train import RuntimeOptions, configure_runtime
    from replications.hong.replication import Hong

    hong = Hong()
    _copy_cfd_photos(tmp_path / "hong_morphs", by_class=True)
    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path))
    config, _ = load_metadata("hong").resolve("quick")
    config.update(epochs=1, test_fraction=0.5)  # 3 train / 3 test images: wiring only
    prepared = hong.prepare(config)
    assert prepared.data_kind == "real" and "supplied by the user" in prepared.description
    assert prepared.data.images["grayscale"].shape == (6, 96, 96, 1)
    details = {}
    for seed in (0, 1):
        configure_runtime(seed)
        run_keys = RunKeys("hong", seed, prepared.checksum, "test", RuntimeOptions())
        outcome = hong.run_setting(prepared, "grayscale", seed, config, RuntimeOptions(), run_keys)
        details[seed] = outcome.details
    assert len(outcome.y_true) == 3 and outcome.probabilities.shape == (3, 3)
    assert {"accuracy_gap/race(B-W)", "accuracy_gap/sex(F-M)", "final_train_accuracy"} <= set(outcome.metrics)
    assert any(key.startswith("accuracy/race=") for key in outcome.metrics)
    assert set(outcome.history) >= {"accuracy", "val_accuracy"}  # the test set is the validation data
    # The runner pools the audit after the jobs, which may have run in different processes.
    added = hong.finalize(prepared, {"grayscale": details}, config)["grayscale"]
    first, last = added[0]["bias_audit"], added[1]["bias_audit"]
    assert first["pooled_over_seeds"] == [0] and last["pooled_over_seeds"] == [0, 1]
    assert sum(last["groups"][f"race={race}"]["n"] for race in "BW") == 6  # 3 test images x 2 seeds


@requires_dataset("cfd")
def test_cfd_proxy_composition():
    from fer_common.metadata import load_metadata
    from replications.hong.replication import Hong

    config, _ = load_metadata("hong").resolve("full")
    prepared = Hong().prepare(config)
    assert prepared.data_kind == "proxy" and prepared.description.startswith("PROXY")
    assert prepared.data.composition["classes"] == {"negative": 61, "neutral": 248, "positive": 71}
    assert set(prepared.data.demographics["race"]) == {"B", "W"}


@pytest.mark.slow
@requires_dataset("cfd")
def test_hong_ci_profile_seed_0_lands_in_its_regression_bands():
    """The full protocol (both inputs), one seed, against `regression:` (every recorded ci seed and CPU kind)."""
    from fer_common.metadata import load_metadata
    from fer_common.registry import REPLICATIONS
    from fer_common.regression import check_regression_run
    from fer_common.runner import run_replication

    record, _ = run_replication(REPLICATIONS.get("hong"), "ci", seeds=[0], write=False, make_plots=False)
    problems = check_regression_run(load_metadata("hong"), "ci", record)
    assert not problems, "\n".join(problems)


def test_mean_over_epochs_reads_the_named_epochs_and_refuses_a_short_run():
    curve = [0.3, 0.4, 0.5, 1.0]
    assert mean_over_epochs(curve, 1, 2) == pytest.approx(0.35)
    assert mean_over_epochs(curve, 3) == pytest.approx(0.75)  # epoch 3 to the last
    assert math.isnan(mean_over_epochs(curve, 1, 35))  # a 4-epoch run says nothing about epoch 35
    assert math.isnan(mean_over_epochs(curve, 70))


def test_the_balanced_setting_draws_neutral_down_to_the_mean_of_the_other_classes():
    from replications.hong.replication import balanced_subset

    labels = np.repeat([0, 1, 2], [61, 248, 71])  # the proxy's negative, neutral, positive
    chosen = balanced_subset(labels, neutral=1)
    assert np.bincount(labels[chosen]).tolist() == [61, 66, 71]
    np.testing.assert_array_equal(chosen, balanced_subset(labels, neutral=1))  # the same draw for every seed
    few = np.repeat([0, 1, 2], [10, 4, 12])
    assert np.bincount(few[balanced_subset(few, neutral=1)]).tolist() == [10, 4, 12]  # fewer neutral: all kept
