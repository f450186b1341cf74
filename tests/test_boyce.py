"""Boyce replication: Model 1 as the paper draws it, the 128-image test draw, ImageNet weights (found, verified,
missing) and the quick profile end to end on the real FER2013."""

from pathlib import Path

import keras
import numpy as np
import pytest

from fer_common.cli import hypothesis_profiles, main
from fer_common.contract import Preprocessing
from fer_common.data import load_dataset
from fer_common.errors import WeightsError
from fer_common.metadata import load_metadata
from fer_common.registry import REPLICATIONS
from fer_common.runner import run_replication
from fer_common.train import RuntimeOptions
from replications.boyce import diagnostics, imagenet, models
from replications.boyce.data import BoyceData, Images, draw_test_files
from replications.boyce.replication import Boyce, seed_chosen_on_test
from replications.boyce.training import accuracy_on, compile_model, predict_split, train_end_to_end
from replications.boyce.transfer import build_extractor, train_frozen_transfer, transfer_preprocessing

from .helpers import requires_dataset

TRANSFER_MODELS = ("vgg16", "inception_resnet_v2", "efficientnet_b0")


@pytest.fixture
def empty_keras_cache(tmp_path, monkeypatch) -> Path:
    """No weights anywhere: FER_WEIGHTS_DIR, KERAS_HOME and ~ all point into an empty temporary folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("FER_WEIGHTS_DIR", raising=False)
    cache = tmp_path / "keras" / "models"
    cache.mkdir(parents=True)
    return cache


def save_keras_release_style(model: keras.Model, path: Path) -> None:
    """Weights in the legacy HDF5 layout of the keras.applications downloads (`layer_names` at the top)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)


def test_model1_has_the_parameters_of_the_papers_layers():
    # Conv64 2x2 on 3 channels: 2*2*3*64 + 64 = 832; Conv32 2x2 on 64: 2*2*64*32 + 32 = 8,224;
    # Conv32 2x2 on 32: 2*2*32*32 + 32 = 4,128; three 2x2 pools: 48 -> 24 -> 12 -> 6, so Flatten gives
    # 6*6*32 = 1,152; Dense 512: 1,152*512 + 512 = 590,336; Dense 4: 512*4 + 4 = 2,052. Total 605,572.
    assert models.build_model1().count_params() == 605_572


def test_registry_is_the_metadatas_settings_and_every_custom_model_takes_48x48x3():
    assert tuple(load_metadata("boyce").settings) == models.MODEL_NAMES
    for name in models.CUSTOM_MODELS:
        model = models.build_custom_model(name)
        assert model.input_shape == (None, 48, 48, 3) and model.output_shape == (None, 4)
    with pytest.raises(ValueError, match="unknown Boyce model 'resnet50'"):
        models.is_transfer("resnet50")


@pytest.mark.parametrize(
    ("name", "application"),
    [("vgg16", keras.applications.vgg16), ("inception_resnet_v2", keras.applications.inception_resnet_v2)],
)
def test_preprocessing_layers_equal_the_applications_preprocess_input(name, application):
    backbone = models.BACKBONES[name]
    size = backbone.input_size
    pixels = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    as_layers = keras.Sequential([keras.Input((size, size, 3)), *models.preprocessing_layers(backbone)])
    expected = application.preprocess_input(pixels.copy())
    np.testing.assert_allclose(as_layers.predict(pixels, verbose=0), expected, atol=1e-3)


def test_missing_imagenet_weights_stop_the_run_at_once_saying_what_to_put_where(empty_keras_cache, capsys):
    assert main(["run", "boyce", "--profile", "quick", "--weights", "imagenet", "--no-record"]) == 2
    error = capsys.readouterr().err
    for name in TRANSFER_MODELS:
        backbone = models.BACKBONES[name]
        assert backbone.weights_file in error and backbone.weights_url in error
    assert f"Put each file in {empty_keras_cache.resolve()}" in error
    assert "--weights none" in error and "make replicate-boyce WEIGHTS=none" in error
    assert "Traceback" not in error


