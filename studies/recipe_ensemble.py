"""What the recipe's trained seeds buy together, measured on PublicTest only: each seed and their ensemble (the
mean of their probabilities), as they are and with flip test-time augmentation, beside the inference rate of
one model, of the ensemble and of the `fer` package's model on the same faces. PrivateTest is not read: this
chooses the next step (ensemble, or distillation into one model), it reports no test figure.

It also writes the ensemble's probabilities on FER2013 Training, the soft labels a distilled model would
learn from (float16, about 0.4 MB), bound to the job results whose models made them.

    python -m studies.recipe_ensemble                  # the models of results/fer2013_cnn/jobs on this machine

writes results/bench/recipe-ensemble-<UTC>-<commit>.json and its .npz (commit first: it names its code).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
from pathlib import Path

import numpy as np

from fer_common import paths
from fer_common.atomic import write_new_file
from fer_common.errors import FerError
from fer_common.jobs import StoredJob, read_job
from fer_common.metadata import load_metadata
from fer_common.provenance import machine_provenance, utc_now
from fer_common.records import BENCH_FOLDER, bench_stem, write_measurement
from fer_common.train import RuntimeOptions, configure_runtime, describe_options, predict_probabilities
from recipes.fer2013_cnn.recipe import (
    EVAL_BATCH_SIZE,
    SINGLE_VIEW,
    Fer2013Cnn,
    accuracy,
    flip_tta_probabilities,
    images_per_second,
    load_recipe_data,
)
from studies.recipe_explore import TIMED_IMAGES, measure_fer_reference

log = logging.getLogger(__name__)


def trained_seeds(jobs_dir: Path) -> list[StoredJob]:
    """The single-view job results of `jobs_dir` whose .keras model is on this machine, by seed."""
    jobs = [read_job(path) for path in sorted(jobs_dir.glob("*.json"))]
    found = sorted((job for job in jobs if job.setting == SINGLE_VIEW and job.model_file), key=lambda job: job.seed)
    if len({job.key.digest for job in found}) > 1:
        raise FerError(f"{jobs_dir} holds the results of more than one run (config, code or runtime); keep one")
    if len(found) < 2:
        raise FerError(
            f"{jobs_dir} holds {len(found)} trained model(s) of the recipe; an ensemble needs two or more: run "
            "`fer-replicate run fer2013_cnn` on this machine (job results from elsewhere travel without models)"
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=Path, default=paths.results_dir() / "fer2013_cnn" / "jobs")
    parser.add_argument("--output", type=Path, default=None, help="folder (default: results/bench)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        seeds = trained_seeds(args.jobs)
    except FerError as error:
        log.error("%s", error)
        return 2
    import keras

    runtime = RuntimeOptions()
    configure_runtime(0, runtime)
    config = {**load_metadata(Fer2013Cnn.metadata_file).config, "train_limit": None, "eval_limit": None}
    data, dataset = load_recipe_data(config)
    models = [keras.saving.load_model(job.model_file, compile=False) for job in seeds]
    public, labels = data.public_images, data.public_labels
    single = [predict_probabilities(model, public, EVAL_BATCH_SIZE) for model in models]
    flipped = [flip_tta_probabilities(model, public) for model in models]
    rows = [
        {
            "seed": job.seed,
            "job_result": job.file.name,
            "model_sha256": hashlib.sha256(job.model_file.read_bytes()).hexdigest(),
            "selected_epoch": job.result["metrics"].get("selected_epoch"),
            "public_accuracy": round(accuracy(probabilities, labels), 4),
            "public_accuracy_flip_tta": round(accuracy(mirrored, labels), 4),
        }
        for job, probabilities, mirrored in zip(seeds, single, flipped, strict=True)
    ]
    faces = public[:TIMED_IMAGES]
    rates = {
        "one_model": images_per_second(lambda images: predict_probabilities(models[0], images, EVAL_BATCH_SIZE), faces),
        "ensemble": images_per_second(
            lambda images: np.mean([predict_probabilities(m, images, EVAL_BATCH_SIZE) for m in models], axis=0), faces
        ),
    }
    ensemble = {
        "seeds": [job.seed for job in seeds],
        "public_accuracy": round(accuracy(np.mean(single, axis=0), labels), 4),
        "public_accuracy_flip_tta": round(accuracy(np.mean(flipped, axis=0), labels), 4),
        "images_per_second": {name: round(rate, 1) for name, rate in rates.items()},
    }
    reference = measure_fer_reference(dataset.split("PublicTest").images[:TIMED_IMAGES])
    soft_labels = np.mean([predict_probabilities(m, data.train_images, EVAL_BATCH_SIZE) for m in models], axis=0)
    log.info("seeds: %s", rows)
    log.info("ensemble: %s; fer reference: %s", ensemble, reference)
    record = {
        "kind": "fer2013_cnn ensemble",
        "created_utc": utc_now(),
        "selection_data": f"PublicTest ({len(labels)} images); PrivateTest not read",
        "seeds": rows,
        "ensemble": ensemble,
        "fer_reference": reference,
        "soft_labels": {
            "what": "the ensemble's mean probabilities on FER2013 Training, in dataset order, float16",
            "images": int(len(soft_labels)),
            "training_accuracy": round(accuracy(soft_labels, data.train_labels), 4),
        },
        "runtime": describe_options(runtime),
        "provenance": {**machine_provenance(), "dataset_checksum": dataset.checksum, "config": config},
    }
    folder = args.output or paths.results_dir() / BENCH_FOLDER
    buffer = io.BytesIO()
    np.savez_compressed(buffer, soft_labels=soft_labels.astype(np.float16))
    soft_file = write_new_file(folder, bench_stem(record, "recipe-ensemble"), ".npz", buffer.getvalue())
    record["soft_labels"]["file"] = soft_file.name
    record["soft_labels"]["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    log.info("written: %s", write_measurement(record, "recipe-ensemble", folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
