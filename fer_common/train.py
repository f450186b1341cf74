"""Training plumbing shared by every replication: determinism, precision, input pipelines, fitting."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class RuntimeOptions:
    """Switches that change speed, never the science; each can be turned off from the command line."""

    precision: str = (
        "float32"  # "float32" | "mixed_bfloat16" | "auto" (bf16 where the CPU has AMX/AVX512-BF16)
    )
    jit_compile: bool = False
    threads: int = 0  # 0 = let TensorFlow decide
    deterministic: bool = True


def cpu_supports_bfloat16() -> bool:
    """True where the CPU has native bf16 matrix units (AMX-bf16 or AVX512-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: str) -> str:
    if precision == "auto":
        return "mixed_bfloat16" if cpu_supports_bfloat16() else "float32"
    if precision not in ("float32", "mixed_bfloat16"):
        raise ValueError(f"precision must be float32, mixed_bfloat16 or auto, not {precision!r}")
    return precision


def configure_runtime(seed: int, options: RuntimeOptions = RuntimeOptions()) -> str:
    """Seed every generator and apply the runtime options; returns the precision policy in force.

    Must run before a model is built: the dtype policy is read at layer construction.
    """
    import keras
    import tensorflow as tf

    if options.threads:
        # Thread pools can only be sized before TensorFlow runs its first op.
        try:
            tf.config.threading.set_intra_op_parallelism_threads(options.threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, options.threads))
        except RuntimeError:
            pass
    if options.deterministic:
        os.environ["TF_DETERMINISTIC_OPS"] = "1"
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)
    policy = resolve_precision(options.precision)
    keras.mixed_precision.set_global_policy(policy)
    return policy


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
    extra: dict = field(default_factory=dict)


def fit(
    model,
    train_dataset,
    validation_dataset,
    *,
    epochs: int,
    early_stopping_patience: int | None = None,
    restore_best: bool = True,
    verbose: int = 2,
) -> FitResult:
    """model.fit with the papers' callbacks.

    EarlyStopping(restore_best_weights=True) on validation loss stands in for Keras'
    ModelCheckpoint(save_best_only=True) + reload: same weights, no file round trip.
    """
    import keras

    callbacks = []
    if early_stopping_patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=early_stopping_patience, restore_best_weights=restore_best
            )
        )
    history = model.fit(
        train_dataset, validation_data=validation_dataset, epochs=epochs, callbacks=callbacks, verbose=verbose
    ).history
    history = {key: [float(v) for v in values] for key, values in history.items()}
    val_loss = history.get("val_loss")
    epochs_run = len(next(iter(history.values()))) if history else 0
    best_epoch = int(np.argmin(val_loss)) + 1 if (val_loss and restore_best and callbacks) else epochs_run
    return FitResult(history=history, best_epoch=best_epoch, epochs_run=epochs_run)


def predict_probabilities(model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Softmax outputs as float64 (mixed precision models return bf16/float32)."""
    return np.asarray(model.predict(images, batch_size=batch_size, verbose=0), dtype=np.float64)