def test_the_explain_profiles_need_no_imagenet_weights(empty_keras_cache):
    # They train the final model only: `make explain-boyce` must not stop for missing transfer weights.
    meta = load_metadata(Boyce.metadata_file)
    profiles = hypothesis_profiles(meta)
    assert profiles
    for profile in profiles:
        config, _ = meta.resolve(profile)
        assert set(meta.settings_for(profile)) == {"final"}, profile
        assert imagenet.resolve_weights(config["weights"]) == {}, profile


def test_a_weights_file_in_the_keras_cache_is_found_verified_and_loaded(empty_keras_cache):
    keras.utils.set_random_seed(1)
    saved = models.build_feature_extractor("efficientnet_b0")
    save_keras_release_style(models.backbone_of(saved), empty_keras_cache / "efficientnetb0_notop.h5")

    found = imagenet.resolve_weights("imagenet", models=("efficientnet_b0",))["efficientnet_b0"]
    assert found.path.samefile(empty_keras_cache / "efficientnetb0_notop.h5")
    # Not the file Keras publishes, so its rows would say so.
    assert not found.matches_keras_release and "differ from the Keras release" in found.row_note
    keras.utils.set_random_seed(2)
    loaded = build_extractor("efficientnet_b0", found, trainable=False)
    for mine, theirs in zip(loaded.weights, saved.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))
    # The same file given by path.
    assert imagenet.resolve_weights(str(found.path), models=("efficientnet_b0",))["efficientnet_b0"].path == found.path


def test_a_weights_file_that_does_not_fit_its_model_is_named(empty_keras_cache):
    keras.utils.set_random_seed(1)
    other = models.backbone_of(models.build_feature_extractor("efficientnet_b0"))
    wrong = empty_keras_cache / models.BACKBONES["vgg16"].weights_file
    save_keras_release_style(other, wrong)
    weights = imagenet.resolve_weights("imagenet", models=("vgg16",))["vgg16"]
    with pytest.raises(WeightsError, match=str(wrong.name)):
        build_extractor("vgg16", weights, trainable=False)
    (empty_keras_cache / "not_weights.h5").write_bytes(b"not hdf5")
    with pytest.raises(WeightsError, match="must keep the name Keras gives it"):
        imagenet.resolve_weights(str(empty_keras_cache / "not_weights.h5"))


SMALL_FIT_CONFIG = {
    "learning_rate": 0.001,
    "batch_size": 8,
    "early_stopping_patience": 1,
    "reduce_lr": {"factor": 0.2, "patience": 1, "min_learning_rate": 0.00001},
    "augmentation": {},
}


def random_boyce_data(faces) -> BoyceData:
    return BoyceData(
        faces(16),
        faces(8),
        faces(8),
        faces(8),
        test_source="random",
        test_has_training_duplicate=np.zeros(8, dtype=bool),
        weights={},
    )


def test_frozen_transfer_model_predicts_what_its_head_gave_on_the_features_and_reloads(tmp_path):
    rng = np.random.default_rng(0)

    def faces(count: int) -> Images:
        return Images(rng.integers(0, 256, (count, 48, 48, 1), dtype=np.uint8), np.arange(count) % 4)

    data = random_boyce_data(faces)
    model, training, probabilities, _ = train_frozen_transfer(
        "vgg16", data, seed=0, epochs=1, config=SMALL_FIT_CONFIG, runtime=RuntimeOptions(), run_key="boyce-vgg16-test"
    )
    assert training.fitted.epochs_run == 1
    whole = predict_split(model, data.test, transfer_preprocessing("vgg16"))
    np.testing.assert_allclose(whole, probabilities["test"], atol=1e-5)
    # predict and demo load the saved model without importing this replication: plain layers only.
    model.save(tmp_path / "vgg16.keras")
    reloaded = keras.models.load_model(tmp_path / "vgg16.keras")
    np.testing.assert_allclose(predict_split(reloaded, data.test, transfer_preprocessing("vgg16")), whole, atol=1e-5)


@requires_dataset("fer2013")
def test_the_128_image_test_is_a_fixed_draw_of_32_per_class_listed_in_the_metadata():
    config = load_metadata("boyce").config
    private = load_dataset("fer2013", progress=False).select_classes(config["classes"]).split("PrivateTest")
    drawn = draw_test_files(private, config["test_per_class"], config["test_seed"])
    assert drawn == config["test_files"]
    # Independent of the order the loader read the files in, and a function of the seed.
    shuffled = private.subset(np.random.default_rng(5).permutation(len(private)))
    assert draw_test_files(shuffled, 32, config["test_seed"]) == drawn
    assert draw_test_files(private, 32, config["test_seed"] + 1) != drawn
    for name in config["classes"]:
        assert sum(path.startswith(f"test/{name}/PrivateTest_") for path in drawn) == 32


