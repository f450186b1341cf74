"""Dikshit et al. (CMU): shallow CNN vs ResNet18 on AffectNet-8, 80/10/10 random split, class-weighted loss.

Settings: `baseline` (5 conv + 1 linear layer) and `resnet18` (fine-tuned from ImageNet when the user
supplies the weights file, otherwise trained from scratch and labelled so). The paper reports validation
accuracy, so the validation split is the scored set; the held-out test split is reported beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fer_common.bundles import Preprocessing
from fer_common.data import splits
from fer_common.data.affectnet import load_affectnet
from fer_common.experiment import Prepared, SeedOutcome
from fer_common.train import fit, make_dataset, predict_probabilities
from replications.cmu.models import (
    RESNET18_NPZ_FILENAME,
    build_baseline,
    build_resnet18,
    class_weights,
    load_torchvision_resnet18,
    weighted_categorical_crossentropy,
)


def resnet18_weights_path(config: dict) -> Path | None:
    """The ImageNet weights file for ResNet18, or None to train from scratch (`weights: none`)."""
    weights = str(config["weights"])
    if weights == "none":
        return None
    if weights == "imagenet":
        from fer_common.paths import weights_dir

        return weights_dir() / RESNET18_NPZ_FILENAME
    return Path(weights).expanduser()


def prepare(config: dict) -> Prepared:
    from fer_common.paths import data_dir

    dataset = load_affectnet(data_dir() / "affectnet", image_size=config["image_size"])
    # The paper split AffectNet-8's training images 80/10/10; editions without splits give all images.
    source = dataset.split("training") if "training" in set(dataset.meta["split"]) else dataset
    images = source.images.astype(np.float32)  # both models rescale inside, from 0..255
    return Prepared(
        data={"images": images, "labels": source.labels},
        class_names=source.class_names,
        checksum=dataset.checksum,
        data_kind="real",
        description=f"AffectNet ({dataset.extra.get('edition', 'unknown')} edition), {len(source)} images",
    )


def three_way_split(labels: np.ndarray, seed: int, validation_fraction: float, test_fraction: float):
    """Stratified random train / validation / test indices (the paper's 80/10/10)."""
    rest, test = splits.stratified_holdout(labels, test_fraction, seed)
    train_in_rest, validation_in_rest = splits.stratified_holdout(
        labels[rest], validation_fraction / (1 - test_fraction), seed
    )
    return rest[train_in_rest], rest[validation_in_rest], test


def build_model(setting: str, input_shape, num_classes: int, config: dict) -> tuple[object, str]:
    """The setting's model and how it was initialised."""
    if setting == "baseline":
        return build_baseline(
            input_shape, num_classes, channels=config["baseline_channels"]
        ), "random initialisation"
    if setting != "resnet18":
        raise ValueError(f"unknown CMU setting {setting!r}; expected baseline or resnet18")
    model = build_resnet18(input_shape, num_classes)
    weights = resnet18_weights_path(config)
    if weights is None:
        return model, "from scratch (--weights none)"
    if not weights.exists() and config["weights"] == "imagenet":
        return model, f"from scratch: no ImageNet weights at {weights}"
    load_torchvision_resnet18(model, weights)  # a named file that is missing or wrong is an error
    return model, f"fine-tuned from ImageNet weights {weights.name}"


def run_seed(prepared: Prepared, setting: str, seed: int, config: dict) -> SeedOutcome:
    import keras

    images, labels = prepared.data["images"], prepared.data["labels"]
    num_classes = len(prepared.class_names)
    train, validation, test = three_way_split(
        labels, seed, config["validation_fraction"], config["test_fraction"]
    )
    model, initialisation = build_model(setting, images.shape[1:], num_classes, config)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config["learning_rate"]),
        loss=weighted_categorical_crossentropy(class_weights(labels[train], num_classes)),
        metrics=["accuracy"],
    )
    batch = config["batch_size"]
    result = fit(
        model,
        make_dataset(images[train], labels[train], num_classes, batch, shuffle=True, seed=seed),
        make_dataset(images[validation], labels[validation], num_classes, batch),
        epochs=config["epochs"],
        verbose=2,
    )
    test_probabilities = predict_probabilities(model, images[test])
    return SeedOutcome(
        y_true=labels[validation],
        probabilities=predict_probabilities(model, images[validation]),
        history=result.history,
        extras={"test_accuracy": float(np.mean(test_probabilities.argmax(1) == labels[test]))},
        details={
            "scored_set": "validation (as the paper reports)",
            "sizes": {"train": len(train), "validation": len(validation), "test": len(test)},
            "initialisation": initialisation,
            "row_note": f"ResNet18 {initialisation}" if setting == "resnet18" else "",
        },
        model=model,  # for Static2Live: `fer-replicate demo --model cmu-<setting>`
        preprocessing=Preprocessing(size=images.shape[1], channels=images.shape[3], scale="raw"),
    )
