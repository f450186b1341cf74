"""Boyce (MIT ADSP capstone, 2022): FER2013 happy / sad / neutral / surprise, three custom CNNs and three
transfer models. One setting per model (see models.py).

Data, rebuilt from FER2013 as REPLICATIONS.md pins it down: train from Training (at most `train_per_class`
per class, as the capstone's folder held), validation from PublicTest, and the capstone's test of 128 images,
32 per class, drawn once with a fixed seed from PrivateTest and listed by file in the metadata
(`config.test_files`). The 128-image test is the scored set (the paper's ~93%); the whole 4-class PrivateTest
(2,515 images) is scored beside it, since the 95% interval of 128 images is ±4 to ±8 points wide.

Custom models train end to end with augmentation. Transfer models keep their backbone frozen (the capstone
used "the pre-trained feature-extraction layers"), so the backbone's features are computed once per run and
only the head trains; `train_backbone: true` trains everything instead, at 10-30x the cost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fer_common import metrics
from fer_common.augment import AugmentConfig
from fer_common.bundles import Preprocessing
from fer_common.contract import Prepared, Replication, SeedOutcome, TrainedModel
from fer_common.data import load_dataset
from fer_common.train import FitResult, RuntimeOptions, fit, make_dataset, predict_probabilities
from replications.boyce import imagenet
from replications.boyce.data import BoyceData, Images, TransferFeatures, at_most_per_class, locate_test_files
from replications.boyce.models import (
    BACKBONES,
    CUSTOM_INPUT_SIZE,
    assemble_transfer_model,
    backbone_of,
    build_custom_model,
    build_feature_extractor,
    build_head,
    is_transfer,
)

BACKBONE_INIT_SEED = 0  # a frozen random backbone is the same for every seed, as an ImageNet one would be
PREDICT_BATCH_SIZE = 256
SPLITS = ("train", "validation", "test", "private")
SCORED_SET = "the capstone's 128-image test (32 per class, drawn from PrivateTest)"
log = logging.getLogger(__name__)


# --- training ---------------------------------------------------------------------------------------------


def epoch_limit(setting: str, config: dict) -> int:
    """The setting's maximum epochs: `max_epochs`, or its cap in `max_epochs_by_model` when that is lower."""
    cap = config["max_epochs_by_model"].get(setting)
    return int(config["max_epochs"]) if cap is None else min(int(cap), int(config["max_epochs"]))


def fit_with_plateau(
    model, train, validation, epochs: int, config: dict, runtime: RuntimeOptions
) -> tuple[FitResult, float]:
    """The suite's fit (EarlyStopping on validation loss, best weights restored) plus the capstone-style
    ReduceLROnPlateau; returns the fit and its wall time per epoch."""
    import keras

    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor="val_loss",
        factor=config["reduce_lr"]["factor"],
        patience=config["reduce_lr"]["patience"],
        min_lr=config["reduce_lr"]["min_learning_rate"],
    )
    started = time.perf_counter()
    fitted = fit(
        model,
        train,
        validation,
        epochs=epochs,
        options=runtime,
        early_stopping_patience=config["early_stopping_patience"],
        extra_callbacks=[plateau],
    )
    return fitted, (time.perf_counter() - started) / fitted.epochs_run


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
):
    """Fit a whole model on augmented training images (custom models, and `train_backbone: true`)."""
    num_classes = model.output_shape[-1]
    train = make_dataset(
        preprocessing.apply(data.train.images),
        data.train.labels,
        num_classes,
        config["batch_size"],
        shuffle=True,
        seed=seed,
        augment=AugmentConfig(**config["augmentation"]),
    )
    validation = make_dataset(
        preprocessing.apply(data.validation.images), data.validation.labels, num_classes, PREDICT_BATCH_SIZE
    )
    return fit_with_plateau(model, train, validation, epochs, config, runtime)


def predict_split(model, images: Images, preprocessing: Preprocessing) -> np.ndarray:
    """Softmax outputs as float64, in chunks so a 75x75 PrivateTest never sits in memory as floats at once."""
    outputs = [
        predict_probabilities(model, preprocessing.apply(images.images[start : start + 1024]), PREDICT_BATCH_SIZE)
        for start in range(0, len(images), 1024)
    ]
    return np.concatenate(outputs)


# --- transfer models --------------------------------------------------------------------------------------


def transfer_preprocessing(setting: str) -> Preprocessing:
    """0..255 RGB at the backbone's size: its preprocess_input runs inside the model."""
    return Preprocessing(size=BACKBONES[setting].input_size, channels=3, scale="raw")