@requires_dataset("fer2013")
def test_quick_profile_runs_every_model_and_labels_random_initialisation():
    record, path = run_replication(REPLICATIONS.get("boyce"), "quick")
    assert path.exists() and record.data == "real"
    assert set(record.settings) == set(models.MODEL_NAMES)
    for name in models.MODEL_NAMES:
        rows = [row for row in record.rows if row.setting == name]
        # The half-width final model is kept for comparison only: its rows are the headline numbers.
        wanted = {"private_accuracy", "seconds_per_epoch"} | (
            {"accuracy"} if name == "final_reduced" else {"macro_f1", "private_recall/neutral"}
        )
        assert wanted <= {row.metric for row in rows}
        assert all(row.mean is not None for row in rows)
        seed = record.settings[name].seeds["0"]
        assert seed.report.n == 128 and seed.details["sizes"]["test"] == 128
        from_random = all("random initialisation (--weights none)" in row.note for row in rows)
        assert from_random == (name in TRANSFER_MODELS)
    [final] = [row for row in record.rows if row.setting == "final" and row.metric == "accuracy"]
    assert final.reported == 0.93 and final.band is not None
    # The hypotheses' measures (metadata `hypotheses:`) come with every run.
    seed = record.settings["final"].seeds["0"]
    hypothesis_metrics = {"accuracy_best_epoch_on_test", "draw128_mean", "draw128_p99", "draw128_max"}
    assert hypothesis_metrics | {"draw128_share_at_least_band_low"} <= set(seed.metrics)
    by_epoch = seed.details["test_accuracy_by_epoch"]
    assert by_epoch[seed.details["best_epoch"] - 1] == pytest.approx(seed.metrics["accuracy"])
    assert seed.metrics["accuracy_best_epoch_on_test"] == max(by_epoch)
    assert seed.details["seed_chosen_on_test"]["seed"] == 0
    assert seed.details["test_draws"]["per_class"] == 25  # the quick profile's PrivateTest: 25 per class


@pytest.mark.slow
@requires_dataset("fer2013")
def test_boyce_ci_profile_seed_0_lands_in_its_regression_bands():
    """Model 1 and the half-width final model on per-class subsets, no ImageNet weights, against `regression:`."""
    from fer_common.metadata import load_metadata
    from fer_common.registry import REPLICATIONS
    from fer_common.regression import check_regression_run
    from fer_common.runner import run_replication

    record, _ = run_replication(REPLICATIONS.get("boyce"), "ci", seeds=[0], write=False, make_plots=False)
    problems = check_regression_run(load_metadata("boyce"), "ci", record)
    assert not problems, "\n".join(problems)


# --- the hypotheses for the capstone's ~93% ---------------------------------------------------------------


def test_the_128_test_images_are_scored_after_every_epoch_and_the_selected_epochs_score_is_the_models():
    rng = np.random.default_rng(0)

    def faces(count: int) -> Images:
        return Images(rng.integers(0, 256, (count, 48, 48, 1), dtype=np.uint8), np.arange(count) % 4)

    data = random_boyce_data(faces)
    model = models.build_custom_model("model1", 4)
    compile_model(model, 0.001)
    preprocessing = Preprocessing(size=models.CUSTOM_INPUT_SIZE, channels=3, scale="unit")
    training = train_end_to_end(
        model, data, preprocessing, 0, 3, SMALL_FIT_CONFIG, RuntimeOptions(), run_key="boyce-test-epochs"
    )
    assert len(training.test_accuracy_by_epoch) == training.fitted.epochs_run
    assert not any("test" in key for key in training.fitted.history)  # the history is a plain run's
    selected = training.test_accuracy_by_epoch[training.fitted.best_epoch - 1]
    assert selected == accuracy_on(model, preprocessing.apply(data.test.images), data.test.labels)


