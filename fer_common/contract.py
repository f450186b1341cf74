"""The contract between the runner and a replication: what a replication prepares, what one job returns.

A replication is its `metadata.yaml` (paper, protocol, reported figures, assumptions) plus one module with a
`Replication` subclass that holds only its paper's own work:

    class Chen(Replication):
        metadata_file = Path(__file__).with_name("metadata.yaml")

        def prepare(self, config) -> Prepared: ...                       # load its data
        def run_setting(self, prepared, setting, seed, config, runtime, run_keys) -> SeedOutcome: ...

Everything else (seeding, metrics, bands, provenance, records, figures, model bundles) is the runner's.
A replication module imports this contract and library helpers, never the runner; the runner finds
replications through `fer_common.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from fer_common.resume import make_run_key
from fer_common.train import RuntimeOptions

if TYPE_CHECKING:  # augment imports TensorFlow: only the bench needs it, when it trains
    from fer_common.augment import AugmentConfig

DataKind = Literal["real", "proxy"]
SCALES = ("unit", "raw")


@dataclass(frozen=True)
class Preprocessing:
    """What a model's input was during training: square side, channel count, pixel scale.

    scale "unit": pixels / 255, as `to_model_input` returns them; "raw": 0..255 floats, for models that
    rescale inside (the CMU models).
    """

    size: int
    channels: int
    scale: str

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(SCALES)}, not {self.scale!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {self.channels}")

    def apply(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """uint8 images (one (N, H, W, C) array, or a list of (H, W, C) of any sizes) -> float32 model batch."""
        from fer_common.train import to_model_input

        if isinstance(images, np.ndarray):
            batch = to_model_input(images, self.channels, self.size)
        elif len(images) == 0:
            return np.zeros((0, self.size, self.size, self.channels), dtype=np.float32)
        else:
            # Faces come in different sizes: resize each one the way training resized its batch.
            batch = np.concatenate(
                [to_model_input(_with_channel_axis(image)[None], self.channels, self.size) for image in images]
            )
        return batch * np.float32(255.0) if self.scale == "raw" else batch


def _with_channel_axis(image: np.ndarray) -> np.ndarray:
    return image[..., None] if image.ndim == 2 else image


@dataclass(frozen=True)
class Prepared:
    """What `prepare` hands to every job: the data, its classes and where it came from."""

    data: Any  # the replication's own typed value (arrays, splits): only its own jobs read it
    class_names: list[str]
    checksum: str
    data_kind: DataKind
    description: str = ""


@dataclass(frozen=True)
class RunKeys:
    """Names the checkpoints of one job's training runs, so that a resumed run only ever continues its own.
    The runner supplies it: every key covers the job's data checksum, the numbers-layer code hash, its seed
    and runtime switches alike; a replication names the run and gives the part of its config that trains."""

    replication_id: str
    seed: int
    data_checksum: str
    code_hash: str
    runtime: RuntimeOptions

    def key(self, run: str, config: Mapping[str, Any], **inputs: Any) -> str:
        """The checkpoint key of `run` (e.g. "training", or a setting) trained with `config`; `inputs`: what
        else it starts from (e.g. pretrained weights' checksum)."""
        identity = {"data": self.data_checksum, "code": self.code_hash, **inputs}
        return make_run_key(self.replication_id, run, self.seed, config, self.runtime, **identity)


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


@dataclass(frozen=True)
class BenchModel:
    """A model as its replication trains it, for `fer-replicate bench` to time on 48x48 faces.

    The bench trains it for `chunk_steps` steps per timed chunk, and estimates from the measured rates how
    long an epoch (and, with `run_epochs`, a run) takes at shares of `training_images`.
    """

    name: str  # the bench row; unique among the bench models of all replications
    build_model: Callable[[], Any]  # the uncompiled Keras model for 7 classes and 48x48 inputs with `channels`
    compile_model: Callable[[Any], None]  # compiles a built model with the replication's optimizer, loss and config
    batch_size: int
    channels: int
    chunk_steps: int  # training steps per timed chunk
    training_images: int  # images of one epoch with all the data: the data-size rows' 100%
    training_data: str  # what those images are, e.g. "FER2013 Training"
    augmentation: AugmentConfig | None = None  # trained with it on the suite's ways (plain fit has none)
    run_epochs: int | None = None  # epochs of a full run, for the run-time estimate; None: no estimate
    evaluation_images: int = 0  # images the run scores after every epoch (at this model's inference rate)
    inference_label: str | None = None  # also time prediction, reported under this name
    # labels, limit -> the indices of a share of FER2013 Training as the replication takes it; given, the
    # bench times decoding and preparing FER2013 at each share
    fer2013_subset: Callable[[np.ndarray, int | None], np.ndarray] | None = None


@dataclass(frozen=True)
class BenchReference:
    """A pretrained model from elsewhere whose inference the bench times beside ours."""

    name: str  # the key of its measurement
    label: str  # the bench row
    load: Callable[[], Any]  # the Keras model
    preprocess: Callable[[np.ndarray], np.ndarray]  # uint8 (N, 48, 48, 1) faces -> the model's input
    available: Callable[[], bool]  # False when what `load` needs is not installed
    missing_note: str  # the row's note when it is not available: what to install


@dataclass(frozen=True)
class Parity:
    """How `fer-replicate bench --parity <id>` checks that the optimised switches keep the science: one
    metric of some settings of a profile, optimised against float32."""

    profile: str
    settings: tuple[str, ...]  # the first one decides the verdict; the others are reported beside it
    metric: str = "accuracy"
    reference: Literal["record", "run"] = "run"  # "record": the committed float32 full record; "run": a run here
    default_seeds: tuple[int, ...] = (0, 1, 2)
    default_epochs: int | None = None  # None: the profile's protocol decides the epochs (no --epochs)
    config_overrides: Mapping[str, Any] = field(default_factory=dict)  # always applied (unless given otherwise)


class Replication(ABC):
    """One paper's own work. Subclasses set `metadata_file` and implement `prepare` and `run_setting` (or
    `run_job`, for settings that share work); `finalize` is optional."""

    metadata_file: ClassVar[Path]
    # Settings that share work: the runner runs a seed of the whole group as one job (one process), so e.g.
    # two protocols read from one training run without two workers training it at once.
    job_groups: ClassVar[tuple[tuple[str, ...], ...]] = ()
    # The bundle `predict` and `demo` use when given no --model, if this paper provides the demo's model.
    demo_bundle: ClassVar[str | None] = None
    # How `fer-replicate bench --parity` checks this replication; None: it has no parity check.
    parity: ClassVar[Parity | None] = None

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
        self,
        prepared: Prepared,
        setting: str,
        seed: int,
        config: Mapping[str, Any],
        runtime: RuntimeOptions,
        run_keys: RunKeys,
    ) -> SeedOutcome:
        """Train and score one setting for one seed. The runner has seeded everything before the call;
        `runtime` (the speed switches) goes on to `train.fit` and `resume.fit_resumable`, `run_keys` names
        the checkpoints of what the job trains."""
        raise NotImplementedError(f"{type(self).__name__} implements neither run_setting nor run_job")

    def run_job(
        self,
        prepared: Prepared,
        settings: tuple[str, ...],
        seed: int,
        config: Mapping[str, Any],
        runtime: RuntimeOptions,
        run_keys: RunKeys,
    ) -> dict[str, SeedOutcome]:
        """Every setting of one job (one setting, or one of `job_groups`) for one seed."""
        return {setting: self.run_setting(prepared, setting, seed, config, runtime, run_keys) for setting in settings}

    def finalize(
        self, prepared: Prepared, details: Mapping[str, Mapping[int, Mapping[str, Any]]], config: Mapping[str, Any]
    ) -> dict[str, dict[int, dict[str, Any]]]:
        """After every job, in the runner's process: what spans seeds (e.g. a pooled audit).

        details: {setting: {seed: that seed's `SeedOutcome.details`}}, in seed order. Returns entries to add
        to those details, {setting: {seed: {key: value}}}; the default adds nothing."""
        return {}

    def bench_models(self) -> tuple[BenchModel, ...]:
        """The models `fer-replicate bench` times training (and maybe inference) of; the default: none."""
        return ()

    def bench_references(self) -> tuple[BenchReference, ...]:
        """Pretrained models from elsewhere whose inference the bench times; the default: none."""
        return ()
