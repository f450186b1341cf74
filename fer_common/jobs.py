"""A run's jobs: what one job is, what it gives back, and the folder that keeps each finished job.

A job is one seed of one setting, or of a few settings a replication declares in `job_groups` because they
share work (Neamtiu's two protocols read one training run: two workers must not train it twice at once).

Every finished job is written at once, atomically, to `<cache>/jobs/<replication>-<profile>-<key>/`:
`<setting>-seed<seed>.json` (the evaluated per-seed result), `.npz` (test labels and probabilities, for the
figures) and, when the job trained a model the runner may publish as a bundle, `.keras`. The key covers
the config, the metadata, the code (its hash, not the commit: a resumed run after an unrelated commit reuses
the jobs), the data and the runtime options, so a re-run of the same configuration reuses what an interrupted
run finished, and any change starts afresh. Each job's JSON keeps the commit and code hash it ran at, so a
record can say which commits made its seeds. The JSON file is
written last: a job counts as finished only once it exists. A run holds the folder's lock from its first
job to its record, so two runs of one configuration started at once take turns instead of deleting each
other's jobs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer_common import paths, records
from fer_common.atomic import write_atomically, write_bytes_atomically, write_text_atomically
from fer_common.bundles import Preprocessing
from fer_common.contract import Replication, TrainedModel
from fer_common.metadata import canonical_json
from fer_common.train import RuntimeOptions

JOB_FORMAT = 3  # 3: each job keeps the code it ran at (`code`)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs to run one job; it travels to the worker, so it stays small and picklable."""

    replication: Replication
    config: dict
    settings: tuple[str, ...]
    seed: int
    options: RuntimeOptions
    data_checksum: str  # the data the run was started with: a worker that loads other data refuses to run
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


@dataclass(frozen=True)
class CodeVersion:
    """The code a job ran at: the commit checked out and the hash of the files the run imports."""

    git_commit: str
    code_hash: str


@dataclass
class StoredJob:
    """A finished job as its folder keeps it."""

    setting: str
    seed: int
    result: dict
    predictions_file: Path
    model_file: Path | None
    model: TrainedModel | None
    code: CodeVersion

    def predictions(self) -> tuple[np.ndarray, np.ndarray]:
        """(test labels, probabilities)."""
        with np.load(self.predictions_file) as arrays:
            return arrays["y_true"], arrays["probabilities"]


def plan_jobs(
    settings: Sequence[str], seeds: Sequence[int], groups: Sequence[Sequence[str]] = ()
) -> list[tuple[tuple[str, ...], int]]:
    """(settings, seed) of every job: setting by setting, seed by seed (the order runs have always had); a
    group of settings is one job per seed, placed where its first setting of this run comes."""
    group_of = {setting: tuple(s for s in group if s in settings) for group in groups for setting in group}
    jobs = []
    for setting in settings:
        group = group_of.get(setting, (setting,))
        if setting == group[0]:  # the others run in the job of their group's first setting
            jobs.extend((group, seed) for seed in seeds)
    return jobs


def job_key(provenance: Mapping[str, Any], options: RuntimeOptions) -> str:
    """What makes two runs' jobs interchangeable: config, metadata, code, data and runtime options (the code by
    its hash, never by commit: a commit that changes none of the run's files keeps the jobs)."""
    identity = {name: provenance[name] for name in ("config_hash", "metadata_hash", "code_hash", "dataset_checksum")}
    identity["runtime"] = asdict(options)  # threads or precision change the numbers, so they are part of it
    return hashlib.sha256(canonical_json(identity).encode("utf-8")).hexdigest()[:16]


def jobs_dir() -> Path:
    """`<cache>/jobs`: one folder per unfinished run configuration."""
    return paths.cache_dir() / "jobs"


@dataclass(frozen=True)
class JobStore:
    """The folder of one run configuration's finished jobs; `code` is what the jobs saved here ran at."""

    folder: Path
    code: CodeVersion

    @classmethod
    def for_run(
        cls, replication_id: str, profile: str, key: str, code: CodeVersion, root: Path | None = None
    ) -> JobStore:
        return cls(Path(root or jobs_dir()) / f"{replication_id}-{profile}-{key}", code)

    def _stem(self, setting: str, seed: int) -> Path:
        return self.folder / f"{setting}-seed{seed}"

    def save(self, job: JobResult) -> StoredJob:
        """Write one finished job (its JSON file last, so a half-written job is never taken as finished)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = self._stem(job.setting, job.seed)
        write_atomically(
            stem.with_suffix(".npz"),
            lambda stream: np.savez(stream, y_true=job.y_true, probabilities=job.probabilities),
        )
        model = None
        if job.model_file is not None:
            write_bytes_atomically(stem.with_suffix(".keras"), job.model_file)
            model = {
                "file": stem.with_suffix(".keras").name,
                "preprocessing": asdict(job.model.preprocessing),
                "selection_score": job.model.selection_score,
                "selected_on": job.model.selected_on,
                "keep_every_seed": job.model.keep_every_seed,
            }
        entry = {
            "format": JOB_FORMAT,
            "setting": job.setting,
            "seed": job.seed,
            "git_commit": self.code.git_commit,
            "code_hash": self.code.code_hash,
            "result": job.result,
            "model": model,
        }
        text = json.dumps(records.json_types(entry, finite_only=False), indent=1) + "\n"
        write_text_atomically(stem.with_suffix(".json"), text)
        return self._read(stem)

    def load(self, setting: str, seed: int) -> StoredJob | None:
        """The finished job, or None when there is none (or it cannot be read: it will run again)."""
        stem = self._stem(setting, seed)
        if not stem.with_suffix(".json").is_file():
            return None
        try:
            return self._read(stem)
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("job file %s is unreadable (%s); running the job again", stem.with_suffix(".json"), error)
            return None

    def _read(self, stem: Path) -> StoredJob:
        entry = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
        if entry["format"] != JOB_FORMAT or not stem.with_suffix(".npz").is_file():
            raise ValueError(f"format {entry['format']} or predictions missing")
        model = entry["model"]
        return StoredJob(
            setting=entry["setting"],
            seed=int(entry["seed"]),
            result=entry["result"],
            predictions_file=stem.with_suffix(".npz"),
            model_file=self.folder / model["file"] if model else None,
            model=_trained_model(model) if model else None,
            code=CodeVersion(entry["git_commit"], entry["code_hash"]),
        )

    @contextlib.contextmanager
    def owned(self) -> Iterator[None]:
        """Hold this configuration's lock: another run of it waits here until this one has its record."""
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        with open(self.folder.with_name(self.folder.name + ".lock"), "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("another run of this configuration holds %s; waiting for it to finish", self.folder)
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def remove(self) -> None:
        """Delete the finished jobs (the record holds them now); call it while owning the folder."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _trained_model(entry: Mapping[str, Any]) -> TrainedModel:
    return TrainedModel(
        model=None,
        preprocessing=Preprocessing(**entry["preprocessing"]),
        selection_score=entry["selection_score"],
        selected_on=entry["selected_on"],
        keep_every_seed=entry["keep_every_seed"],
    )
