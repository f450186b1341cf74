"""One benchmark measurement, in a fresh Python process of its own (or here, for `bench --quick`): the task,
the timing of a replication's bench model as it trains or predicts, and the marked line the process prints.
`fer_common.bench` plans the measurements, runs them and puts the report together.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from fer_common import paths
from fer_common.contract import BenchModel, BenchReference
from fer_common.errors import FerError
from fer_common.measurement_formats import PLAIN
from fer_common.train import RuntimeOptions

RESULT_PREFIX = "BENCH-RESULT "  # the line a measuring process prints its result on
NUM_CLASSES = 7  # the bench's faces are FER2013's, and every bench model classifies 7 emotions
INFERENCE_BATCH = 256


@dataclass(frozen=True)
class TrainTask:
    """One training measurement: a warm-up chunk, then `chunks` timed chunks of `chunk_steps` steps."""

    replication: str
    model: str  # the name of one of the replication's bench models
    way: str
    options: RuntimeOptions | None  # None for the plain way
    chunk_steps: int
    chunks: int
    data_file: str
    workers: int = 1  # processes training at once (the parallel way); their images per second are summed
    onednn: bool = True  # False: the measuring process runs with TF_ENABLE_ONEDNN_OPTS=0


@dataclass(frozen=True)
class InferenceTask:
    """One inference measurement: `passes` timed passes over the faces in batches of 256, after a warm-up
    batch, then `passes` over the first `single_faces` faces one at a time, as `predict` and `demo` call a
    model for one face (`predict_on_batch`, no per-call set-up of `model.predict`)."""

    replication: str
    model: str  # the name of one of its bench models, or of its bench references
    way: str
    options: RuntimeOptions | None
    images: int
    passes: int
    data_file: str
    reference: bool = False  # a pretrained reference (as shipped, float32) rather than a bench model
    single_faces: int = 0


def _find_bench_model(replication_id: str, name: str) -> BenchModel:
    from fer_common.registry import REPLICATIONS

    for model in REPLICATIONS.get(replication_id).bench_models():
        if model.name == name:
            return model
    raise ValueError(f"{replication_id} has no bench model {name!r}")


def _find_reference(replication_id: str, name: str) -> BenchReference:
    from fer_common.registry import REPLICATIONS

    for reference in REPLICATIONS.get(replication_id).bench_references():
        if reference.name == name:
            return reference
    raise ValueError(f"{replication_id} has no bench reference {name!r}")


# --- measuring (runs in a fresh process, or here for --quick) -----------------------------------------


def _build_and_compile(model: BenchModel):
    """The replication's own model and optimizer (its config's values), compiled as it compiles them."""
    built = model.build_model()
    model.compile_model(built)
    return built


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


def _training_arrays(task: TrainTask, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 faces and labels, repeated if the file holds fewer than the task needs."""
    needed = batch_size * task.chunk_steps * (task.chunks + 1)
    with np.load(task.data_file) as stored:
        faces, labels = stored["train_faces"], stored["train_labels"]
    repeat = -(-needed // len(faces))
    return np.concatenate([faces] * repeat)[:needed], np.concatenate([labels] * repeat)[:needed]


def measure_training(task: TrainTask) -> dict:
    """Images per second of each timed chunk of training steps, for one way."""
    import keras

    from fer_common.train import apply_runtime_options, configure_runtime, make_dataset, to_model_input

    bench_model = _find_bench_model(task.replication, task.model)
    faces, labels = _training_arrays(task, bench_model.batch_size)
    images = to_model_input(faces, channels=bench_model.channels)
    epochs = task.chunks + 1  # the first epoch is the warm-up: it traces and compiles the step
    timer = _chunk_timer()
    if task.way == PLAIN:
        keras.utils.set_random_seed(0)
        keras.mixed_precision.set_global_policy("float32")
        model = _build_and_compile(bench_model)
        one_hot = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
        model.fit(
            images,
            one_hot,
            batch_size=bench_model.batch_size,
            steps_per_epoch=task.chunk_steps,
            epochs=epochs,
            callbacks=[timer],
            verbose=0,
        )
        policy = "float32"
    else:
        policy = configure_runtime(0, task.options)
        model = _build_and_compile(bench_model)
        apply_runtime_options(model, task.options)
        dataset = make_dataset(
            images,
            labels,
            NUM_CLASSES,
            bench_model.batch_size,
            shuffle=True,
            seed=0,
            augment=bench_model.augmentation,
        ).repeat()
        model.fit(dataset, steps_per_epoch=task.chunk_steps, epochs=epochs, callbacks=[timer], shuffle=False, verbose=0)
    chunk_images = task.chunk_steps * bench_model.batch_size
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
    if task.reference:
        reference = _find_reference(task.replication, task.model)
        keras.mixed_precision.set_global_policy("float32")
        model, preprocess, policy = reference.load(), reference.preprocess, "float32 (as shipped)"
    else:
        bench_model = _find_bench_model(task.replication, task.model)
        if task.options is None:
            keras.utils.set_random_seed(0)
            keras.mixed_precision.set_global_policy("float32")
            policy = "float32"
        else:
            policy = configure_runtime(0, task.options)
        model = bench_model.build_model()  # untrained: speed does not depend on the weights
        if task.options is not None:
            apply_runtime_options(model, task.options)

        def preprocess(batch):
            return to_model_input(batch, channels=bench_model.channels)

    predict_probabilities(model, preprocess(faces[:INFERENCE_BATCH]), INFERENCE_BATCH)  # builds predict
    rates = []
    for _ in range(task.passes):
        started = time.perf_counter()
        predict_probabilities(model, preprocess(faces), INFERENCE_BATCH)
        rates.append(len(faces) / (time.perf_counter() - started))
    single = [preprocess(faces[index : index + 1]) for index in range(min(task.single_faces, len(faces)))]
    single_rates = []
    if single:
        model.predict_on_batch(single[0])  # builds the one-face call
        for _ in range(task.passes):
            started = time.perf_counter()
            for face in single:
                model.predict_on_batch(face)
            single_rates.append(len(single) / (time.perf_counter() - started))
    return {
        "images_per_second": rates,
        "single_face_images_per_second": single_rates,
        "policy": policy,
        "parameters": int(model.count_params()),
    }


def _task_to_json(task: TrainTask | InferenceTask) -> str:
    kind = "train" if isinstance(task, TrainTask) else "inference"
    return json.dumps({"kind": kind, "task": asdict(task)})


def _task_from_json(text: str) -> TrainTask | InferenceTask:
    content = json.loads(text)
    fields = content["task"]
    options = RuntimeOptions(**fields["options"]) if fields["options"] is not None else None
    if content["kind"] == "train":
        return TrainTask(**{**fields, "options": options})
    return InferenceTask(**{**fields, "options": options})


def measure_here(task: TrainTask | InferenceTask) -> dict:
    return measure_training(task) if isinstance(task, TrainTask) else measure_inference(task)


def _start_process(task: TrainTask | InferenceTask) -> subprocess.Popen:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    environment["TF_ENABLE_ONEDNN_OPTS"] = "1" if getattr(task, "onednn", True) else "0"
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(paths.REPO_ROOT), environment.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "fer_common.bench_worker", _task_to_json(task)],
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


def measure_in_fresh_process(task: TrainTask | InferenceTask) -> dict:
    """Run a measurement in new Python processes (`workers` of them at once for a parallel training task:
    chunk by chunk, their images per second are summed)."""
    workers = getattr(task, "workers", 1)
    results = [_finish_process(process) for process in [_start_process(task) for _ in range(workers)]]
    if workers == 1:
        return results[0]
    chunks = min(len(result["images_per_second"]) for result in results)
    summed = [sum(result["images_per_second"][index] for result in results) for index in range(chunks)]
    return {**results[0], "images_per_second": summed, "workers": workers}


def _worker_main(argv: list[str]) -> int:
    """`python -m fer_common.bench_worker '<task JSON>'`: one measurement, printed on a marked line."""
    result = measure_here(_task_from_json(argv[0]))
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
