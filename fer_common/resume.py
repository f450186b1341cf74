"""Training that survives interruption: resume from the last finished epoch and end where an uninterrupted
run would have ended, to the last bit.

A run that takes hours on a CPU will be killed now and then. `fit_resumable` saves a checkpoint after
every epoch (model weights, optimizer state, history, epoch count and the state of resumable callbacks)
into `<cache>/checkpoints/<run key>/`, and on start continues from it when the run key matches.

Identical continuation needs every source of randomness to be a function of (seed, epoch), never of
state hidden in an iterator that a killed process takes with it:
- the shuffle order of each epoch comes from `epoch_order(count, seed, epoch)` (see `epoch_dataset`),
  and each epoch's dataset is built afresh by the caller's `make_train_dataset(epoch)`;
- at the start of each epoch the global generators (Python, NumPy, TensorFlow, Keras) are reseeded from
  (seed, epoch), and so is every `SeedGenerator` of the model (dropout masks and the like).

`model.fit` runs one epoch per call, so Keras keeps no iterator across epochs. Callbacks passed to
`fit_resumable` see on_train_begin once, then on_epoch_begin / on_epoch_end per epoch, then on_train_end;
batch-level hooks are not called. A callback that keeps state across epochs (e.g. the best weights so
far) implements `resume_state()` and `restore_resume_state(info, arrays)` to be checkpointed with the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from fer_common import paths
from fer_common.atomic import write_atomically
from fer_common.errors import FerError
from fer_common.metadata import canonical_json
from fer_common.train import RuntimeOptions, apply_runtime_options, numeric_identity

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
STATE_FILE = "state.npz"
SEED_STATE_NAME = "seed_generator_state"  # the variable every keras.random.SeedGenerator holds
_MAX_SEED = 2**31 - 1  # np.random.seed and tf.random.set_seed both accept this range


class CheckpointError(FerError):
    """A checkpoint exists for this run key but cannot be used (damaged, or made by another model)."""


class EpochCallback:
    """The callback protocol `fit_resumable` calls, with nothing done: subclasses override what they need."""

    model = None

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, logs=None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        pass

    def on_train_end(self, logs=None) -> None:
        pass


@runtime_checkable
class ResumableCallback(Protocol):
    """A callback whose state across epochs must survive a resume."""

    def resume_state(self) -> tuple[dict, list[np.ndarray]]:
        """(JSON-able info, arrays) describing the callback's state after the last finished epoch."""
        ...

    def restore_resume_state(self, info: dict, arrays: list[np.ndarray]) -> None: ...


def checkpoints_dir() -> Path:
    """Where run checkpoints live: `<cache>/checkpoints` (see `paths.cache_dir`)."""
    return paths.cache_dir() / "checkpoints"


def make_run_key(
    replication_id: str, setting: str, seed: int, config: Mapping, options: RuntimeOptions, **identity: Any
) -> str:
    """`<replication>-<setting>-seed<seed>-<hash>`: the hash covers the config and any extra identity
    (a dataset checksum, a code hash), so a changed run never continues another run's checkpoint.

    The runtime switches that change the numbers (bf16, XLA, no determinism; see
    `train.numeric_identity`) are part of it too, so a bf16 run never continues a float32 checkpoint; a
    default float32 run adds nothing, so its keys are the ones earlier versions made.
    """
    runtime = numeric_identity(options)
    if runtime:
        identity = {**identity, "runtime": runtime}
    digest = hashlib.sha256(canonical_json({"config": config, **identity}).encode("utf-8")).hexdigest()[:16]
    key = f"{replication_id}-{setting}-seed{seed}-{digest}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key)  # one safe folder name


def checkpoint_folder(run_key: str, checkpoint_dir: Path | str | None = None) -> Path:
    """The folder of one run's checkpoint: `<checkpoint_dir or checkpoints_dir()>/<run_key>`."""
    return (Path(checkpoint_dir) if checkpoint_dir is not None else checkpoints_dir()) / run_key


def remove_checkpoint(run_key: str, checkpoint_dir: Path | str | None = None) -> None:
    """Delete a run's checkpoint folder and everything in it (nothing happens if there is none)."""
    shutil.rmtree(checkpoint_folder(run_key, checkpoint_dir), ignore_errors=True)


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for one epoch of one run, well mixed so that (seed, epoch + 1) and (seed + 1, epoch) differ."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]) % _MAX_SEED


