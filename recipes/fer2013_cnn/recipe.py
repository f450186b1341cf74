"""FER2013 CNN recipe: our own compact model for `predict` and `demo`, NOT a replication of any paper.

It is trained through the same contract as the replications (runner, job store, records, resume, bundles):
- train on FER2013 Training with warps, flips and random erasing, label smoothing, SGD with Nesterov
  momentum and a warm-up + cosine learning-rate schedule (Khaireddin & Chen 2021's tricks on a VGG-style
  net with BatchNorm, the family Pramerdorfer & Kampel 2016 found best on 48x48 FER2013);
- after every epoch score PublicTest only, and keep the weights of the first epoch of best PublicTest
  accuracy (`PublicTestSelection`, which is never given PrivateTest);
- score that model once on PrivateTest, as it is (`single_view`) and averaged with its mirror image
  (`flip_tta`). Both settings come from one training run, so they form one job.
The runner publishes the seed of best PublicTest accuracy as the bundle `fer2013_cnn-single_view`.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer_common.contract import (
    BenchModel,
    Prepared,
    Preprocessing,
    Replication,
    RunKeys,
    SeedOutcome,
    TrainedModel,
)
from fer_common.data import load_dataset
from fer_common.data.dataset import FaceDataset
from fer_common.data.subsets import stratified_subset  # the Neamtiu replication's subsets, seed-independent
from fer_common.metrics import categorical_cross_entropy
from fer_common.resume import EpochCallback, fit_resumable
from fer_common.train import RuntimeOptions, predict_probabilities, to_model_input
from recipes.fer2013_cnn.augmentation import Augmentation, epoch_batches, flip_horizontally
from recipes.fer2013_cnn.model import build_model

log = logging.getLogger(__name__)

RECIPE_ID = "fer2013_cnn"
SINGLE_VIEW = "single_view"
FLIP_TTA = "flip_tta"
SETTINGS = (SINGLE_VIEW, FLIP_TTA)
SELECTION_RULE = "highest PublicTest accuracy (the first such epoch on ties); PrivateTest unused"
EVAL_BATCH_SIZE = 256  # also the batch of the inference timing, as the `fer` reference is timed
PREPROCESSING = Preprocessing(size=48, channels=1, scale="unit")


# --- data -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecipeData:
    """FER2013 as the model sees it (float32 in [0, 1])."""

    train_images: np.ndarray
    train_labels: np.ndarray
    public_images: np.ndarray
    public_labels: np.ndarray
    private_images: np.ndarray
    private_labels: np.ndarray


def _limited(dataset: FaceDataset, limit: int | None) -> FaceDataset:
    return dataset.subset(stratified_subset(dataset.labels, limit))


def load_recipe_data(config: dict[str, Any]) -> tuple[RecipeData, FaceDataset]:
    dataset = load_dataset("fer2013")
    train = _limited(dataset.split("Training"), config["train_limit"])
    public = _limited(dataset.split("PublicTest"), config["eval_limit"])
    private = _limited(dataset.split("PrivateTest"), config["eval_limit"])
    data = RecipeData(
        train_images=to_model_input(train.images),
        train_labels=train.labels,
        public_images=to_model_input(public.images),
        public_labels=public.labels,
        private_images=to_model_input(private.images),
        private_labels=private.labels,
    )
    return data, dataset


# --- model and optimiser ----------------------------------------------------------------------------


def model_from_config(config: dict[str, Any], num_classes: int = 7):
    return build_model(config["architecture"], config["widths"], config["dropout"], num_classes)


def steps_per_epoch(train_images: int, batch_size: int) -> int:
    return math.ceil(train_images / batch_size)


def learning_rate_schedule(config: dict[str, Any], train_images: int):
    """Linear warm-up from 0 to `learning_rate` over `warmup_epochs`, then cosine decay to 0 at the last step."""
    import keras

    steps = steps_per_epoch(train_images, config["batch_size"])
    warmup = config["warmup_epochs"] * steps
    total = config["epochs"] * steps
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(total - warmup, 1),
        warmup_target=config["learning_rate"],
        warmup_steps=warmup,
    )


def compile_model(model, config: dict[str, Any], train_images: int) -> None:
    import keras

    optimizer = keras.optimizers.SGD(
        learning_rate_schedule(config, train_images),
        momentum=config["momentum"],
        nesterov=True,
        weight_decay=config["weight_decay"],
    )
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=config["label_smoothing"])
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])


# --- epoch selection --------------------------------------------------------------------------------


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(probabilities.argmax(axis=1) == labels))


class PublicTestSelection(EpochCallback):
    """A fit_resumable callback that scores PublicTest after every epoch and keeps the weights of the first
    epoch of highest PublicTest accuracy. It holds no PrivateTest data, so the choice cannot read it; its
    state is checkpointed with the run."""

    def __init__(self, public_images: np.ndarray, public_labels: np.ndarray) -> None:
        self.public_images, self.public_labels = public_images, public_labels
        self.best_accuracy = -1.0
        self.selected_epoch = 0  # 1-based; 0 = none yet
        self.selected_weights: list[np.ndarray] = []

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        probabilities = predict_probabilities(self.model, self.public_images, EVAL_BATCH_SIZE)
        public_accuracy = accuracy(probabilities, self.public_labels)
        logs.update(
            {
                "public_loss": categorical_cross_entropy(self.public_labels, probabilities),
                "public_accuracy": public_accuracy,
            }
        )
        if public_accuracy > self.best_accuracy:  # strictly: the first best epoch stays on ties
            self.best_accuracy = public_accuracy
            self.selected_epoch = epoch + 1
            self.selected_weights = self.model.get_weights()

    def resume_state(self) -> tuple[dict, list[np.ndarray]]:
        return {"best_accuracy": self.best_accuracy, "selected_epoch": self.selected_epoch}, self.selected_weights

    def restore_resume_state(self, info: dict, arrays: list[np.ndarray]) -> None:
        self.best_accuracy = float(info["best_accuracy"])
        self.selected_epoch = int(info["selected_epoch"])
        self.selected_weights = list(arrays)


# --- one seed ---------------------------------------------------------------------------------------


@dataclass
class TrainedRun:
    """A seed's training run: its history, the selected model and the measured training speed."""

    history: dict[str, list[float]]
    selected_model: Any
    selected_epoch: int
    public_accuracy: float
    training_images_per_second: float | None  # None when the run was resumed from a finished checkpoint


