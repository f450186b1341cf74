"""A test-only sixth replication: two classes of 8x8 noise that differ in brightness, logistic regression on their mean.

It holds what every replication holds (its metadata and one `Replication` subclass) and nothing else, so
the tests that run it show what the runner does for any paper.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from fer_common.contract import Prepared, Preprocessing, Replication, RunKeys, SeedOutcome, TrainedModel
from fer_common.data import splits
from fer_common.train import RuntimeOptions, fit, make_dataset, predict_probabilities, to_model_input

CLASS_NAMES = ["dark", "bright"]
SIDE = 8
DATA_SEED = 1234  # the data is the same for every seed, as a dataset on disk would be


def make_images(images_per_class: int, brightness_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 8, 8, 1) noise images and their labels; class 1 is `brightness_gap` grey levels brighter."""
    generator = np.random.default_rng(DATA_SEED)
    labels = np.repeat(np.arange(len(CLASS_NAMES)), images_per_class)
    noise = generator.integers(0, 256 - brightness_gap, size=(len(labels), SIDE, SIDE, 1))
    return (noise + brightness_gap * labels[:, None, None, None]).astype(np.uint8), labels


def build_model():
    """Logistic regression on mean brightness: pixels to [-1, 1] (the two classes then sit either side of 0),
    their mean, logistic regression on their mean."""
    import keras

    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(SIDE, SIDE, 1)),
            layers.Rescaling(2.0, offset=-1.0),
            layers.GlobalAveragePooling2D(),
            layers.Dense(len(CLASS_NAMES), activation="softmax"),
        ]
    )


class SixthReplication(Replication):
    metadata_file = Path(__file__).with_name("metadata.yaml")

    def prepare(self, config) -> Prepared:
        images, labels = make_images(config["images_per_class"], config["brightness_gap"])
        return Prepared(
            data=(to_model_input(images), labels),
            class_names=list(CLASS_NAMES),
            checksum=hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest(),
            data_kind="real",
            description=f"{len(labels)} synthetic 8x8 images",
        )

    def run_setting(self, prepared, setting, seed, config, runtime: RuntimeOptions, run_keys: RunKeys) -> SeedOutcome:
        import keras

        images, labels = prepared.data
        train, test = splits.stratified_holdout(labels, config["test_fraction"], seed)
        model = build_model()
        model.compile(
            optimizer=keras.optimizers.Adam(config["learning_rate"]),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
        )
        train_data = make_dataset(images[train], labels[train], 2, 8, shuffle=True, seed=seed)
        test_data = make_dataset(images[test], labels[test], 2, 64)
        result = fit(model, train_data, test_data, epochs=config["epochs"], options=runtime, verbose=0)
        time.sleep(config["pause_s"])
        train_accuracy = float(np.mean(predict_probabilities(model, images[train]).argmax(1) == labels[train]))
        return SeedOutcome(
            y_true=labels[test],
            probabilities=predict_probabilities(model, images[test]),
            scored_set=f"the {len(test)}-image test split",
            history=result.history,
            details={"n_train": int(len(train))},
            # No validation split: the train accuracy chooses the published seed, never the test accuracy.
            model=TrainedModel(model, Preprocessing(SIDE, 1, "unit"), train_accuracy, "train accuracy"),
        )
