"""Neamtiu's per-epoch evaluation: scores on PublicTest and PrivateTest after every epoch, and the clean
protocol's epoch choice, made from PublicTest alone."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fer_common.metrics import categorical_cross_entropy
from fer_common.resume import EpochCallback
from fer_common.train import predict_probabilities

EVAL_BATCH_SIZE = 512


def select_epoch(public_accuracies: Sequence[float]) -> int:
    """0-based index of the epoch the clean protocol keeps: the first with the highest PublicTest accuracy.

    It is given PublicTest numbers only, so PrivateTest cannot influence the choice.
    """
    if len(public_accuracies) == 0:
        raise ValueError("no epochs to select from")
    return int(np.argmax(np.asarray(public_accuracies, dtype=np.float64)))


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(probabilities.argmax(axis=1) == labels))


def epoch_scores(public: np.ndarray, public_labels: np.ndarray, private: np.ndarray, private_labels: np.ndarray):
    """One epoch's losses and accuracies on the test folder (`val_`, as the source logs it), PublicTest and
    PrivateTest, from the probabilities of each."""
    folder, folder_labels = np.concatenate([public, private]), np.concatenate([public_labels, private_labels])
    return {
        "val_loss": categorical_cross_entropy(folder_labels, folder),
        "val_accuracy": accuracy(folder, folder_labels),
        "public_loss": categorical_cross_entropy(public_labels, public),
        "public_accuracy": accuracy(public, public_labels),
        "private_loss": categorical_cross_entropy(private_labels, private),
        "private_accuracy": accuracy(private, private_labels),
    }


class ProtocolEvaluator(EpochCallback):
    """A fit_resumable callback: scores every epoch on PublicTest and PrivateTest (one prediction pass each,
    which also gives the source's test-folder validation numbers) and keeps the weights of the epoch
    `select_epoch` picks from the PublicTest accuracies. Its state is checkpointed with the run."""

    def __init__(self, public_images, public_labels, private_images, private_labels) -> None:
        self.public_images, self.public_labels = public_images, public_labels
        self.private_images, self.private_labels = private_images, private_labels
        self.public_accuracies: list[float] = []
        self.selected_epoch = 0  # 1-based; 0 = none yet
        self.selected_weights: list[np.ndarray] = []

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        public = predict_probabilities(self.model, self.public_images, EVAL_BATCH_SIZE)
        private = predict_probabilities(self.model, self.private_images, EVAL_BATCH_SIZE)
        scores = epoch_scores(public, self.public_labels, private, self.private_labels)
        logs.update(scores)
        self.public_accuracies.append(scores["public_accuracy"])
        if select_epoch(self.public_accuracies) == len(self.public_accuracies) - 1:
            self.selected_epoch = epoch + 1
            self.selected_weights = self.model.get_weights()

    def resume_state(self) -> tuple[dict, list[np.ndarray]]:
        info = {"public_accuracies": self.public_accuracies, "selected_epoch": self.selected_epoch}
        return info, self.selected_weights

    def restore_resume_state(self, info: dict, arrays: list[np.ndarray]) -> None:
        self.public_accuracies = [float(value) for value in info["public_accuracies"]]
        self.selected_epoch = int(info["selected_epoch"])
        self.selected_weights = list(arrays)
