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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer_common import metrics
from fer_common.augment import AugmentConfig
from fer_common.bundles import Preprocessing
from fer_common.contract import Prepared, Replication, SeedOutcome, TrainedModel
from fer_common.data import load_dataset
from fer_common.metadata import code_hash
from fer_common.resumable_callbacks import EpochTimes, ResumableEarlyStopping, ResumablePlateau
from fer_common.resume import epoch_dataset, fit_resumable, make_run_key
from fer_common.train import FitResult, RuntimeOptions, make_dataset, predict_probabilities
from replications.boyce import diagnostics, imagenet
from replications.boyce.data import (
    BoyceData,
    Images,
    TransferFeatures,
    at_most_per_class,
    test_images,
    validation_images,
)
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


def training_run_key(setting: str, data: BoyceData, seed: int, config: dict, runtime: RuntimeOptions) -> str:
    """The checkpoint key of one model's training run: its config (less `save_models`, which does not change
    the training), the data and code, and the ImageNet weights it starts from."""
    training_config = {key: value for key, value in config.items() if key != "save_models"}
    weights = data.weights.get(setting)
    return make_run_key(
        "boyce",
        setting,
        seed,
        training_config,
        runtime,
        **data.run_identity,
        weights=weights.sha256 if weights is not None else None,
    )


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
    train_features = train_features.astype(np.float32)
    validation = make_dataset(
        features.splits["validation"].astype(np.float32), data.validation.labels, num_classes, PREDICT_BATCH_SIZE
    )
    test = (features.splits["test"], data.test.labels)
    training = fit_with_plateau(
        head,
        lambda epoch: epoch_dataset(
            train_features, data.train.labels, num_classes, config["batch_size"], seed=seed, epoch=epoch
        ),
        validation,
        test,
        epochs,
        config,
        runtime,
        seed=seed,
        run_key=training_run_key(setting, data, seed, config, runtime),
    )
    probabilities = {
        name: predict_probabilities(head, features.splits[name], PREDICT_BATCH_SIZE) for name in ("test", "private")
    }
    model = assemble_transfer_model(setting, features.extractor, head)
    return model, training, probabilities, features.seconds


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
    run_key = training_run_key(setting, data, seed, config, runtime)
    training = train_end_to_end(model, data, preprocessing, seed, epochs, config, runtime, run_key)
    probabilities = {name: predict_split(model, data.split(name), preprocessing) for name in ("test", "private")}
    return model, training, probabilities, 0.0


def initialisation_note(setting: str, data: BoyceData, config: dict) -> str:
    """How a transfer model started, in the words its table rows carry ("" when nothing needs saying)."""
    if setting not in data.weights:
        trained = "trained end to end" if config["train_backbone"] else "frozen backbone, only the head trained"
        return f"random initialisation (--weights none): no ImageNet features; {trained}"
    fine_tuned = "fine-tuned end to end from ImageNet weights" if config["train_backbone"] else ""
    return "; ".join(filter(None, [data.weights[setting].row_note, fine_tuned]))


# --- one seed ---------------------------------------------------------------------------------------------


def hypothesis_measures(
    data: BoyceData, training: Training, probabilities: dict[str, np.ndarray], config: dict, metadata_file: Path
) -> tuple[dict, dict, dict]:
    """(metrics, denominators, details) of the hypotheses for the capstone's ~93% (metadata `hypotheses:`):
    the best epoch on the 128-image test, 128-image draws from PrivateTest, and the test's accuracy with and
    without a near-duplicate among the training images."""
    by_epoch = training.test_accuracy_by_epoch
    metrics = {"accuracy_best_epoch_on_test": max(by_epoch)}
    denominators = {"accuracy_best_epoch_on_test": len(data.test)}

    draws = config["test_draws"]
    private_correct = probabilities["private"].argmax(axis=1) == data.private.labels
    # The quick profile's PrivateTest holds fewer than 32 per class: its draws are smaller (details say so).
    per_class = min(config["test_per_class"], int(np.bincount(data.private.labels).min()))
    accuracies = diagnostics.draw_accuracies(
        data.private.labels, private_correct, per_class, draws["count"], draws["seed"]
    )
    threshold = diagnostics.paper_band_low(metadata_file, "accuracy", "final")
    metrics.update(diagnostics.draw_metrics(accuracies, threshold))
    denominators["draw128_mean"] = len(data.private)
    denominators["draw128_share_at_least_band_low"] = draws["count"]

    test_correct = probabilities["test"].argmax(axis=1) == data.test.labels
    duplicate_metrics, duplicate_denominators = diagnostics.accuracy_by_duplicate(
        test_correct, data.test_has_training_duplicate
    )
    metrics.update(duplicate_metrics)
    denominators.update(duplicate_denominators)

    details = {
        "test_accuracy_by_epoch": by_epoch,
        "test_draws": {
            "count": draws["count"],
            "seed": draws["seed"],
            "per_class": per_class,
            "pool": f"{len(data.private)} PrivateTest images (4 classes), the model's predictions on them",
            "band_low": threshold,
            "band_low_from": "the final model's reported accuracy: paper_band(value, n_test, floor), no seeds term",
        },
        "test_with_training_duplicate": {
            "images": int(data.test_has_training_duplicate.sum()),
            "of": len(data.test),
            "threshold_bits": config["duplicate_threshold_bits"],
            "pool": f"the {len(data.train)} training images the model trains on (pHash, imagehash)",
        },
    }
    return metrics, denominators, details


