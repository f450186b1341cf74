"""Training plumbing shared by every replication: determinism, precision, input pipelines, fitting."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fer_common.errors import FerError

PRECISIONS = ("float32", "mixed_bfloat16", "auto")
# Measured on a 2-core AVX512-BF16 EPYC (fer-replicate bench): 16 steps per tf.function call take the
# per-step Python overhead off small models (Chen: batch 8) and give bit-identical weights, because the
# steps run the same ops in the same order inside one call.
DEFAULT_STEPS_PER_EXECUTION = 16

log = logging.getLogger(__name__)


class RuntimeOptionsError(FerError, ValueError):
    """Speed switches that cannot work together (e.g. XLA with op determinism)."""


@dataclass(frozen=True)
class RuntimeOptions:
    """Switches that change speed, never the science; each can be turned off from the command line.

    precision: "float32"; "mixed_bfloat16" (bf16 compute, float32 weights; output layers that say
    dtype="float32" stay float32); "auto" = mixed_bfloat16 where the CPU has native bf16 (AMX or
    AVX512-BF16, with oneDNN on), else float32. bf16 changes the numbers: see `fer-replicate bench --parity`.
    jit_compile: XLA-compile the train/predict steps. Keras refuses XLA while TensorFlow's op determinism
    is on, so it needs deterministic=False.
    threads: TensorFlow intra-op threads (inter-op: at most 2); 0 = TensorFlow's choice (all cores).
    Another thread count gives other (equally valid) numbers: reductions are summed in another order.
    deterministic: TensorFlow op determinism (bit-reproducible runs).
    steps_per_execution: training steps per tf.function call; 1 = off. Bit-identical to 1.
    """

    precision: str = "float32"
    jit_compile: bool = False
    threads: int = 0
    deterministic: bool = True
    steps_per_execution: int = DEFAULT_STEPS_PER_EXECUTION

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise RuntimeOptionsError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.threads < 0:
            raise RuntimeOptionsError(f"threads must be 0 (automatic) or more, not {self.threads}")
        if self.steps_per_execution < 1:
            raise RuntimeOptionsError(f"steps per execution must be 1 (off) or more, not {self.steps_per_execution}")
        if self.jit_compile and self.deterministic:
            raise RuntimeOptionsError(
                "XLA (--jit) cannot run with op determinism: Keras turns XLA off while TensorFlow's op "
                "determinism is on. Add --no-deterministic to use --jit."
            )


def cpu_supports_bfloat16() -> bool:
    """True where the CPU has native bf16 matrix units (AMX-bf16 or AVX512-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def onednn_enabled() -> bool:
    """TensorFlow's CPU kernels use oneDNN (the only bf16 kernels that are fast) unless this is set to 0."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() not in ("0", "false")


def resolve_precision(precision: str) -> str:
    """The Keras dtype policy for a precision switch; "auto" falls back to float32 without native bf16,
    where bf16 is emulated and slower than float32."""
    if precision == "auto":
        return "mixed_bfloat16" if cpu_supports_bfloat16() and onednn_enabled() else "float32"
    if precision not in ("float32", "mixed_bfloat16"):
        raise RuntimeOptionsError(f"precision must be float32, mixed_bfloat16 or auto, not {precision!r}")
    return precision


def numeric_identity(options: RuntimeOptions) -> dict:
    """The switches that change a run's numbers beyond the thread count, as far as they differ from the
    float32 defaults: {} for a default run, so keys derived from it (resume checkpoints) stay as they were."""
    identity = {}
    policy = resolve_precision(options.precision)
    if policy != "float32":
        identity["precision"] = policy
    if options.jit_compile:
        identity["jit_compile"] = True
    if not options.deterministic:
        identity["deterministic"] = False
    return identity


def _size_thread_pools(threads: int) -> None:
    """Thread pools can only be sized before TensorFlow runs its first op. A process whose pools already
    have another size cannot honour `threads`: refuse, rather than record a thread count that did not run."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    except RuntimeError:
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != threads:
            raise RuntimeOptionsError(
                f"TensorFlow already runs with {current or 'its automatic number of'} intra-op threads in this "
                f"process; {threads} thread(s) can only be set in a fresh process (a new command, or "
                "--executor process)."
            ) from None


def configure_runtime(seed: int, options: RuntimeOptions = RuntimeOptions()) -> str:
    """Seed every generator and apply the runtime options; returns the precision policy in force.

    Must run before a model is built: the dtype policy is read at layer construction.
    """
    import keras
    import tensorflow as tf

    if options.threads:
        _size_thread_pools(options.threads)
    if options.deterministic:
        os.environ["TF_DETERMINISTIC_OPS"] = "1"
        tf.config.experimental.enable_op_determinism()
    else:
        # A process that ran a deterministic job before (a worker, a test session) must not keep it on.
        from tensorflow.python.framework import config as tf_config

        os.environ.pop("TF_DETERMINISTIC_OPS", None)
        tf_config.disable_op_determinism()
    keras.utils.set_random_seed(seed)
    policy = resolve_precision(options.precision)
    keras.mixed_precision.set_global_policy(policy)
    return policy


def apply_runtime_options(model, options: RuntimeOptions) -> None:
    """Give a compiled model the run's XLA and steps-per-execution switches.

    A replication's own choices win: a model compiled with steps_per_execution > 1 keeps it, and
    jit_compile=False leaves the model's setting alone. Compiled step functions are dropped so that the
    next fit / predict builds them with the new settings.
    """
    changed = False
    if options.jit_compile and not model.jit_compile:
        model.jit_compile = True  # Keras warns and keeps False where the model cannot be XLA-compiled
        changed = True
    if options.steps_per_execution > 1 and model.steps_per_execution == 1:
        model.steps_per_execution = options.steps_per_execution
        changed = True
    if changed:
        model.train_function = model.test_function = model.predict_function = None


def describe_options(options: RuntimeOptions) -> dict:
    """The options as recorded, with the precision policy they resolve to on this machine."""
    return {**asdict(options), "policy": resolve_precision(options.precision)}


def to_model_input(images: np.ndarray, channels: int | None = None, size: int | None = None) -> np.ndarray:
    """uint8 (N, H, W, C) -> float32 in [0, 1], optionally resized and with 1 or 3 channels.

    Every replication and the demo go through this one function, so inference sees exactly
    the preprocessing that training saw.
    """
    import cv2

    if size is not None and images.shape[1:3] != (size, size):
        resized = [cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) for image in images]
        images = np.stack([r if r.ndim == 3 else r[..., None] for r in resized])
    if channels is not None and images.shape[-1] != channels:
        if channels == 3 and images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        elif channels == 1 and images.shape[-1] == 3:
            weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as cv2 does
            images = np.rint(images.astype(np.float32) @ weights)[..., None].clip(0, 255).astype(np.uint8)
        else:
            raise ValueError(f"cannot convert {images.shape[-1]} channels to {channels}")
    return images.astype(np.float32) / 255.0


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    augment=None,
):
    """A tf.data pipeline of (image, one-hot label) batches; shuffled and augmented reproducibly."""
    import tensorflow as tf

    from fer_common.augment import augment_dataset

    one_hot = np.eye(num_classes, dtype=np.float32)[labels]
    dataset = tf.data.Dataset.from_tensor_slices((images, one_hot))
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if augment is not None:
        dataset = augment_dataset(dataset, augment, seed)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


