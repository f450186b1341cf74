"""The FER2013 CNN recipe (ours, not a replication): model size, augmentation, a PublicTest-only epoch
selection, and the quick profile end to end on real FER2013."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import tensorflow as tf

from fer_common.metadata import load_metadata
from fer_common.registry import REPLICATIONS
from fer_common.runner import run_replication
from recipes.fer2013_cnn import recipe
from recipes.fer2013_cnn.augmentation import Augmentation, ErasingConfig, epoch_batches, random_erase

from .helpers import requires_dataset

CONFIG = load_metadata(recipe.Fer2013Cnn.metadata_file).config
MAX_MEGABYTES = 10.0


def test_recipe_is_registered_and_claims_no_paper_figure():
    recipe_meta = load_metadata(REPLICATIONS.get("fer2013_cnn").metadata_file)
    assert recipe_meta.reported == []
    assert "NOT A REPLICATION" in recipe_meta.protocol


def test_model_has_1183255_parameters_and_a_file_under_10_megabytes():
    model = recipe.model_from_config(CONFIG)
    assert model.count_params() == 1_183_255
    assert model.input_shape == (None, 48, 48, 1)
    assert model.layers[-1].dtype_policy.name == "float32"  # softmax stays float32 under mixed precision
    assert recipe.model_megabytes(model) <= MAX_MEGABYTES


def _faces(count: int = 8) -> tf.Tensor:
    return tf.random.stateless_uniform([count, 48, 48, 1], seed=[1, 2])


def test_random_erasing_keeps_shape_and_dtype_and_repeats_with_its_seed():
    config = ErasingConfig(probability=0.5)
    faces = _faces()
    first = random_erase(faces, config, tf.constant([3, 4]))
    assert first.shape == faces.shape and first.dtype == faces.dtype
    np.testing.assert_array_equal(first.numpy(), random_erase(faces, config, tf.constant([3, 4])).numpy())
    assert not np.array_equal(first.numpy(), random_erase(faces, config, tf.constant([5, 6])).numpy())


def test_random_erasing_changes_one_rectangle_of_the_configured_area_in_every_image_at_probability_one():
    config = ErasingConfig(probability=1.0, area=(0.02, 0.2))
    faces = _faces(16)
    changed = (random_erase(faces, config, tf.constant([7, 8])).numpy() != faces.numpy())[..., 0]
    for mask in changed:
        rows, cols = np.nonzero(mask)
        assert len(rows) > 0
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert box <= 0.2 * 48 * 48 * 1.1  # rounding the sides to whole pixels
    nothing = random_erase(faces, ErasingConfig(probability=0.0), tf.constant([7, 8]))
    np.testing.assert_array_equal(nothing.numpy(), faces.numpy())


def test_erasing_config_rejects_impossible_values():
    with pytest.raises(ValueError, match="probability"):
        ErasingConfig(probability=1.5)
    with pytest.raises(ValueError, match="area"):
        ErasingConfig(area=(0.3, 0.1))


def test_epoch_batches_are_a_function_of_seed_and_epoch():
    augmentation = Augmentation.from_config(CONFIG["augmentation"])
    images = np.random.default_rng(0).random((20, 48, 48, 1), dtype=np.float32)
    labels = np.arange(20) % 7

    def batches(epoch: int) -> list[np.ndarray]:
        dataset = epoch_batches(images, labels, 7, 8, augmentation, seed=3, epoch=epoch)
        return [batch.numpy() for batch, _ in dataset]

    first = batches(0)
    assert [batch.shape for batch in first] == [(8, 48, 48, 1), (8, 48, 48, 1), (4, 48, 48, 1)]
    for again, before in zip(batches(0), first, strict=True):
        np.testing.assert_array_equal(again, before)
    assert not np.array_equal(batches(1)[0], first[0])


class ScriptedModel:
    """Stands in for a Keras model: each epoch's PublicTest predictions are given, its weights are the epoch."""

    def __init__(self, predictions: list[np.ndarray]) -> None:
        self.predictions, self.epoch = predictions, 0

    def predict(self, batches, verbose=0) -> np.ndarray:
        return self.predictions[self.epoch]

    def get_weights(self) -> list[np.ndarray]:
        return [np.array([self.epoch])]