def seed_chosen_on_test(by_seed: Mapping[int, Mapping[str, Any]]) -> dict:
    """The seed whose model scores best on the 128-image test at its selected epoch (its accuracy metric),
    and the best (seed, epoch) over every epoch of every seed."""
    at_selected = {
        seed: details["test_accuracy_by_epoch"][details["best_epoch"] - 1] for seed, details in by_seed.items()
    }
    best_seed = max(at_selected, key=at_selected.get)
    best_pair = max(
        (
            (seed, epoch + 1, accuracy)
            for seed, details in by_seed.items()
            for epoch, accuracy in enumerate(details["test_accuracy_by_epoch"])
        ),
        key=lambda entry: entry[2],
    )
    return {
        "seed": best_seed,
        "accuracy": at_selected[best_seed],
        "seed_and_epoch": {"seed": best_pair[0], "epoch": best_pair[1], "accuracy": best_pair[2]},
        "seeds": len(by_seed),
    }


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
        train = at_most_per_class(dataset.split("Training"), config["train_per_class"])
        test, test_source = test_images(private, train, config)
        data = BoyceData(
            train=train,
            validation=validation_images(dataset, config),
            test=test,
            private=at_most_per_class(private, config["private_per_class"]),
            test_source=test_source,
            test_has_training_duplicate=diagnostics.near_duplicate_mask(
                diagnostics.perceptual_hashes(test.images),
                diagnostics.perceptual_hashes(train.images),
                config["duplicate_threshold_bits"],
            ),
            weights=weights,
            run_identity={"data": dataset.checksum, "code": code_hash("boyce")},
        )
        return Prepared(
            data=data,
            class_names=dataset.class_names,
            checksum=dataset.checksum,
            data_kind="real",
            description=(
                f"FER2013, 4 classes: {len(data.train)} Training, {len(data.validation)} "
                f"{' + '.join(config['validation_splits'])}, test {len(data.test)} + {len(data.private)} "
                "PrivateTest images"
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
            model, training, probabilities, feature_seconds = trainer(setting, data, seed, epochs, config, runtime)
            notes = [initialisation_note(setting, data, config)]
        else:
            preprocessing = Preprocessing(size=CUSTOM_INPUT_SIZE, channels=3, scale="unit")
            model = build_custom_model(setting, len(prepared.class_names))
            compile_model(model, config["learning_rate"])
            run_key = training_run_key(setting, data, seed, config, runtime)
            training = train_end_to_end(model, data, preprocessing, seed, epochs, config, runtime, run_key)
            probabilities = {
                name: predict_split(model, data.split(name), preprocessing) for name in ("test", "private")
            }
            notes = []
        if epochs < config["max_epochs"]:
            unit = "epoch" if epochs == 1 else "epochs"
            notes.append(f"at most {epochs} {unit} (others {config['max_epochs']}): capped for compute in metadata")

        fitted = training.fitted
        extras, denominators, private_report = private_extras(
            data.private.labels, probabilities["private"], prepared.class_names
        )
        extras.update(
            validation_accuracy=fitted.history["val_accuracy"][fitted.best_epoch - 1],
            epochs_run=float(fitted.epochs_run),
            seconds_per_epoch=training.seconds_per_epoch,
        )
        explained, explained_denominators, explained_details = hypothesis_measures(
            data, training, probabilities, config, self.metadata_file
        )
        extras.update(explained)
        denominators.update(explained_denominators)
        log.info(
            "%s seed %d: %d epochs (%.1fs each), best epoch %d; PrivateTest accuracy %.3f",
            setting,
            seed,
            fitted.epochs_run,
            training.seconds_per_epoch,
            fitted.best_epoch,
            extras["private_accuracy"],
        )
        trained = TrainedModel(
            model,
            preprocessing,
            selection_score=extras["validation_accuracy"],
            selected_on=f"{' + '.join(config['validation_splits'])} (validation) accuracy",
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
                **explained_details,
            },
            model=trained if config["save_models"] else None,
        )

    def finalize(
        self, prepared: Prepared, details: Mapping[str, Mapping[int, Mapping[str, Any]]], config: Mapping[str, Any]
    ) -> dict[str, dict[int, dict[str, Any]]]:
        """Each setting's seed chosen on the 128-image test (a hypothesis for the capstone's ~93%), added to
        every seed's details: a seed's metric is computed before the other seeds exist."""
        return {
            setting: {seed: {"seed_chosen_on_test": seed_chosen_on_test(by_seed)} for seed in by_seed}
            for setting, by_seed in details.items()
        }
