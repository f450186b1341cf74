"""What the proxy's full run costs here, at FER2013's 48 px and upscaled to 96 px: the measurement behind its
input-size assumption.

    PYTHONPATH=$PWD python -m studies.cmu_proxy_cost --precision auto --threads 0

Times training steps (batch 64, the replication's optimiser and loss) and inference of both models at both
sizes, in interleaved rounds so a busy CPU slows every size alike, and estimates the full profile's hours
from the real split sizes: seeds x epochs x (train images / training rate + validation images / inference
rate) per model, plus the final scoring. Writes results/bench/cmu_proxy-cost-<time>-<commit>.json.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time

import numpy as np

from fer_common.metadata import load_metadata
from fer_common.provenance import machine_provenance
from fer_common.records import write_measurement
from fer_common.train import PRECISIONS, RuntimeOptions, RuntimeOptionsError, configure_runtime, describe_options
from replications.cmu.replication import three_way_split
from replications.cmu_proxy.replication import BASELINE, RESNET18, CmuProxy, build_model, compile_model

log = logging.getLogger(__name__)
SIZES = (48, 96)
SETTINGS = (BASELINE, RESNET18)
INFERENCE_BATCH = 256  # predict_probabilities' batch
WARMUP_STEPS = 2  # the first steps trace and compile the step function


def timed_rates(model, images: np.ndarray, labels: np.ndarray, batch_size: int, steps: int) -> tuple[float, float]:
    """(training images per second, inference images per second) over `steps` batches of each."""
    train_images, train_labels = images[:batch_size], labels[:batch_size]
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(train_images, train_labels)
    training = steps * batch_size / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(steps):
        model.predict_on_batch(images)
    inference = steps * len(images) / (time.perf_counter() - started)
    return training, inference


def measure(config: dict, num_classes: int, rounds: int, steps: int) -> dict[str, dict[str, float]]:
    """Median rates per `<setting>@<size>px` over `rounds` interleaved rounds of `steps` steps each."""
    generator = np.random.default_rng(0)
    batch_size = config["batch_size"]
    models, data = {}, {}
    for size in SIZES:
        images = generator.uniform(0, 255, (INFERENCE_BATCH, size, size, 3)).astype(np.float32)
        labels = np.eye(num_classes, dtype=np.float32)[generator.integers(0, num_classes, INFERENCE_BATCH)]
        for setting in SETTINGS:
            key = f"{setting}@{size}px"
            models[key] = build_model(setting, num_classes, config, size=size)
            compile_model(models[key], labels.argmax(1), num_classes, config)
            data[key] = (images, labels)
            timed_rates(models[key], images, labels, batch_size, WARMUP_STEPS)
    rates: dict[str, list[tuple[float, float]]] = {key: [] for key in models}
    for round_index in range(rounds):
        for key, model in models.items():
            rates[key].append(timed_rates(model, *data[key], batch_size, steps))
            log.info("round %d %s: %.1f train / %.1f inference images/s", round_index + 1, key, *rates[key][-1])
    return {
        key: {
            "train_images_per_s": statistics.median(rate[0] for rate in measured),
            "inference_images_per_s": statistics.median(rate[1] for rate in measured),
        }
        for key, measured in rates.items()
    }


def full_run_hours(rates: dict[str, dict[str, float]], sizes: dict[str, int], epochs: int, seeds: int) -> dict:
    """Estimated hours of the full profile per input size, both models, from the measured rates."""
    hours = {}
    for size in SIZES:
        seconds = 0.0
        for setting in SETTINGS:
            rate = rates[f"{setting}@{size}px"]
            per_epoch = (
                sizes["train"] / rate["train_images_per_s"] + sizes["validation"] / rate["inference_images_per_s"]
            )
            final_scoring = (sizes["validation"] + sizes["test"]) / rate["inference_images_per_s"]
            seconds += seeds * (epochs * per_epoch + final_scoring)
        hours[f"{size}px"] = round(seconds / 3600, 2)
    return hours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="training steps (and inference batches) per round")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32", help="as `fer-replicate run`'s")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: all cores)")
    arguments = parser.parse_args()
    if arguments.rounds < 1 or arguments.steps < 1:
        parser.error("--rounds and --steps take 1 or more")
    try:
        options = RuntimeOptions(precision=arguments.precision, threads=arguments.threads)
    except RuntimeOptionsError as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    configure_runtime(0, options)

    replication = CmuProxy()
    meta = load_metadata(replication.metadata_file)
    config, seeds = meta.resolve()
    prepared = replication.prepare(config)
    train, validation, test = three_way_split(
        prepared.data.labels, seeds[0], config["validation_fraction"], config["test_fraction"]
    )
    sizes = {"train": len(train), "validation": len(validation), "test": len(test)}
    rates = measure(config, len(prepared.class_names), arguments.rounds, arguments.steps)
    record = {
        "kind": "cmu_proxy_cost",
        "provenance": {**machine_provenance(), "load_average_1min": round(os.getloadavg()[0], 2)},
        "dataset_checksums": {"fer2013": prepared.checksum},
        "runtime": describe_options(options),
        "protocol": {
            "batch_size": config["batch_size"],
            "inference_batch": INFERENCE_BATCH,
            "rounds": arguments.rounds,
            "steps_per_round": arguments.steps,
            "epochs": config["epochs"],
            "seeds": len(seeds),
            "split_sizes": sizes,
        },
        "rates": rates,
        "full_run_hours": full_run_hours(rates, sizes, config["epochs"], len(seeds)),
    }
    path = write_measurement(record, "cmu_proxy-cost")
    log.info("full run estimate: %s; written to %s", record["full_run_hours"], path)


if __name__ == "__main__":
    main()