def build_extractor(setting: str, weights: imagenet.WeightsFile | None, trainable: bool):
    """The setting's feature extractor, with ImageNet weights loaded (and shape-checked) when given."""
    from fer_common.weights import load_weights_file

    extractor = build_feature_extractor(setting)
    if weights is not None:
        backbone = BACKBONES[setting]
        load_weights_file(
            backbone_of(extractor),
            weights.path,
            expected_name=f"ImageNet {backbone.application} weights ({backbone.weights_file})",
            how_to_get=f"Download it from {backbone.weights_url}.",
        )
    extractor.trainable = trainable
    return extractor


def frozen_features(setting: str, data: BoyceData, seed: int) -> TransferFeatures:
    """The frozen backbone's features of every split: computed by the first seed, reused by the others."""
    import keras

    if setting not in data.features:
        # A random backbone is drawn from a fixed seed, so every seed trains its head on the same features,
        # as with ImageNet weights; the job's seed is restored for the head.
        keras.utils.set_random_seed(BACKBONE_INIT_SEED)
        extractor = build_extractor(setting, data.weights.get(setting), trainable=False)
        keras.utils.set_random_seed(seed)
        preprocessing = transfer_preprocessing(setting)
        started = time.perf_counter()
        splits = {name: predict_split(extractor, data.split(name), preprocessing) for name in SPLITS}
        data.features[setting] = TransferFeatures(extractor, splits, time.perf_counter() - started)
    return data.features[setting]


def train_frozen_transfer(setting: str, data: BoyceData, seed: int, epochs: int, config: dict, runtime: RuntimeOptions):
    """Train the head on frozen features (no augmentation: the features are computed once)."""
    features = frozen_features(setting, data, seed)
    num_classes = int(data.train.labels.max()) + 1
    train_features = features.splits["train"]
    head = build_head(train_features.mean(axis=0), train_features.var(axis=0), num_classes)
    compile_model(head, config["learning_rate"])
    train = make_dataset(
        features.splits["train"].astype(np.float32),
        data.train.labels,
        num_classes,
        config["batch_size"],
        shuffle=True,
        seed=seed,
    )
    validation = make_dataset(
        features.splits["validation"].astype(np.float32), data.validation.labels, num_classes, PREDICT_BATCH_SIZE
    )
    fitted, seconds_per_epoch = fit_with_plateau(head, train, validation, epochs, config, runtime)
    probabilities = {
        name: predict_probabilities(head, features.splits[name], PREDICT_BATCH_SIZE) for name in ("test", "private")
    }
    model = assemble_transfer_model(setting, features.extractor, head)
    return model, fitted, seconds_per_epoch, probabilities, features.seconds


def train_whole_transfer(setting: str, data: BoyceData, seed: int, epochs: int, config: dict, runtime: RuntimeOptions):
    """Train backbone and head together (`train_backbone: true`), on augmented images."""
    extractor = build_extractor(setting, data.weights.get(setting), trainable=True)
    num_classes = int(data.train.labels.max()) + 1
    # Trained together, the features change as the backbone learns: the head starts without standardising.
    feature_count = extractor.output_shape[-1]
    head = build_head(np.zeros(feature_count), np.ones(feature_count), num_classes)
    model = assemble_transfer_model(setting, extractor, head)
    compile_model(model, config["backbone_learning_rate"])
    preprocessing = transfer_preprocessing(setting)
    fitted, seconds_per_epoch = train_end_to_end(model, data, preprocessing, seed, epochs, config, runtime)
    probabilities = {name: predict_split(model, data.split(name), preprocessing) for name in ("test", "private")}
    return model, fitted, seconds_per_epoch, probabilities, 0.0


def initialisation_note(setting: str, data: BoyceData, config: dict) -> str:
    """How a transfer model started, in the words its table rows carry ("" when nothing needs saying)."""
    if setting not in data.weights:
        trained = "trained end to end" if config["train_backbone"] else "frozen backbone, only the head trained"
        return f"random initialisation (--weights none): no ImageNet features; {trained}"
    fine_tuned = "fine-tuned end to end from ImageNet weights" if config["train_backbone"] else ""
    return "; ".join(filter(None, [data.weights[setting].row_note, fine_tuned]))


# --- one seed ---------------------------------------------------------------------------------------------


def private_extras(labels: np.ndarray, probabilities: np.ndarray, class_names: list[str]) -> tuple[dict, dict, dict]:
    """(metrics, denominators, report) on the whole 4-class PrivateTest."""
    report = metrics.classification_report(labels, probabilities, class_names)
    extras = {"private_accuracy": report["accuracy"], "private_macro_f1": report["macro_f1"]}
    denominators = {"private_accuracy": report["n"]}
    for name in class_names:
        extras[f"private_recall/{name}"] = report["per_class"][name]["recall"]
        denominators[f"private_recall/{name}"] = report["per_class"][name]["support"]
    return extras, denominators, report