def training_run_key(run_keys: RunKeys, config: dict[str, Any]) -> str:
    """The checkpoint key of a seed's run; `save_models` does not change the training, so it is left out."""
    return run_keys.key("training", {key: value for key, value in config.items() if key != "save_models"})


def train_seed(
    data: RecipeData, num_classes: int, seed: int, config: dict[str, Any], runtime: RuntimeOptions, run_key: str
):
    """Train (or resume) one seed's run and return the PublicTest-selected model."""
    model = model_from_config(config, num_classes)
    compile_model(model, config, len(data.train_images))
    augmentation = Augmentation.from_config(config["augmentation"])
    selection = PublicTestSelection(data.public_images, data.public_labels)
    started = time.perf_counter()
    history = fit_resumable(
        model,
        lambda epoch: epoch_batches(
            data.train_images,
            data.train_labels,
            num_classes,
            config["batch_size"],
            augmentation,
            seed=seed,
            epoch=epoch,
        ),
        None,
        epochs=config["epochs"],
        run_key=run_key,
        seed=seed,
        options=runtime,
        callbacks=[selection],
    )
    seconds = time.perf_counter() - started
    selected = model_from_config(config, num_classes)
    selected.set_weights(selection.selected_weights)
    epochs_here = len(history["loss"])
    return TrainedRun(
        history=history,
        selected_model=selected,
        selected_epoch=selection.selected_epoch,
        public_accuracy=selection.best_accuracy,
        # Includes the per-epoch PublicTest pass; a resumed run trained only some epochs here, so no rate.
        training_images_per_second=len(data.train_images) * epochs_here / seconds if seconds > 60 else None,
    )


def flip_tta_probabilities(model, images: np.ndarray) -> np.ndarray:
    """The mean of the softmax outputs of each face and its mirror image."""
    plain = predict_probabilities(model, images, EVAL_BATCH_SIZE)
    mirrored = predict_probabilities(model, flip_horizontally(images), EVAL_BATCH_SIZE)
    return (plain + mirrored) / 2.0


def images_per_second(predict, images: np.ndarray, repeats: int = 3) -> float:
    """Best of `repeats` timed passes over `images` (after one untimed warm-up): the machine's rate, less
    the noise of other processes on a shared CPU."""
    predict(images[:EVAL_BATCH_SIZE])
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        predict(images)
        best = min(best, time.perf_counter() - started)
    return len(images) / best


