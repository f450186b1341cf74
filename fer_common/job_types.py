"""What one job is and what it gives back: the values a worker receives and returns. They sit below the
numbers layer, which runs jobs (`execution.run_job`), and the runs layer, which plans and stores them
(`jobs`), so that neither imports the other; as plain containers they change no measurement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from fer_common.contract import Replication, TrainedModel
    from fer_common.train import RuntimeOptions


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs to run one job; it travels to the worker, so it stays small and picklable."""

    replication: Replication
    config: dict
    settings: tuple[str, ...]
    seed: int
    options: RuntimeOptions
    data_checksum: str  # the data the run was started with: a worker that loads other data refuses to run
    code_hash: str  # the numbers-layer code of the run (the record's): part of every checkpoint key
    allow_modified_data: bool = False  # load data that fails its SHA256SUMS (the run said so, the record says so)

    @property
    def label(self) -> str:
        return f"setting={'+'.join(self.settings)} seed={self.seed}"


@dataclass
class JobResult:
    """What a worker gives back for one setting of a job."""

    setting: str
    seed: int
    result: dict  # the per-seed entry of the record (`execution.evaluate_outcome` plus wall_time_s)
    y_true: np.ndarray
    probabilities: np.ndarray
    model_file: bytes | None = None  # the trained model as a .keras file, when the replication offers one
    model: TrainedModel | None = None  # how it was trained and selected (its `model` field is None here)
    earlier_wall_time_s: float = 0.0  # what attempts stopped before it (resumed from their checkpoint) took
    cross_dataset: dict | None = None  # its model's cells on the other datasets (`cross_dataset.score_trained_model`)
