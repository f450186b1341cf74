"""A run's jobs: what one job is, what it gives back, and the job results that outlive the machine that made them.

A job is one seed of one setting, or of a few settings a replication declares in `job_groups` because they
share work (Neamtiu's two protocols read one training run: two workers must not train it twice at once).

A finished job is one job result: `<setting>-seed<seed>-<key>.json`, self-contained, with its `.npz` (test
labels and probabilities) and, on the machine that trained it, a `.keras` model. The JSON holds the
measurements, the job's key (`JobKey`: config, numbers-layer code, data, runtime options) with the code files
behind it, and where and how it ran (commit, CPU, precision, threads, wall time). A digest over the JSON and
the `.npz` makes a damaged or hand-edited result refuse to load, naming its file. Any run whose key matches
reuses it, on whatever machine and in whatever session it was made: a full run of this repository keeps its
job results in `results/<id>/jobs/`, committed with the session's work, so `--seeds 2` here and `--seeds 0,1`
elsewhere, days apart, assemble one record; `--jobs-dir` points at shared storage instead. Other profiles
keep theirs in the cache until their record is written. The JSON file is written last: a job counts as
finished only once it exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fer_common import paths, records
from fer_common.atomic import write_atomically, write_bytes_atomically, write_text_atomically
from fer_common.contract import Preprocessing, TrainedModel
from fer_common.errors import FerError
from fer_common.job_types import JobResult
from fer_common.metadata import canonical_json
from fer_common.provenance import numbers_code_changes, utc_now
from fer_common.train import RuntimeOptions, resolve_precision

JOB_FORMAT = 4  # 4: self-contained job results (key, code files, provenance, digest), named by their key
log = logging.getLogger(__name__)
_LISTED_FILES = 5


class JobResultError(FerError):
    """A job result that cannot be trusted (damaged, hand-edited or of an unknown format)."""


@dataclass(frozen=True)
class CodeVersion:
    """The code a job ran at: the commit checked out and the hash of the numbers-layer files the run imports."""

    git_commit: str
    code_hash: str


def effective_runtime(options: RuntimeOptions) -> dict:
    """The runtime options as they act on this machine: the precision policy `auto` resolves to, and the
    thread count 0 (all cores) stands for. Two machines that agree on these compute the same numbers."""
    return {
        "policy": resolve_precision(options.precision),
        "threads": options.threads or len(os.sched_getaffinity(0)),
        "deterministic": options.deterministic,
        "jit_compile": options.jit_compile,
        "steps_per_execution": options.steps_per_execution,
    }


@dataclass(frozen=True)
class JobKey:
    """What makes a job result reusable: the same config, numbers-layer code, data and effective runtime.
    The commit is not part of it (a commit that changes none of the run's numbers-layer files keeps the jobs),
    nor are the metadata's wording and reported figures, which change no measurement."""

    config_hash: str
    code_hash: str
    dataset_checksum: str
    runtime: Mapping[str, Any]

    @property
    def digest(self) -> str:
        return hashlib.sha256(canonical_json(asdict(self)).encode("utf-8")).hexdigest()[:16]

    def differences(
        self,
        other: JobKey,
        own_files: Mapping[str, str],
        other_files: Mapping[str, str],
        repo_root: Path | None = None,
    ) -> list[str]:
        """Why a job result of key `other` (made with `other_files`) is not reusable by a run of this key; []
        when it is. Code is matched as records are (`provenance.numbers_code_changes`): by content, so a
        result stays reusable when a file it ran is moved or removed (or its code moved word for word), not
        when one this run needs changed."""
        reasons = []
        changed = numbers_code_changes(other_files, own_files, repo_root)
        if changed:
            shown = ", ".join(changed[:_LISTED_FILES]) + (
                f" and {len(changed) - _LISTED_FILES} more" if len(changed) > _LISTED_FILES else ""
            )
            reasons.append(f"other numbers-layer code ({shown or 'same files, other hash'})")
        if other.dataset_checksum != self.dataset_checksum:
            theirs, ours = other.dataset_checksum[:12], self.dataset_checksum[:12]
            reasons.append(f"other data (checksum {theirs}, this run's {ours})")
        if other.config_hash != self.config_hash:
            reasons.append("another config")
        runtime = [
            f"{name} {other.runtime.get(name)} (this run: {value})"
            for name, value in self.runtime.items()
            if other.runtime.get(name) != value
        ]
        if runtime:
            reasons.append("other runtime: " + ", ".join(runtime))
        return reasons


@dataclass
class StoredJob:
    """A finished job as its result file keeps it."""

    setting: str
    seed: int
    result: dict
    predictions_file: Path
    model_file: Path | None  # None where the .keras file is not on this machine (results travel without it)
    model: TrainedModel | None
    code: CodeVersion
    code_files: dict[str, str]  # {path: sha256} of the numbers-layer files it ran
    key: JobKey
    origin: dict  # where and how it ran: commit, CPU, CPU kind, runtime, wall time, finished (UTC)
    file: Path
    cross_dataset: dict | None = None

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


class JobClock:
    """A job's running time, written to the cache every minute while it trains: a job stopped with its
    session resumes from its checkpoint (also in the cache), and its result then counts both attempts."""

    interval_s = 60.0

    def __init__(self, path: Path) -> None:
        self.path = path

    def earlier(self) -> float:
        """Seconds the earlier attempts of this job ran (0 when none left a clock here)."""
        try:
            return float(json.loads(self.path.read_text(encoding="utf-8"))["elapsed_s"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0

    @contextlib.contextmanager
    def running(self) -> Iterator[float]:
        """Tick while the body runs; yields the earlier attempts' seconds. The clock is removed on success."""
        import threading
        import time

        earlier, started, stop = self.earlier(), time.perf_counter(), threading.Event()

        def tick() -> None:
            while not stop.wait(self.interval_s):
                self.path.parent.mkdir(parents=True, exist_ok=True)
                elapsed = earlier + time.perf_counter() - started
                write_text_atomically(self.path, json.dumps({"elapsed_s": round(elapsed, 1)}))

        thread = threading.Thread(target=tick, daemon=True)
        thread.start()
        try:
            yield earlier
        finally:
            stop.set()
            thread.join()
        self.path.unlink(missing_ok=True)


def jobs_dir() -> Path:
    """`<cache>/jobs`: the job results of runs whose results are not committed (profiles other than full)."""
    return paths.cache_dir() / "jobs"


def _digest(entry: Mapping[str, Any]) -> str:
    body = {name: value for name, value in entry.items() if name != "digest"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class JobStore:
    """One folder of job results. `key`, `code_files` and `origin` describe the run that uses it: the jobs it
    saves carry them, and it reuses only results of the same key."""

    folder: Path
    replication: str
    profile: str
    key: JobKey
    code_files: Mapping[str, str]
    origin: Mapping[str, Any]  # this machine's part of each job's provenance (commit, CPU, runtime)
    keep: bool = True  # False: delete this key's results once the record holds them (a cache folder)
    repo_root: Path | None = None  # the repository whose code moves (fer_common/code_moves.yaml) apply

    @property
    def code(self) -> CodeVersion:
        return CodeVersion(self.origin["git_commit"], self.key.code_hash)

    def _stem(self, setting: str, seed: int) -> Path:
        return self.folder / f"{setting}-seed{seed}-{self.key.digest}"

    def save(self, job: JobResult) -> StoredJob:
        """Write one job result (its JSON file last, so a half-written job is never taken as finished)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = self._stem(job.setting, job.seed)
        npz = stem.with_suffix(".npz")
        write_atomically(
            npz, lambda stream: np.savez_compressed(stream, y_true=job.y_true, probabilities=job.probabilities)
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
        entry = records.json_types(
            {
                "format": JOB_FORMAT,
                "replication": self.replication,
                "profile": self.profile,
                "setting": job.setting,
                "seed": job.seed,
                "key": asdict(self.key),
                "code_files": dict(self.code_files),
                "provenance": {
                    **self.origin,
                    # Summed across resumes: the attempts a session's end interrupted count too.
                    "wall_time_s": round(job.result["wall_time_s"] + job.earlier_wall_time_s, 1),
                    "earlier_attempts_s": round(job.earlier_wall_time_s, 1),
                    "finished_utc": utc_now(),
                },
                "result": job.result,
                "model": model,
                "cross_dataset": job.cross_dataset,
                "predictions_sha256": _file_sha256(npz),
            },
            finite_only=False,
        )
        entry["digest"] = _digest(entry)
        write_text_atomically(stem.with_suffix(".json"), json.dumps(entry, indent=1) + "\n")
        return read_job(stem.with_suffix(".json"))

    def load(self, setting: str, seed: int) -> StoredJob | None:
        """The job result of this key, or None when there is none. Results of other keys for the same job
        are not reused; the log says why. JobResultError when this key's result is damaged or edited."""
        path = self._stem(setting, seed).with_suffix(".json")
        if path.is_file():
            return read_job(path)
        for other in sorted(self.folder.glob(f"{setting}-seed{seed}-*.json")):
            entry = _read_entry(other)
            reasons = self.key.differences(JobKey(**entry["key"]), self.code_files, entry["code_files"], self.repo_root)
            if not reasons:  # the same numbers-layer code by content (a file moved or removed since)
                return read_job(other)
            log.info("[%s] not reusing %s: %s", self.replication, paths.portable(str(other)), "; ".join(reasons))
        return None

    def with_runtime_of_complete_results(self, needed: Sequence[tuple[str, int]]) -> JobStore | None:
        """This store under another runtime, when this one lacks some of the `needed` (setting, seed) results
        and the folder holds all of them made with another runtime (precision policy or threads) but this
        config, data and code: assembling a record from them trains nothing, so this machine's runtime does
        not matter. None otherwise."""
        if all(self.load(setting, seed) is not None for setting, seed in needed):
            return None
        candidates: dict[str, tuple[JobKey, set[tuple[str, int]]]] = {}
        for path in sorted(self.folder.glob("*.json")):
            entry = _read_entry(path)
            key = JobKey(**entry["key"])
            same_run = replace(key, runtime=self.key.runtime, code_hash=self.key.code_hash)
            if same_run != self.key or numbers_code_changes(entry["code_files"], self.code_files, self.repo_root):
                continue
            found = candidates.setdefault(key.digest, (key, set()))[1]
            found.add((entry["setting"], int(entry["seed"])))
        for key, found in candidates.values():
            if set(needed) <= found:
                return replace(self, key=key, origin={**self.origin, "runtime": dict(key.runtime)})
        return None

    def results(self) -> list[Path]:
        """The result files of this key."""
        return sorted(self.folder.glob(f"*-{self.key.digest}.json"))

    @contextlib.contextmanager
    def owned(self) -> Iterator[None]:
        """Hold this configuration's lock: another run of it waits here until this one has its record. The
        lock lives in the cache, not beside the results (a committed folder holds results only)."""
        locks = paths.cache_dir() / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(f"{self.folder.resolve()}\0{self.key.digest}".encode()).hexdigest()[:16]
        with open(locks / f"{name}.lock", "w") as lock:
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
        """Delete this key's results (the record holds them now); call it while owning the folder."""
        for result in self.results():
            for suffix in (".json", ".npz", ".keras"):
                result.with_suffix(suffix).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.folder.rmdir()  # only when nothing else is left in it


def _read_entry(path: Path) -> dict:
    """A job result's JSON, checked against its digest and its predictions file; JobResultError naming the
    file when it cannot be trusted."""
    where = paths.portable(str(path))
    remedy = "delete it and its .npz to run that job again"
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise JobResultError(f"job result {where} cannot be read ({error}); {remedy}") from error
    if not isinstance(entry, dict) or entry.get("format") != JOB_FORMAT:
        found = entry.get("format") if isinstance(entry, dict) else None
        raise JobResultError(f"job result {where} has format {found!r}, not {JOB_FORMAT}; {remedy}")
    if entry.get("digest") != _digest(entry):
        raise JobResultError(f"job result {where} does not match its digest: it was edited or damaged; {remedy}")
    npz = path.with_suffix(".npz")
    if not npz.is_file() or _file_sha256(npz) != entry["predictions_sha256"]:
        state = "is missing" if not npz.is_file() else "does not match the result's checksum"
        raise JobResultError(f"job result {where}: its predictions file {npz.name} {state}; {remedy}")
    return entry


def read_job(path: Path) -> StoredJob:
    """One job result file, verified (see `_read_entry`)."""
    entry = _read_entry(path)
    model = entry["model"]
    model_file = path.parent / model["file"] if model else None
    return StoredJob(
        setting=entry["setting"],
        seed=int(entry["seed"]),
        result=entry["result"],
        predictions_file=path.with_suffix(".npz"),
        model_file=model_file if model_file is not None and model_file.is_file() else None,
        model=_trained_model(model) if model else None,
        code=CodeVersion(entry["provenance"]["git_commit"], entry["key"]["code_hash"]),
        code_files=entry["code_files"],
        key=JobKey(**entry["key"]),
        origin=entry["provenance"],
        file=path,
        cross_dataset=entry["cross_dataset"],
    )


def _trained_model(entry: Mapping[str, Any]) -> TrainedModel:
    return TrainedModel(
        model=None,
        preprocessing=Preprocessing(**entry["preprocessing"]),
        selection_score=entry["selection_score"],
        selected_on=entry["selected_on"],
        keep_every_seed=entry["keep_every_seed"],
    )