def epoch_order(count: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffle order of one epoch: a permutation that depends on (seed, epoch) alone."""
    return np.random.default_rng([seed, epoch]).permutation(count)


def epoch_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    augment=None,
):
    """One epoch of shuffled (image, one-hot) batches, in the order `epoch_order` gives."""
    from fer_common.train import make_dataset

    order = epoch_order(len(images), seed, epoch)
    return make_dataset(
        images[order],
        labels[order],
        num_classes,
        batch_size,
        shuffle=False,
        seed=epoch_seed(seed, epoch),
        augment=augment,
    )


def reseed_for_epoch(model, seed: int, epoch: int) -> None:
    """Make every random draw of this epoch a function of (seed, epoch): global generators and the
    model's own SeedGenerators (dropout), whose state would otherwise carry over from earlier epochs."""
    import keras

    base = epoch_seed(seed, epoch)
    keras.utils.set_random_seed(base)
    for index, variable in enumerate(_seed_states(model)):
        variable.assign(np.array([epoch_seed(base, index), 0], dtype=variable.dtype))


def _seed_states(model) -> list:
    return [variable for variable in model.variables if variable.name == SEED_STATE_NAME]


def fit_resumable(
    model,
    make_train_dataset: Callable[[int], Any],
    validation_dataset=None,
    *,
    epochs: int,
    run_key: str,
    seed: int,
    options: RuntimeOptions,
    checkpoint_dir: Path | str | None = None,
    callbacks: Iterable = (),
    verbose: int = 2,
    keep_checkpoint: bool = False,
) -> dict[str, list[float]]:
    """Train a compiled model for `epochs` epochs, resuming from the checkpoint of `run_key` if there is one.

    make_train_dataset(epoch) builds the training data of epoch `epoch` (0-based); it must depend on
    (seed, epoch) only, e.g. through `epoch_dataset`. Returns the history of all epochs (resumed ones
    included), as plain floats. The checkpoint is deleted after a successful finish unless
    keep_checkpoint (a caller that still has to save what it derives from the run deletes it later with
    `remove_checkpoint`).
    """
    apply_runtime_options(model, options)  # the run's XLA and steps-per-execution switches (see train.RuntimeOptions)
    folder = checkpoint_folder(run_key, checkpoint_dir)
    callbacks = list(callbacks)
    for callback in callbacks:
        callback.set_model(model)
    state = load_state(folder, run_key, seed)
    history: dict[str, list[float]] = {}
    start, stopped = 0, False
    if state is not None:
        start, history, stopped = _restore(state, model, callbacks)
        if verbose:
            log.info("[resume] %s: continuing after epoch %d/%d", run_key, start, epochs)
    for callback in callbacks:
        callback.on_train_begin()
    for epoch in range(start, epochs):
        if stopped:
            break
        started = time.perf_counter()
        reseed_for_epoch(model, seed, epoch)
        for callback in callbacks:
            callback.on_epoch_begin(epoch)
        fitted = model.fit(
            make_train_dataset(epoch),
            validation_data=validation_dataset,
            initial_epoch=epoch,
            epochs=epoch + 1,
            shuffle=False,  # the order is the dataset's own, fixed by (seed, epoch)
            verbose=0,
        )
        logs = {key: float(values[-1]) for key, values in fitted.history.items()}
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)  # callbacks may add entries to logs, as in Keras
        for key, value in logs.items():
            history.setdefault(key, []).append(float(value))
        stopped = bool(getattr(model, "stop_training", False))
        save_state(
            folder,
            run_key=run_key,
            seed=seed,
            epochs_done=epoch + 1,
            stopped=stopped,
            history=history,
            model=model,
            callbacks=callbacks,
        )
        if verbose:
            _log_epoch(epoch, epochs, logs, time.perf_counter() - started, stopped)
    for callback in callbacks:
        callback.on_train_end()
    if not keep_checkpoint:
        shutil.rmtree(folder, ignore_errors=True)
    return history


