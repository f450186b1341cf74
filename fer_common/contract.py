"""The contract between the runner and a replication: what a replication prepares, what one job returns.

A replication is its `metadata.yaml` (paper, protocol, reported figures, assumptions) plus one module with a
`Replication` subclass that holds only its paper's own work:

    class Chen(Replication):
        metadata_file = Path(__file__).with_name("metadata.yaml")

        def prepare(self, config) -> Prepared: ...                       # load its data
        def run_setting(self, prepared, setting, seed, config, runtime) -> SeedOutcome: ...

Everything else (seeding, metrics, bands, provenance, records, figures, model bundles) is the runner's.
A replication module imports this contract and library helpers, never the runner; the runner finds
replications through `fer_common.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from fer_common.bundles import Preprocessing
from fer_common.train import RuntimeOptions

DataKind = Literal["real", "proxy"]


@dataclass(frozen=True)
class Prepared:
    """What `prepare` hands to every job: the data, its classes and where it came from."""

    data: Any  # the replication's own typed value (arrays, splits): only its own jobs read it
    class_names: list[str]
    checksum: str
    data_kind: DataKind
    description: str = ""


@dataclass(frozen=True)
class TrainedModel:
    """A job's trained model, offered to `predict` / `demo` as a bundle.

    selection_score: how the runner picks the one seed it publishes as `<id>-<setting>`. It must come from
    data the setting's reported numbers are not measured on (validation data), so that publishing the
    best seed is not a choice made on the test set; None when the setting has no such data.
    """

    model: Any  # a Keras model
    preprocessing: Preprocessing
    selection_score: float | None
    selected_on: str  # what selection_score measures, e.g. "PublicTest accuracy"
    keep_every_seed: bool = False  # also publish `<id>-<setting>-seed<N>` for every seed


@dataclass
class SeedOutcome:
    """One setting of one job: test labels and probabilities, curves, and the paper's own numbers.

    metrics: scalar metrics beside the standard ones (accuracy, F1, recall... come from the probabilities);
    denominators: the number of test cases behind each proportion in `metrics`, so its row gets a CI;
    notes: text that qualifies every row of this setting (e.g. "backbone from random weights");
    details: JSON-able detail kept in the record (folds, selected epoch, per-group counts...).
    """

    y_true: np.ndarray
    probabilities: np.ndarray
    scored_set: str
    history: dict[str, list[float]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    denominators: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    model: TrainedModel | None = None


class Replication(ABC):
    """One paper's own work. Subclasses set `metadata_file` and implement `prepare` and `run_setting` (or
    `run_job`, for settings that share work); `finalize` is optional."""

    metadata_file: ClassVar[Path]
    # Settings that share work: the runner runs a seed of the whole group as one job (one process), so e.g.
    # two protocols read from one training run without two workers training it at once.
    job_groups: ClassVar[tuple[tuple[str, ...], ...]] = ()

    @property
    def id(self) -> str:
        return self.metadata_file.parent.name

    # Replications hold no state: two instances of one class are the same replication (a worker's cache key).
    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash((type(self).__module__, type(self).__qualname__))

    @abstractmethod
    def prepare(self, config: Mapping[str, Any]) -> Prepared:
        """Load the data the jobs need; raise `DatasetError` (saying what to supply) when it is missing."""
        raise NotImplementedError

    def run_setting(
        self, prepared: Prepared, setting: str, seed: int, config: Mapping[str, Any], runtime: RuntimeOptions
    ) -> SeedOutcome:
        """Train and score one setting for one seed. The runner has seeded everything before the call;
        `runtime` (the speed switches) goes on to `train.fit` and `resume.fit_resumable`."""
        raise NotImplementedError(f"{type(self).__name__} implements neither run_setting nor run_job")

    def run_job(
        self,
        prepared: Prepared,
        settings: tuple[str, ...],
        seed: int,
        config: Mapping[str, Any],
        runtime: RuntimeOptions,
    ) -> dict[str, SeedOutcome]:
        """Every setting of one job (one setting, or one of `job_groups`) for one seed."""
        return {setting: self.run_setting(prepared, setting, seed, config, runtime) for setting in settings}

    def finalize(
        self, prepared: Prepared, details: Mapping[str, Mapping[int, Mapping[str, Any]]], config: Mapping[str, Any]
    ) -> dict[str, dict[int, dict[str, Any]]]:
        """After every job, in the runner's process: what spans seeds (e.g. a pooled audit).

        details: {setting: {seed: that seed's `SeedOutcome.details`}}, in seed order. Returns entries to add
        to those details, {setting: {seed: {key: value}}}; the default adds nothing."""
        return {}
