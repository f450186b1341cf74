"""Boyce's training: resumable fits with the capstone's callbacks (EarlyStopping and ReduceLROnPlateau on
validation loss), the 128 test images scored after every epoch for the hypotheses, and prediction in chunks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fer_common.augment import AugmentConfig
from fer_common.contract import Preprocessing, RunKeys
from fer_common.resumable_callbacks import EpochTimes, ResumableEarlyStopping, ResumablePlateau
from fer_common.resume import epoch_dataset, fit_resumable
from fer_common.train import FitResult, RuntimeOptions, make_dataset, predict_probabilities
from replications.boyce import diagnostics
from replications.boyce.data import BoyceData, Images

PREDICT_BATCH_SIZE = 256


@dataclass(frozen=True)
class Training:
    """One fit: its result, its wall time per epoch, and the 128-image test's accuracy after every epoch."""

    fitted: FitResult
    seconds_per_epoch: float
    test_accuracy_by_epoch: list[float]


def epoch_limit(setting: str, config: dict) -> int:
    """The setting's maximum epochs: `max_epochs`, or its cap in `max_epochs_by_model` when that is lower."""
    cap = config["max_epochs_by_model"].get(setting)
    return int(config["max_epochs"]) if cap is None else min(int(cap), int(config["max_epochs"]))


def accuracy_on(model, inputs: np.ndarray, labels: np.ndarray) -> float:
    return float((predict_probabilities(model, inputs, PREDICT_BATCH_SIZE).argmax(axis=1) == labels).mean())


def fit_with_plateau(
    model,
    make_train: Callable[[int], Any],
    validation,
    test: tuple[np.ndarray, np.ndarray],
    epochs: int,
    config: dict,
    runtime: RuntimeOptions,
    *,
    seed: int,
    run_key: str,
) -> Training:
    """Train resumably (a checkpoint after every epoch) with the capstone-style ReduceLROnPlateau and
    EarlyStopping on validation loss, best weights restored. `test` (model inputs, labels) is scored after
    every epoch, for the hypothesis that the capstone chose its epoch on its test; nothing is chosen on it here."""
    timer = EpochTimes()
    plateau = ResumablePlateau(
        config["reduce_lr"]["factor"], config["reduce_lr"]["patience"], config["reduce_lr"]["min_learning_rate"]
    )
    scoring = diagnostics.TestAccuracyByEpoch(*test, accuracy_on)
    stopping = ResumableEarlyStopping(config["early_stopping_patience"])
    history = fit_resumable(
        model,
        make_train,
        validation,
        epochs=epochs,
        run_key=run_key,
        seed=seed,
        options=runtime,
        callbacks=[timer, plateau, scoring, stopping],
    )
    fitted = FitResult(history=history, best_epoch=stopping.best_epoch, epochs_run=len(history["loss"]))
    return Training(fitted, float(np.mean(timer.seconds)), scoring.accuracies)


def compile_model(model, learning_rate: float) -> None:
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )


def train_end_to_end(
    model,
    data: BoyceData,
    preprocessing: Preprocessing,
    seed: int,
    epochs: int,
    config: dict,
    runtime: RuntimeOptions,
    run_key: str,
):
    """Fit a whole model on augmented training images (custom models, and `train_backbone: true`)."""
    num_classes = model.output_shape[-1]
    train_inputs = preprocessing.apply(data.train.images)
    augmentation = AugmentConfig(**config["augmentation"])
    validation = make_dataset(
        preprocessing.apply(data.validation.images), data.validation.labels, num_classes, PREDICT_BATCH_SIZE
    )
    test = (preprocessing.apply(data.test.images), data.test.labels)
    return fit_with_plateau(
        model,
        lambda epoch: epoch_dataset(
            train_inputs,
            data.train.labels,
            num_classes,
            config["batch_size"],
            seed=seed,
            epoch=epoch,
            augment=augmentation,
        ),
        validation,
        test,
        epochs,
        config,
        runtime,
        seed=seed,
        run_key=run_key,
    )


def training_run_key(setting: str, data: BoyceData, config: dict, run_keys: RunKeys) -> str:
    """The checkpoint key of one model's training run: its config (less `save_models`, which does not change
    the training) and the ImageNet weights it starts from."""
    training_config = {key: value for key, value in config.items() if key != "save_models"}
    weights = data.weights.get(setting)
    return run_keys.key(setting, training_config, weights=weights.sha256 if weights is not None else None)


def predict_split(model, images: Images, preprocessing: Preprocessing) -> np.ndarray:
    """Softmax outputs as float64, in chunks so a 75x75 PrivateTest never sits in memory as floats at once."""
    outputs = [
        predict_probabilities(model, preprocessing.apply(images.images[start : start + 1024]), PREDICT_BATCH_SIZE)
        for start in range(0, len(images), 1024)
    ]
    return np.concatenate(outputs)