def model_megabytes(model) -> float:
    """The size of the model's .keras file (what a bundle ships), in MB (10^6 bytes)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return path.stat().st_size / 1e6


def score_outcomes(data: RecipeData, run: TrainedRun, config: dict[str, Any]) -> dict[str, SeedOutcome]:
    """Both settings from one selected model: PrivateTest as it is, and with flip test-time augmentation."""
    model = run.selected_model
    single = predict_probabilities(model, data.private_images, EVAL_BATCH_SIZE)
    tta = flip_tta_probabilities(model, data.private_images)
    public_tta = accuracy(flip_tta_probabilities(model, data.public_images), data.public_labels)
    history = {
        "loss": run.history["loss"],
        "accuracy": run.history["accuracy"],
        "val_loss": run.history["public_loss"],  # the validation set is PublicTest
        "val_accuracy": run.history["public_accuracy"],
    }
    details = {
        "selection": SELECTION_RULE,
        "selected_epoch": run.selected_epoch,
        "per_epoch_public_accuracy": run.history["public_accuracy"],
        "training_images_per_second": run.training_images_per_second,
    }
    shared = {
        "selected_epoch": float(run.selected_epoch),
        "public_accuracy": run.public_accuracy,
        "parameters": float(model.count_params()),
        "model_megabytes": model_megabytes(model),
    }
    single_outcome = SeedOutcome(
        y_true=data.private_labels,
        probabilities=single,
        scored_set="PrivateTest, model of the epoch of best PublicTest accuracy, one view",
        history=history,
        metrics={
            **shared,
            "images_per_second": images_per_second(
                lambda images: predict_probabilities(model, images, EVAL_BATCH_SIZE), data.private_images
            ),
        },
        denominators={"public_accuracy": len(data.public_labels)},
        details=details,
    )
    if config["save_models"]:
        single_outcome.model = TrainedModel(model, PREPROCESSING, run.public_accuracy, "PublicTest accuracy")
    tta_outcome = SeedOutcome(
        y_true=data.private_labels,
        probabilities=tta,
        scored_set="PrivateTest, same model, mean of the face and its mirror image",
        history=history,
        metrics={
            **shared,
            "public_accuracy": public_tta,
            "images_per_second": images_per_second(
                lambda images: flip_tta_probabilities(model, images), data.private_images
            ),
        },
        denominators={"public_accuracy": len(data.public_labels)},
        details=details,
    )
    return {SINGLE_VIEW: single_outcome, FLIP_TTA: tta_outcome}


class Fer2013Cnn(Replication):
    """Not a replication: the suite's own FER2013 recipe, run through the replication contract."""

    metadata_file = Path(__file__).with_name("metadata.yaml")
    job_groups = (SETTINGS,)  # one training run feeds both settings

    def bench_models(self) -> tuple[BenchModel, ...]:
        from fer_common.metadata import load_metadata

        config = load_metadata(self.metadata_file).config
        training_images = 28_709  # all of FER2013 Training
        return (
            BenchModel(
                RECIPE_ID,
                build_model=lambda: model_from_config(config),
                compile_model=lambda model: compile_model(model, config, training_images),
                batch_size=config["batch_size"],
                channels=PREPROCESSING.channels,
                chunk_steps=8,
                training_images=training_images,
                training_data="FER2013 Training (stratified subsets)",
                augmentation=Augmentation.from_config(config["augmentation"]).affine,
                run_epochs=config["epochs"],
                evaluation_images=3_589,  # PublicTest, scored after every epoch
                inference_label="FER2013 CNN recipe (ours)",
                fer2013_subset=stratified_subset,
            ),
        )

    def prepare(self, config: dict) -> Prepared:
        data, dataset = load_recipe_data(config)
        return Prepared(
            data=data,
            class_names=dataset.class_names,
            checksum=dataset.checksum,
            data_kind="real",
            description=(
                f"FER2013: {len(data.train_labels)} Training, {len(data.public_labels)} PublicTest, "
                f"{len(data.private_labels)} PrivateTest images"
            ),
        )

    def run_job(
        self,
        prepared: Prepared,
        settings: tuple[str, ...],
        seed: int,
        config: dict,
        runtime: RuntimeOptions,
        run_keys: RunKeys,
    ) -> dict[str, SeedOutcome]:
        data: RecipeData = prepared.data
        run = train_seed(data, len(prepared.class_names), seed, config, runtime, training_run_key(run_keys, config))
        outcomes = score_outcomes(data, run, config)
        return {setting: outcomes[setting] for setting in settings}