@dataclass
class FitResult:
    history: dict[str, list[float]]
    best_epoch: int  # 1-based epoch whose weights the model holds after fitting
    epochs_run: int


def fit(
    model,
    train_dataset,
    validation_dataset,
    *,
    epochs: int,
    options: RuntimeOptions,
    early_stopping_patience: int | None = None,
    restore_best: bool = True,
    extra_callbacks: Sequence = (),
    verbose: int = 2,
) -> FitResult:
    """model.fit with the papers' callbacks (and a replication's own, e.g. ReduceLROnPlateau).

    EarlyStopping(restore_best_weights=True) on validation loss stands in for Keras'
    ModelCheckpoint(save_best_only=True) + reload: same weights, no file round trip.
    """
    import keras

    apply_runtime_options(model, options)
    callbacks = list(extra_callbacks)
    stopping = early_stopping_patience is not None
    if stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=early_stopping_patience, restore_best_weights=restore_best
            )
        )
    history = model.fit(
        train_dataset,
        validation_data=validation_dataset,
        epochs=epochs,
        callbacks=callbacks,
        shuffle=False,  # the dataset shuffles itself (make_dataset); Keras warns about its default True otherwise
        verbose=verbose if log.isEnabledFor(logging.INFO) else 0,  # Keras' epoch lines go with ours (-q)
    ).history
    history = {key: [float(v) for v in values] for key, values in history.items()}
    val_loss = history.get("val_loss")
    epochs_run = len(next(iter(history.values()))) if history else 0
    best_epoch = int(np.argmin(val_loss)) + 1 if (val_loss and restore_best and stopping) else epochs_run
    return FitResult(history=history, best_epoch=best_epoch, epochs_run=epochs_run)


def predict_probabilities(model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Softmax outputs as float64 (mixed precision models return bf16/float32).

    The batches go in as a tf.data pipeline: given an array, Keras maps over it in parallel, and under op
    determinism TensorFlow rewrites that map into one its C++ side knows without an attribute the Python side
    wrote, and logs an error line for every call ("NodeDef mentions attribute use_unbounded_threadpool").
    The batches, and so the outputs, are the same.
    """
    import tensorflow as tf

    batches = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    return np.asarray(model.predict(batches, verbose=0), dtype=np.float64)
