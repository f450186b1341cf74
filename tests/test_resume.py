"""Resumable training: a run killed after epoch 2 and resumed ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from fer_common import resume
from fer_common.train import RuntimeOptions, configure_runtime

NUM_CLASSES = 3
EPOCHS = 3
SEED = 7
DEFAULTS = RuntimeOptions()


class KillAtEpoch:
    """Stands in for a killed process: raises KeyboardInterrupt when epoch `epoch` (0-based) begins."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def set_model(self, model) -> None:
        pass

    def on_train_begin(self, logs=None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        pass

    def on_train_end(self, logs=None) -> None:
        pass


class BestTrainingLoss(resume.EpochCallback):
    """A resumable callback with state across epochs: the lowest training loss and the weights it had."""

    def __init__(self) -> None:
        self.best_loss = np.inf
        self.best_weights: list[np.ndarray] = []

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if logs["loss"] < self.best_loss:
            self.best_loss = logs["loss"]
            self.best_weights = self.model.get_weights()
        logs["best_loss"] = self.best_loss

    def resume_state(self):
        return {"best_loss": self.best_loss}, self.best_weights

    def restore_resume_state(self, info, arrays) -> None:
        self.best_loss, self.best_weights = info["best_loss"], list(arrays)


@pytest.fixture(scope="module")
def data():
    generator = np.random.default_rng(0)
    labels = generator.integers(0, NUM_CLASSES, 192)
    images = generator.random((192, 16, 16, 1), dtype=np.float32)
    images[..., :4, :] += labels[:, None, None, None] / NUM_CLASSES  # something learnable
    return images, labels


def build_model(init_seed: int):
    """A small model with every kind of state a resume must carry: Adam moments, batch-norm statistics,
    a decaying learning rate and dropout."""
    import keras
    from keras import layers

    configure_runtime(init_seed)
    model = keras.Sequential(
        [
            keras.Input(shape=(16, 16, 1)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.BatchNormalization(),
            layers.MaxPooling2D(2),
            layers.Dropout(0.3),
            layers.Flatten(),
            layers.Dense(16, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )
    schedule = keras.optimizers.schedules.InverseTimeDecay(1e-2, decay_steps=1, decay_rate=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def train(model, data, checkpoint_dir, callbacks=(), keep_checkpoint=False):
    images, labels = data
    validation = resume.epoch_dataset(images[:64], labels[:64], NUM_CLASSES, 64, seed=0, epoch=0)
    return resume.fit_resumable(
        model,
        lambda epoch: resume.epoch_dataset(images, labels, NUM_CLASSES, 32, seed=SEED, epoch=epoch),
        validation,
        epochs=EPOCHS,
        run_key="test-run",
        seed=SEED,
        options=RuntimeOptions(),
        checkpoint_dir=checkpoint_dir,
        callbacks=callbacks,
        verbose=0,
        keep_checkpoint=keep_checkpoint,
    )


def assert_same_weights(first, second) -> None:
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_killed_run_resumes_to_the_same_weights_and_history(tmp_path, data):
    uninterrupted_model = build_model(init_seed=SEED)
    uninterrupted_tracker = BestTrainingLoss()
    uninterrupted = train(uninterrupted_model, data, tmp_path / "a", [uninterrupted_tracker])
    assert len(uninterrupted["loss"]) == EPOCHS and "best_loss" in uninterrupted
    assert not (tmp_path / "a" / "test-run").exists(), "checkpoint left behind after a successful finish"

    killed_model = build_model(init_seed=SEED)
    with pytest.raises(KeyboardInterrupt):
        train(killed_model, data, tmp_path / "b", [BestTrainingLoss(), KillAtEpoch(2)])
    folder = tmp_path / "b" / "test-run"
    info, _ = resume.read_npz(folder / resume.STATE_FILE)
    assert info["epochs_done"] == 2
    assert [p.name for p in folder.iterdir()] == [resume.STATE_FILE], "temporary files left behind"

    # A fresh process: other initial weights, other global seeds; everything must come from the checkpoint.
    resumed_model = build_model(init_seed=SEED + 100)
    resumed_tracker = BestTrainingLoss()
    epochs_run = []
    recorder = KillAtEpoch(-1)
    recorder.on_epoch_begin = lambda epoch, logs=None: epochs_run.append(epoch)
    resumed = train(resumed_model, data, tmp_path / "b", [resumed_tracker, recorder])

    assert epochs_run == [2], "the resumed run must train only the missing epoch"
    assert resumed == uninterrupted
    assert_same_weights(resumed_model.get_weights(), uninterrupted_model.get_weights())
    assert_same_weights(resumed_model.optimizer.variables, uninterrupted_model.optimizer.variables)
    assert resumed_tracker.best_loss == uninterrupted_tracker.best_loss
    assert_same_weights(resumed_tracker.best_weights, uninterrupted_tracker.best_weights)
    assert not folder.exists()


def test_dropout_masks_depend_on_seed_and_epoch_only():
    model = build_model(init_seed=0)
    inputs = np.ones((4, 16, 16, 1), dtype=np.float32)
    resume.reseed_for_epoch(model, seed=3, epoch=5)
    first = np.asarray(model(inputs, training=True))
    model(inputs, training=True)  # advances the dropout generators
    resume.reseed_for_epoch(model, seed=3, epoch=5)
    np.testing.assert_array_equal(np.asarray(model(inputs, training=True)), first)
    resume.reseed_for_epoch(model, seed=3, epoch=6)
    assert not np.array_equal(np.asarray(model(inputs, training=True)), first)


def test_epoch_order_is_a_function_of_seed_and_epoch():
    np.testing.assert_array_equal(resume.epoch_order(50, 1, 2), resume.epoch_order(50, 1, 2))
    assert sorted(resume.epoch_order(50, 1, 2)) == list(range(50))
    assert not np.array_equal(resume.epoch_order(50, 1, 2), resume.epoch_order(50, 1, 3))
    assert not np.array_equal(resume.epoch_order(50, 1, 2), resume.epoch_order(50, 2, 1))


def test_run_key_changes_with_the_config_and_is_a_folder_name():
    key = resume.make_run_key("neamtiu", "training", 0, {"epochs": 50}, DEFAULTS, data="abc")
    assert key.startswith("neamtiu-training-seed0-") and "/" not in key
    assert key == resume.make_run_key("neamtiu", "training", 0, {"epochs": 50}, DEFAULTS, data="abc")
    assert key != resume.make_run_key("neamtiu", "training", 0, {"epochs": 3}, DEFAULTS, data="abc")
    assert key != resume.make_run_key("neamtiu", "training", 0, {"epochs": 50}, DEFAULTS, data="xyz")
    assert key != resume.make_run_key("neamtiu", "training", 1, {"epochs": 50}, DEFAULTS, data="abc")


def test_a_checkpoint_of_another_model_is_refused(tmp_path, data):
    model = build_model(init_seed=0)
    with pytest.raises(KeyboardInterrupt):
        train(model, data, tmp_path, [KillAtEpoch(1)])
    import keras

    other = keras.Sequential([keras.Input(shape=(16, 16, 1)), keras.layers.Flatten(), keras.layers.Dense(NUM_CLASSES)])
    other.compile(optimizer="adam", loss="categorical_crossentropy")
    with pytest.raises(resume.CheckpointError, match="do not fit this model"):
        train(other, data, tmp_path)


def test_each_epoch_line_estimates_the_time_left(caplog):
    caplog.set_level(logging.INFO)
    resume._log_epoch(1, 50, {"loss": 1.5}, 214.0, stopped=False)
    resume._log_epoch(47, 50, {"loss": 1.0}, 30.0, stopped=False)
    resume._log_epoch(49, 50, {"loss": 1.0}, 30.0, stopped=False)
    resume._log_epoch(5, 50, {"loss": 1.0}, 30.0, stopped=True)
    lines = caplog.messages
    assert lines[0] == "    epoch 2/50: loss 1.5000 (214s, about 2h51m left)"  # 48 x 214 s = 171 min
    assert lines[1].endswith("(30s, about 60s left)")
    assert lines[2].endswith("(30s)") and lines[3].endswith("(30s)")  # the last epoch; an early stop