def weights_detail(setting: str, data: BoyceData) -> dict | None:
    """Provenance of the ImageNet weights a transfer model used (None for custom models)."""
    if not is_transfer(setting):
        return None
    weights = data.weights.get(setting)
    if weights is None:
        return {"source": "none (random initialisation)"}
    return {
        "source": "imagenet",
        "file": str(weights.path),
        "sha256": weights.sha256,
        "md5": weights.md5,
        "matches_keras_release": weights.matches_keras_release,
    }


class Boyce(Replication):
    metadata_file = Path(__file__).with_name("metadata.yaml")

    def prepare(self, config: dict) -> Prepared:
        # Weights first: a missing file must stop the run before minutes of data loading and hours of training.
        weights = imagenet.resolve_weights(config["weights"])
        dataset = load_dataset("fer2013").select_classes(config["classes"])
        private = dataset.split("PrivateTest")
        test_index, test_source = locate_test_files(private, config)
        data = BoyceData(
            train=at_most_per_class(dataset.split("Training"), config["train_per_class"]),
            validation=at_most_per_class(dataset.split("PublicTest"), config["validation_per_class"]),
            test=Images(private.images[test_index], private.labels[test_index]),
            private=at_most_per_class(private, config["private_per_class"]),
            test_source=test_source,
            weights=weights,
        )
        return Prepared(
            data=data,
            class_names=dataset.class_names,
            checksum=dataset.checksum,
            data_kind="real",
            description=(
                f"FER2013, 4 classes: {len(data.train)} Training, {len(data.validation)} PublicTest, test "
                f"{len(data.test)} + {len(data.private)} PrivateTest images"
            ),
        )

    def run_setting(
        self, prepared: Prepared, setting: str, seed: int, config: dict, runtime: RuntimeOptions
    ) -> SeedOutcome:
        data: BoyceData = prepared.data
        epochs = epoch_limit(setting, config)
        feature_seconds = 0.0
        if is_transfer(setting):
            preprocessing = transfer_preprocessing(setting)
            trainer: Callable = train_whole_transfer if config["train_backbone"] else train_frozen_transfer
            model, fitted, seconds_per_epoch, probabilities, feature_seconds = trainer(
                setting, data, seed, epochs, config, runtime
            )
            notes = [initialisation_note(setting, data, config)]
        else:
            preprocessing = Preprocessing(size=CUSTOM_INPUT_SIZE, channels=3, scale="unit")
            model = build_custom_model(setting, len(prepared.class_names))
            compile_model(model, config["learning_rate"])
            fitted, seconds_per_epoch = train_end_to_end(model, data, preprocessing, seed, epochs, config, runtime)
            probabilities = {
                name: predict_split(model, data.split(name), preprocessing) for name in ("test", "private")
            }
            notes = []
        if epochs < config["max_epochs"]:
            unit = "epoch" if epochs == 1 else "epochs"
            notes.append(f"at most {epochs} {unit} (others {config['max_epochs']}): capped for compute in metadata")

        extras, denominators, private_report = private_extras(
            data.private.labels, probabilities["private"], prepared.class_names
        )
        extras.update(
            validation_accuracy=fitted.history["val_accuracy"][fitted.best_epoch - 1],
            epochs_run=float(fitted.epochs_run),
            seconds_per_epoch=seconds_per_epoch,
        )
        log.info(
            "%s seed %d: %d epochs (%.1fs each), best epoch %d; PrivateTest accuracy %.3f",
            setting,
            seed,
            fitted.epochs_run,
            seconds_per_epoch,
            fitted.best_epoch,
            extras["private_accuracy"],
        )
        trained = TrainedModel(
            model,
            preprocessing,
            selection_score=extras["validation_accuracy"],
            selected_on="PublicTest (validation) accuracy",
        )
        return SeedOutcome(
            y_true=data.test.labels,
            probabilities=probabilities["test"],
            scored_set=SCORED_SET,
            history=fitted.history,
            metrics=extras,
            denominators=denominators,
            notes=tuple(notes),
            details={
                "test_source": data.test_source,
                "sizes": {name: len(data.split(name)) for name in SPLITS},
                "best_epoch": fitted.best_epoch,
                "epochs_run": fitted.epochs_run,
                "max_epochs": epochs,
                "parameters": int(model.count_params()),
                "feature_extraction_s": round(feature_seconds, 2),
                "weights": weights_detail(setting, data),
                "private_report": private_report,
            },
            model=trained if config["save_models"] else None,
        )