def test_a_perfect_classifier_scores_1_on_every_draw_and_draws_repeat_with_their_seed():
    labels = np.repeat(np.arange(4), 50)
    perfect = diagnostics.draw_accuracies(labels, np.ones(200, bool), per_class=32, count=100, seed=0)
    assert diagnostics.draw_metrics(perfect, threshold=0.9) == {
        "draw128_mean": 1.0,
        "draw128_p99": 1.0,
        "draw128_max": 1.0,
        "draw128_share_at_least_band_low": 1.0,
    }
    correct = np.random.default_rng(1).random(200) < 0.7
    first = diagnostics.draw_accuracies(labels, correct, per_class=32, count=100, seed=0)
    np.testing.assert_array_equal(first, diagnostics.draw_accuracies(labels, correct, 32, 100, seed=0))
    assert not np.array_equal(first, diagnostics.draw_accuracies(labels, correct, 32, 100, seed=1))
    assert np.all(np.isin(first * 128, np.arange(129)))  # each draw scores 128 images
    with pytest.raises(ValueError, match="smallest class"):
        diagnostics.draw_accuracies(labels, correct, per_class=51, count=1, seed=0)


def test_the_draws_threshold_is_the_low_end_of_the_papers_sampling_band():
    from fer_common.bands import paper_band

    low = diagnostics.paper_band_low(Boyce.metadata_file, "accuracy", "final")
    assert low == paper_band(0.93, 128, None).low
    assert 0.88 < low < 0.89


def test_near_duplicates_are_the_audits_phash_within_the_threshold():
    from fer_common.audit_duplicates import perceptual_hashes

    images = np.random.default_rng(0).integers(0, 256, (6, 48, 48, 1), dtype=np.uint8)
    hashes = diagnostics.perceptual_hashes(images)
    np.testing.assert_array_equal(hashes, perceptual_hashes(images))
    one_bit_off = hashes[:2] ^ np.uint64(1)
    assert diagnostics.near_duplicate_mask(one_bit_off, hashes[2:], threshold=6).tolist() == [False, False]
    assert diagnostics.near_duplicate_mask(one_bit_off, hashes, threshold=1).tolist() == [True, True]
    assert diagnostics.near_duplicate_mask(one_bit_off, hashes, threshold=0).tolist() == [False, False]
    metrics, denominators = diagnostics.accuracy_by_duplicate(
        np.array([True, False, True, True]), np.array([True, True, False, False])
    )
    assert metrics == {"accuracy_test_with_training_duplicate": 0.5, "accuracy_test_without_training_duplicate": 1.0}
    assert denominators == {"accuracy_test_with_training_duplicate": 2, "accuracy_test_without_training_duplicate": 2}


def test_the_seed_chosen_on_the_test_is_the_best_at_its_selected_epoch():
    by_seed = {
        0: {"test_accuracy_by_epoch": [0.5, 0.9, 0.6], "best_epoch": 3},
        1: {"test_accuracy_by_epoch": [0.7, 0.8], "best_epoch": 2},
    }
    assert seed_chosen_on_test(by_seed) == {
        "seed": 1,
        "accuracy": 0.8,
        "seed_and_epoch": {"seed": 0, "epoch": 2, "accuracy": 0.9},
        "seeds": 2,
    }


@requires_dataset("fer2013")
def test_test_from_training_draws_its_128_from_the_images_the_model_trains_on():
    config, _ = load_metadata("boyce").resolve("quick")
    config["test_source"] = "training"
    data = Boyce().prepare(config).data
    assert len(data.test) == 128 and np.bincount(data.test.labels).tolist() == [32] * 4
    train_rows = {image.tobytes(): label for image, label in zip(data.train.images, data.train.labels, strict=True)}
    assert all(
        train_rows.get(image.tobytes()) == label
        for image, label in zip(data.test.images, data.test.labels, strict=True)
    )
    assert data.test_has_training_duplicate.all()  # each is its own duplicate
    assert "training images" in data.test_source


@requires_dataset("fer2013")
def test_validation_with_the_test_pool_holds_publictest_and_privatetest():
    config, _ = load_metadata("boyce").resolve("quick")
    config["validation_splits"] = ["PublicTest", "PrivateTest"]
    data = Boyce().prepare(config).data
    assert len(data.validation) == 2 * 4 * config["validation_per_class"]
