"""EarlyStopping, ReduceLROnPlateau and the epoch timer across a resume: a run killed mid-way and resumed
lowers its learning rate, stops and restores the same epoch's weights as an uninterrupted run."""

from __future__ import annotations

import numpy as np
import pytest

from fer_common import resume
from fer_common.resumable_callbacks import EpochTimes, ResumableEarlyStopping, ResumablePlateau
from fer_common.train import RuntimeOptions, configure_runtime

from .test_resume import NUM_CLASSES, SEED, KillAtEpoch, assert_same_weights

EPOCHS = 12


@pytest.fixture(scope="module")
def data():
    """Noisy labels: the validation loss soon stops improving, so both callbacks act within a few epochs."""
    generator = np.random.default_rng(1)
    labels = generator.integers(0, NUM_CLASSES, 160)
    images = generator.random((160, 8, 8, 1), dtype=np.float32)
    images[labels == 0, :2] += 0.5
    return images, labels


def build_model(init_seed: int):
    import keras
    from keras import layers

    configure_runtime(init_seed)
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            layers.Flatten(),
            layers.Dense(32, activation="relu"),
            layers.Dropout(0.2),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def callbacks():
    return [EpochTimes(), ResumablePlateau(0.5, 1, 0.001), ResumableEarlyStopping(patience=3)]


def train(model, data, checkpoint_dir, run_callbacks):
    images, labels = data
    validation = resume.epoch_dataset(images[:48], labels[:48], NUM_CLASSES, 48, seed=0, epoch=0)
    return resume.fit_resumable(
        model,
        lambda epoch: resume.epoch_dataset(images[48:], labels[48:], NUM_CLASSES, 16, seed=SEED, epoch=epoch),
        validation,
        epochs=EPOCHS,
        run_key="callbacks-run",
        seed=SEED,
        options=RuntimeOptions(),
        checkpoint_dir=checkpoint_dir,
        callbacks=run_callbacks,
        verbose=0,
    )


def test_a_killed_run_stops_lowers_the_rate_and_restores_as_an_uninterrupted_one(tmp_path, data):
    model = build_model(SEED)
    timer, plateau, stopping = whole = callbacks()
    uninterrupted = train(model, data, tmp_path / "a", whole)
    epochs_run = len(uninterrupted["loss"])
    assert 4 < epochs_run < EPOCHS, "the fixture must make EarlyStopping end the run early"
    assert len(set(uninterrupted["learning_rate"])) > 1, "the fixture must make the plateau lower the rate"
    best_epoch = int(np.argmin(uninterrupted["val_loss"])) + 1
    assert stopping.best_epoch == best_epoch < epochs_run
    assert len(timer.seconds) == epochs_run

    kill_at = best_epoch  # after the best epoch: its weights must come back from the checkpoint
    with pytest.raises(KeyboardInterrupt):
        train(build_model(SEED), data, tmp_path / "b", [*callbacks(), KillAtEpoch(kill_at)])
    resumed_model = build_model(SEED + 100)
    resumed_timer, _, resumed_stopping = again = callbacks()
    resumed = train(resumed_model, data, tmp_path / "b", again)

    assert resumed == uninterrupted
    assert resumed_stopping.best_epoch == best_epoch
    assert_same_weights(resumed_model.get_weights(), model.get_weights())
    assert float(np.asarray(resumed_model.optimizer.learning_rate)) == float(np.asarray(model.optimizer.learning_rate))
    assert len(resumed_timer.seconds) == epochs_run
