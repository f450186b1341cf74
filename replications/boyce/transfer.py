"""Boyce's transfer models: a keras.applications backbone (ImageNet weights, or random with `--weights none`)
and a small head. Frozen, the backbone's features are computed once per run and only the head trains;
`train_backbone: true` trains both on augmented images, at 10-30x the cost."""

from __future__ import annotations

import time

import numpy as np

from fer_common.contract import Preprocessing
from fer_common.resume import epoch_dataset
from fer_common.train import RuntimeOptions, make_dataset, predict_probabilities
from replications.boyce import imagenet
from replications.boyce.data import SPLITS, BoyceData, TransferFeatures
from replications.boyce.models import (
    BACKBONES,
    assemble_transfer_model,
    backbone_of,
    build_feature_extractor,
    build_head,
)
from replications.boyce.training import (
    PREDICT_BATCH_SIZE,
    compile_model,
    fit_with_plateau,
    predict_split,
    train_end_to_end,
)

BACKBONE_INIT_SEED = 0  # a frozen random backbone is the same for every seed, as an ImageNet one would be


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


def train_frozen_transfer(
    setting: str, data: BoyceData, seed: int, epochs: int, config: dict, runtime: RuntimeOptions, run_key: str
):
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
        run_key=run_key,
    )
    probabilities = {
        name: predict_probabilities(head, features.splits[name], PREDICT_BATCH_SIZE) for name in ("test", "private")
    }
    model = assemble_transfer_model(setting, features.extractor, head)
    return model, training, probabilities, features.seconds


def train_whole_transfer(
    setting: str, data: BoyceData, seed: int, epochs: int, config: dict, runtime: RuntimeOptions, run_key: str
):
    """Train backbone and head together (`train_backbone: true`), on augmented images."""
    extractor = build_extractor(setting, data.weights.get(setting), trainable=True)
    num_classes = int(data.train.labels.max()) + 1
    # Trained together, the features change as the backbone learns: the head starts without standardising.
    feature_count = extractor.output_shape[-1]
    head = build_head(np.zeros(feature_count), np.ones(feature_count), num_classes)
    model = assemble_transfer_model(setting, extractor, head)
    compile_model(model, config["backbone_learning_rate"])
    preprocessing = transfer_preprocessing(setting)
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