def _log_epoch(epoch: int, epochs: int, logs: Mapping[str, float], seconds: float, stopped: bool) -> None:
    numbers = " ".join(f"{key} {value:.4f}" for key, value in logs.items())
    left = epochs - epoch - 1
    # Long runs (hours on a CPU) are easier to plan with an estimate; it assumes epochs like this one.
    estimate = f", about {_duration(left * seconds)} left" if left and not stopped else ""
    log.info("    epoch %d/%d: %s (%.0fs%s)", epoch + 1, epochs, numbers, seconds, estimate)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def save_state(
    folder: Path,
    *,
    run_key: str,
    seed: int,
    epochs_done: int,
    history: Mapping[str, Sequence[float]],
    model,
    callbacks: Sequence = (),
    stopped: bool = False,
) -> Path:
    """Write the run's state after `epochs_done` epochs into `folder/state.npz`, atomically."""
    arrays: dict[str, np.ndarray] = {}
    for index, weight in enumerate(model.get_weights()):
        arrays[f"model_{index}"] = np.asarray(weight)
    optimizer_variables = model.optimizer.variables
    for index, variable in enumerate(optimizer_variables):
        arrays[f"optimizer_{index}"] = np.asarray(variable.numpy())
    callback_info = {}
    for position, callback in enumerate(callbacks):
        if isinstance(callback, ResumableCallback):
            info, callback_arrays = callback.resume_state()
            callback_info[str(position)] = {
                "class": type(callback).__name__,
                "info": info,
                "arrays": len(callback_arrays),
            }
            for index, array in enumerate(callback_arrays):
                arrays[f"callback_{position}_{index}"] = np.asarray(array)
    info = {
        "format": CHECKPOINT_FORMAT,
        "run_key": run_key,
        "seed": seed,
        "epochs_done": epochs_done,
        "stopped": stopped,
        "history": {key: [float(value) for value in values] for key, values in history.items()},
        "model_weights": len(model.get_weights()),
        "optimizer_variables": len(optimizer_variables),
        "callbacks": callback_info,
    }
    path = folder / STATE_FILE
    write_npz_atomically(path, arrays, info)
    return path


def load_state(folder: Path, run_key: str, seed: int) -> tuple[dict, dict[str, np.ndarray]] | None:
    """(info, arrays) of the run's checkpoint, or None when there is none."""
    path = folder / STATE_FILE
    if not path.is_file():
        return None
    loaded = read_npz(path)
    info, arrays = loaded
    if info.get("format") != CHECKPOINT_FORMAT or info.get("run_key") != run_key or info.get("seed") != seed:
        raise CheckpointError(
            f"{path} belongs to another run (run key {info.get('run_key')!r}, seed {info.get('seed')!r}, "
            f"format {info.get('format')!r}); delete the folder to start afresh."
        )
    return loaded


def _restore(state: tuple[dict, dict[str, np.ndarray]], model, callbacks: Sequence) -> tuple[int, dict, bool]:
    info, arrays = state
    where = f"checkpoint {info['run_key']}"
    weights = [arrays[f"model_{index}"] for index in range(info["model_weights"])]
    try:
        model.set_weights(weights)
    except ValueError as error:
        raise CheckpointError(f"{where}: its weights do not fit this model ({error})") from error
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    variables = optimizer.variables
    if len(variables) != info["optimizer_variables"]:
        raise CheckpointError(
            f"{where}: {info['optimizer_variables']} optimizer variables saved, this optimizer has {len(variables)}"
        )
    for index, variable in enumerate(variables):
        saved = arrays[f"optimizer_{index}"]
        if tuple(saved.shape) != tuple(variable.shape):
            raise CheckpointError(
                f"{where}: optimizer variable {variable.path} has shape {variable.shape}, saved {saved.shape}"
            )
        variable.assign(saved)
    for position, callback in enumerate(callbacks):
        saved_callback = info["callbacks"].get(str(position))
        if saved_callback is None or not isinstance(callback, ResumableCallback):
            continue
        if saved_callback["class"] != type(callback).__name__:
            raise CheckpointError(
                f"{where}: callback {position} was a {saved_callback['class']}, now a {type(callback).__name__}"
            )
        callback_arrays = [arrays[f"callback_{position}_{index}"] for index in range(saved_callback["arrays"])]
        callback.restore_resume_state(saved_callback["info"], callback_arrays)
    return int(info["epochs_done"]), {key: list(values) for key, values in info["history"].items()}, info["stopped"]


def write_npz_atomically(path: Path, arrays: Mapping[str, np.ndarray], info: Mapping | None = None) -> None:
    """Write arrays (and JSON-able `info`) to an .npz under a temporary name, then rename it into place,
    so a reader (or a resumed run) never sees half a file."""
    content = dict(arrays)
    content["__info__"] = np.array(json.dumps(info or {}, sort_keys=True))
    write_atomically(path, lambda stream: np.savez(stream, **content))


def read_npz(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(info, arrays) of a file `write_npz_atomically` wrote; CheckpointError if it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as loaded:
            arrays = {key: loaded[key] for key in loaded.files}
        info = json.loads(str(arrays.pop("__info__")))
    except (OSError, ValueError, KeyError) as error:
        raise CheckpointError(
            f"{path} cannot be read ({type(error).__name__}: {error}); delete it to start afresh."
        ) from error
    return info, arrays
