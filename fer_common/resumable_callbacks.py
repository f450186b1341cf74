"""Keras' EarlyStopping and ReduceLROnPlateau, and an epoch timer, whose state survives a resume.

`fit_resumable` restores a checkpoint, then calls on_train_begin, where Keras resets both callbacks. The
saved state is put back after that reset, so a resumed run lowers its learning rate, stops and restores the
best weights exactly where an uninterrupted run would. Keras itself does the deciding: these classes only
carry its counters across processes.
"""

from __future__ import annotations

import time

import numpy as np

from fer_common.resume import EpochCallback


class _KerasState(EpochCallback):
    """Forwards the epoch protocol to a Keras callback and checkpoints the attributes named in `state`."""

    state: tuple[str, ...] = ()

    def __init__(self, callback) -> None:
        self.callback = callback
        self._restored: tuple[dict, list[np.ndarray]] | None = None

    def set_model(self, model) -> None:
        super().set_model(model)
        self.callback.set_model(model)

    def on_train_begin(self, logs=None) -> None:
        self.callback.on_train_begin(logs)
        if self._restored is not None:
            self._apply(*self._restored)

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.callback.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.callback.on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None) -> None:
        self.callback.on_train_end(logs)

    def resume_state(self) -> tuple[dict, list[np.ndarray]]:
        return {name: _plain(getattr(self.callback, name)) for name in self.state}, []

    def restore_resume_state(self, info: dict, arrays: list[np.ndarray]) -> None:
        self._restored = (info, list(arrays))

    def _apply(self, info: dict, arrays: list[np.ndarray]) -> None:
        for name in self.state:
            setattr(self.callback, name, info[name])


class ResumableEarlyStopping(_KerasState):
    """EarlyStopping on validation loss; with `restore_best`, the best epoch's weights are kept in the checkpoint."""

    state = ("wait", "stopped_epoch", "best", "best_epoch")

    def __init__(self, patience: int, restore_best: bool = True) -> None:
        import keras

        super().__init__(
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=restore_best)
        )

    @property
    def best_epoch(self) -> int:
        """1-based epoch of the lowest validation loss so far (0 before the first epoch)."""
        return int(self.callback.best_epoch) + 1 if self.callback.best is not None else 0

    def resume_state(self) -> tuple[dict, list[np.ndarray]]:
        info, _ = super().resume_state()
        weights = self.callback.best_weights
        info["has_best_weights"] = weights is not None
        return info, [np.asarray(weight) for weight in weights or []]

    def _apply(self, info: dict, arrays: list[np.ndarray]) -> None:
        super()._apply(info, arrays)
        self.callback.best_weights = list(arrays) if info["has_best_weights"] else None


class ResumablePlateau(_KerasState):
    """ReduceLROnPlateau on validation loss; the learning rate it set is checkpointed with its counters."""

    state = ("best", "wait", "cooldown_counter")

    def __init__(self, factor: float, patience: int, min_learning_rate: float) -> None:
        import keras

        super().__init__(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=factor, patience=patience, min_lr=min_learning_rate
            )
        )

    def resume_state(self) -> tuple[dict, list[np.ndarray]]:
        info, arrays = super().resume_state()
        info["learning_rate"] = float(np.asarray(self.model.optimizer.learning_rate))
        return info, arrays

    def _apply(self, info: dict, arrays: list[np.ndarray]) -> None:
        super()._apply(info, arrays)
        self.model.optimizer.learning_rate = info["learning_rate"]


class EpochTimes(EpochCallback):
    """Wall seconds of every epoch, resumed ones included (a resumed run's own clock would miss them)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.seconds.append(time.perf_counter() - self._started)

    def resume_state(self) -> tuple[dict, list[np.ndarray]]:
        return {"seconds": list(self.seconds)}, []

    def restore_resume_state(self, info: dict, arrays: list[np.ndarray]) -> None:
        self.seconds = list(info["seconds"])


def _plain(value):
    """A JSON-able copy of a Keras counter (NumPy scalars become Python numbers)."""
    return value.item() if isinstance(value, np.generic) else value
