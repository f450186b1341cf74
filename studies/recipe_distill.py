"""Does distillation pay for the recipe? One seed of the recipe trained on targets that mix each image's label
with the soft labels of an ensemble of its trained seeds (`studies.recipe_ensemble`), everything else as the
metadata's config: the epoch is chosen and the run scored on PublicTest only, so it compares with the plain
runs' PublicTest accuracy at the same cost. PrivateTest is not read.

    python -m studies.recipe_distill --soft-labels results/bench/recipe-ensemble-<...>.npz --weight 0.5

writes results/bench/recipe-distill-<UTC>-<commit>.json (commit first: it names its code). A killed run
resumes from its last epoch (fer_common.resume) when started again with the same arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import time
from pathlib import Path

import numpy as np

from fer_common.errors import FerError
from fer_common.metadata import code_hash, load_metadata
from fer_common.provenance import machine_provenance, utc_now
from fer_common.records import write_measurement
from fer_common.resume import epoch_order, fit_resumable, make_run_key
from fer_common.train import RuntimeOptions, configure_runtime, describe_options
from recipes.fer2013_cnn import recipe as recipe_module
from recipes.fer2013_cnn.augmentation import Augmentation, epoch_batches
from recipes.fer2013_cnn.recipe import (
    RECIPE_ID,
    Fer2013Cnn,
    PublicTestSelection,
    compile_model,
    load_recipe_data,
    model_from_config,
)

log = logging.getLogger(__name__)
CLASSES = 7
RECIPES = Path(recipe_module.__file__).parent.parent  # the folder whose packages code_hash reads


def read_soft_labels(path: Path, images: int) -> np.ndarray:
    """The (images, 7) soft labels of a `recipe_ensemble` .npz, checked against the Training set's size."""
    try:
        with np.load(path) as arrays:
            soft = arrays["soft_labels"].astype(np.float32)
    except (OSError, KeyError, ValueError) as error:
        raise FerError(f"{path}: not a soft-label file of studies.recipe_ensemble ({error})") from None
    if soft.shape != (images, CLASSES):
        raise FerError(f"{path}: soft labels of shape {soft.shape}, not ({images}, {CLASSES}) for FER2013 Training")
    return soft


def distilled_batches(images, labels, soft, weight: float, batch_size: int, augmentation, *, seed: int, epoch: int):
    """The recipe's epoch of augmented batches, each target `weight` x its one-hot label + (1 - weight) x its
    soft label: the soft labels follow the same `epoch_order`, batched alike, so they line up batch by batch."""
    import tensorflow as tf

    batches = epoch_batches(images, labels, CLASSES, batch_size, augmentation, seed=seed, epoch=epoch)
    order = epoch_order(len(images), seed, epoch)
    targets = tf.data.Dataset.from_tensor_slices(soft[order]).batch(batch_size)
    return tf.data.Dataset.zip((batches, targets)).map(
        lambda batch, teacher: (batch[0], weight * batch[1] + (1.0 - weight) * teacher)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--soft-labels", type=Path, required=True)
    parser.add_argument("--weight", type=float, default=0.5, help="of the one-hot label, in [0, 1]")
    parser.add_argument("--epochs", type=int, default=None, help="default: the metadata's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--output", type=Path, default=None, help="folder (default: results/bench)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not 0.0 <= args.weight <= 1.0:
        log.error("--weight must lie in [0, 1], not %s", args.weight)
        return 2
    meta = load_metadata(Fer2013Cnn.metadata_file)
    config = {**meta.config, "train_limit": None, "eval_limit": None, "save_models": False}
    if args.epochs:
        config["epochs"] = args.epochs
    runtime = RuntimeOptions(precision=args.precision)
    configure_runtime(args.seed, runtime)
    data, dataset = load_recipe_data(config)
    try:
        soft = read_soft_labels(args.soft_labels, len(data.train_labels))
    except FerError as error:
        log.error("%s", error)
        return 2
    soft_sha256 = hashlib.sha256(args.soft_labels.read_bytes()).hexdigest()
    model = model_from_config(config, CLASSES)
    compile_model(model, config, len(data.train_images))
    augmentation = Augmentation.from_config(config["augmentation"])
    selection = PublicTestSelection(data.public_images, data.public_labels)
    study = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    code = {"recipe": code_hash(RECIPE_ID, root=RECIPES), "study": study}
    identity = {"data": dataset.checksum, "code": code, "soft_labels": soft_sha256}
    run_key = make_run_key(f"{RECIPE_ID}_distill", f"weight{args.weight}", args.seed, config, runtime, **identity)
    started = time.perf_counter()
    history = fit_resumable(
        model,
        lambda epoch: distilled_batches(
            data.train_images,
            data.train_labels,
            soft,
            args.weight,
            config["batch_size"],
            augmentation,
            seed=args.seed,
            epoch=epoch,
        ),
        None,
        epochs=config["epochs"],
        run_key=run_key,
        seed=args.seed,
        options=runtime,
        callbacks=[selection],
    )
    seconds = time.perf_counter() - started
    record = {
        "kind": "fer2013_cnn distillation",
        "created_utc": utc_now(),
        "selection_data": f"PublicTest ({len(data.public_labels)} images); PrivateTest not read",
        "teacher": {"file": args.soft_labels.name, "sha256": soft_sha256, "weight_of_label": args.weight},
        "seed": args.seed,
        "epochs": config["epochs"],
        "public_accuracy_best": round(selection.best_accuracy, 4),
        "selected_epoch": selection.selected_epoch,
        "public_accuracy_per_epoch": [round(value, 4) for value in history["public_accuracy"]],
        "train_accuracy_per_epoch": [round(value, 4) for value in history["accuracy"]],
        "train_seconds": round(seconds, 1),
        "runtime": describe_options(runtime),
        "provenance": {**machine_provenance(), "dataset_checksum": dataset.checksum, "config": config},
    }
    log.info("PublicTest %.4f at epoch %d", selection.best_accuracy, selection.selected_epoch)
    path = write_measurement(record, "recipe-distill", args.output)
    log.info("written: %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