def test_selection_keeps_the_first_epoch_of_best_public_accuracy_and_survives_a_resume():
    labels = np.array([0, 1, 2, 3])
    right, wrong = np.eye(7)[labels], np.eye(7)[[1, 1, 1, 1]]
    half = np.eye(7)[[0, 1, 0, 0]]
    model = ScriptedModel([half, right, right, wrong])  # accuracies 0.5, 1.0, 1.0, 0.25
    selection = recipe.PublicTestSelection(np.zeros((4, 48, 48, 1), np.float32), labels)
    selection.set_model(model)
    for epoch in range(2):
        model.epoch = epoch
        selection.on_epoch_end(epoch, {})
    resumed = recipe.PublicTestSelection(selection.public_images, labels)
    resumed.set_model(model)
    resumed.restore_resume_state(*selection.resume_state())
    for epoch in range(2, 4):
        model.epoch = epoch
        logs: dict = {}
        resumed.on_epoch_end(epoch, logs)
    assert logs["public_accuracy"] == 0.25
    assert resumed.selected_epoch == 2
    assert resumed.best_accuracy == 1.0
    np.testing.assert_array_equal(resumed.selected_weights[0], [1])


def test_selection_is_never_given_privatetest():
    # The callback's only data are the PublicTest images and labels it is built with.
    assert list(inspect.signature(recipe.PublicTestSelection).parameters) == ["public_images", "public_labels"]


@pytest.mark.real_data
@requires_dataset("fer2013")
def test_quick_profile_runs_end_to_end_and_scores_privatetest_once(tmp_path):
    record, path = run_replication(
        REPLICATIONS.get("fer2013_cnn"), "quick", results_dir=tmp_path, jobs_root=tmp_path / "jobs", make_plots=False
    )
    assert path is not None and path.is_file()
    single = record.settings["single_view"].seeds["0"]
    assert single.scored_set.startswith("PrivateTest")
    assert len(single.report.confusion_matrix) == 7
    assert 0.0 <= single.metrics["accuracy"] <= 1.0
    assert single.metrics["parameters"] == 1_183_255
    assert single.metrics["selected_epoch"] in (1.0, 2.0)
    assert single.metrics["images_per_second"] > 0
    tta = record.settings["flip_tta"].seeds["0"]
    assert tta.metrics["images_per_second"] > 0
    assert {row.verdict for row in record.rows} == {"beyond paper"}


def test_the_ensemble_study_says_it_needs_two_trained_seeds_here(tmp_path, caplog):
    from studies.recipe_ensemble import main

    assert main(["--jobs", str(tmp_path)]) == 2
    assert "holds 0 trained model(s) of the recipe; an ensemble needs two or more" in caplog.text


def test_distilled_batches_mix_each_image_s_label_with_its_own_soft_label():
    from studies.recipe_distill import distilled_batches

    images = np.random.default_rng(0).random((10, 48, 48, 1), dtype=np.float32)
    labels = np.arange(10) % 7
    soft = np.random.default_rng(1).dirichlet(np.ones(7), size=10).astype(np.float32)
    plain = Augmentation.from_config({"horizontal_flip": False})
    batches = list(distilled_batches(images, labels, soft, 0.25, 4, plain, seed=3, epoch=2))
    seen_images = np.concatenate([batch[0].numpy() for batch in batches])
    targets = np.concatenate([batch[1].numpy() for batch in batches])
    order = [int(np.flatnonzero((images == image).all(axis=(1, 2, 3)))[0]) for image in seen_images]
    expected = 0.25 * np.eye(7, dtype=np.float32)[labels[order]] + 0.75 * soft[order]
    np.testing.assert_allclose(targets, expected, rtol=1e-6)
    assert sorted(order) == list(range(10))


def test_the_explore_study_sets_each_candidates_training_flops_against_the_cpus_matmul_peak(tmp_path):
    import json

    from studies.recipe_explore import main

    arguments = ["--epochs", "1", "--train-limit", "256", "--eval-limit", "64", "--precision", "float32"]
    assert main([*arguments, "--candidates", "tiny=vgg:8,8,8,8,8", "--output", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("recipe-explore-*.json")
    measured = json.loads(path.read_text())
    (candidate,) = measured["candidates"]
    peak = measured["settings"]["matmul_gflops"]
    assert peak > 0 and candidate["train_gflop_per_image"] > 0
    assert candidate["training_gflops"] == pytest.approx(
        candidate["training_images_per_second"] * candidate["train_gflop_per_image"], rel=0.02, abs=0.01
    )
    assert candidate["share_of_matmul_peak"] == pytest.approx(candidate["training_gflops"] / peak, abs=0.002)
