"""Run a replication from its metadata: jobs (setting x seed) -> metrics -> band rows -> one record.

A replication (see `fer_common.contract`) prepares its data and runs one job; everything else (seeding,
metrics, bands, provenance, records, figures, model bundles) happens here, once. Jobs are independent: each
may run in another process or on another machine (see executors.py), each starts from
`configure_runtime(seed)`, and nothing but its returned outcomes reaches the record.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fer_common import paths, plots, records
from fer_common.bundles import Preprocessing, models_dir, save_bundle_file
from fer_common.contract import Prepared, Replication
from fer_common.data.integrity import DataAudit, data_audit
from fer_common.errors import DatasetError, JobsFailedError, MetadataError, RecordError
from fer_common.execution import run_job
from fer_common.executors import Capacity, ExecutorOptions, TaskFailure, execute, plan_capacity
from fer_common.job_types import JobResult, JobSpec
from fer_common.jobs import JobClock, JobKey, JobStore, StoredJob, effective_runtime, plan_jobs
from fer_common.jobs import jobs_dir as jobs_dir_default
from fer_common.metadata import FULL_PROFILE, ReplicationMetadata, load_metadata
from fer_common.per_image import encode_labels
from fer_common.provenance import collect_provenance, current_code_files, numbers_code_changes, require_clean_tree
from fer_common.registry import REPLICATIONS
from fer_common.schema import Provenance, Record, SeedEntry
from fer_common.train import RuntimeOptions, describe_options

log = logging.getLogger(__name__)
MODIFIED_DATA_NOTE = "data differs from its SHA256SUMS"
_LISTED_DIFFERENCES = 100  # a record lists this many files that differ from SHA256SUMS, then counts the rest


@dataclass(frozen=True)
class BestModel:
    seed: int
    score: float
    selected_on: str
    model_file: Path
    preprocessing: Preprocessing


# --- the run ------------------------------------------------------------------------------------------


def run_replication(
    replication: Replication,
    profile: str = "full",
    *,
    seeds: list[int] | None = None,
    options: RuntimeOptions | None = None,
    results_dir: Path | None = None,
    write: bool = True,
    make_plots: bool = True,
    command: str = "",
    config_overrides: dict | None = None,
    executor: ExecutorOptions | None = None,
    jobs_root: Path | None = None,
    jobs_dir: Path | None = None,
    allow_modified_data: bool = False,
    repo_root: Path | None = None,
) -> tuple[Record | None, Path | None]:
    """Run every setting x seed of a replication, check the bands and write one record.

    config_overrides (e.g. `weights: none` from the command line) must name keys the metadata's config
    has; they are part of the recorded config and its hash. executor: where the jobs run (default: here,
    one after another). Each finished job is kept as a job result (`fer_common.jobs`), so a re-run of an
    interrupted or failed run reuses it: in `jobs_dir/<id>-<profile>` when given (shared storage), in
    `<results>/<id>/jobs/` for a full run that writes its record (committed with it), else in
    `jobs_root/<id>-<profile>` (default `<cache>/jobs`) until the record is written. JobsFailedError when jobs
    still fail after their retries (no record then). Where the job results are kept, `seeds` are the seeds
    to run now and the record also waits for the profile's: seeds run elsewhere assemble one record.

    A full run refuses a tree with uncommitted changes (FerError); other profiles record `git_dirty`. Data
    that fails its SHA256SUMS stops the run unless allow_modified_data (the record and rows then say so).
    repo_root: the repository whose code and git state the provenance describes (default: this one).
    """
    meta = load_metadata(replication.metadata_file)
    config, default_seeds = meta.resolve(profile)
    for key, value in (config_overrides or {}).items():
        if key not in config:
            raise MetadataError(f"{meta.id} has no config key {key!r} to override; its keys: {', '.join(config)}")
        config[key] = value
    seeds = list(seeds) if seeds else list(default_seeds)
    executor = executor or ExecutorOptions()
    options = options or RuntimeOptions()
    if profile == FULL_PROFILE and write and _publishes_in(results_dir, repo_root):
        require_clean_tree(repo_root)
    started = time.perf_counter()
    try:
        with data_audit(allow_modified_data) as audit:
            prepared = replication.prepare(config)
    except DatasetError as error:
        if meta.dataset.data != "missing":
            raise
        return _not_run(meta, profile, config, seeds, error, results_dir, write, command, repo_root)
    data_notes = _data_notes(audit) + _checksum_change_notes(meta.id, prepared.checksum, results_dir)

    settings_run = meta.settings_for(profile)
    publish_dir = Path(results_dir or paths.results_dir()) if write else None
    folder, keep = _job_folder(meta.id, profile, jobs_root, jobs_dir, publish_dir)
    # Kept job results may come from other machines or sessions: `--seeds` names the jobs to run now, and the
    # record waits for the profile's seeds as well.
    record_seeds = sorted(set(default_seeds) | set(seeds)) if keep else seeds
    planned = plan_jobs(settings_run, seeds, replication.job_groups)
    capacity = plan_capacity(executor, options.threads, len(planned))
    job_options = replace(options, threads=capacity.threads)
    # Provenance is taken before the jobs: it must describe the code that ran, not the tree at the end.
    provenance = collect_provenance(
        meta,
        config,
        record_seeds,
        prepared.checksum,
        0.0,
        # The precision "auto" resolved to on this machine is what the record must say.
        options=describe_options(job_options if executor.parallel else options),
        command=command,
        repo_root=repo_root,
        profile=profile,
    )
    provenance.update(_data_verification(audit))
    provenance["run_notes"] = data_notes  # every row says them (rows.add_row_notes)
    if executor.parallel:
        provenance["executor"] = {"kind": executor.kind, "workers": capacity.workers}
        _describe_capacity(meta.id, executor, capacity)
    store = _job_store(meta.id, profile, provenance, job_options, folder, keep, repo_root)
    jobs = [
        JobSpec(
            replication,
            config,
            group,
            seed,
            job_options,
            prepared.checksum,
            provenance["code_hash"],
            allow_modified_data,
        )
        for group, seed in plan_jobs(settings_run, record_seeds, replication.job_groups)
    ]
    needed = [(setting, job.seed) for job in jobs for setting in job.settings]
    complete = store.with_runtime_of_complete_results(needed)
    if complete is not None:
        log.info(
            "[%s] every job has a result made with runtime %s (this machine's: %s): assembling the record from "
            "them, nothing to train",
            meta.id,
            _runtime_text(complete.key.runtime),
            _runtime_text(store.key.runtime),
        )
        store = complete
        provenance["runtime"] = {**dict(complete.key.runtime), "precision": complete.key.runtime["policy"]}
    with store.owned():
        finished = _run_jobs(meta.id, jobs, set(seeds), store, executor, capacity, prepared)
        waiting = [
            (setting, seed) for setting in settings_run for seed in record_seeds if (setting, seed) not in finished
        ]
        if waiting:
            log.warning(_waiting_text(meta.id, profile, store, waiting))
            return None, None

        finalized = _finalized_details(replication, prepared, finished, settings_run, record_seeds, config)
        seed_entries = {
            setting: {
                str(seed): _seed_entry(finished[setting, seed], finalized.get(setting, {}).get(seed, {}))
                for seed in record_seeds
            }
            for setting in settings_run
        }

        used = [finished[job.settings[0], job.seed] for job in jobs]
        provenance.update(_job_code(meta, finished, repo_root))
        provenance["jobs"] = [_job_origin(job) for job in used]
        provenance["wall_time_s"] = round(time.perf_counter() - started, 1)
        # Every job's own time, those finished by an earlier invocation or on another machine included (a
        # resumed run's clock counts only what it trained itself); a job of several settings counts once.
        provenance["jobs_wall_time_s"] = round(sum(entry["wall_time_s"] for entry in provenance["jobs"]), 1)
        record = records.build_record(meta, profile, prepared.data_kind, seed_entries, provenance)
        if write and profile == FULL_PROFILE:
            previous = records.latest_record(meta.id, profile, results_dir)
            if previous is not None and _same_assembly(previous.provenance, record.provenance, repo_root):
                log.info(
                    "[%s] %s already holds these job results at this code, data and metadata: nothing new to write",
                    meta.id,
                    paths.portable(str(previous.path)),
                )
                return previous, previous.path
        path = None
        if write:
            path = records.write_record(record, results_dir)
            if make_plots:
                first_seeds = {setting: finished[setting, record_seeds[0]] for setting in settings_run}
                _write_figures(path, meta, first_seeds, prepared.class_names)
            _save_models(meta.id, profile, finished, settings_run, record_seeds, prepared.class_names, path, provenance)
        if not store.keep:
            store.remove()  # the record holds it all now
    return record, path


def _same_assembly(previous: Provenance, current: Provenance, repo_root: Path | None) -> bool:
    """Whether a record was assembled from the same job results, code, config, data and metadata as this run
    would be: writing it again would only add a copy. Code counts as the same by the rule that keeps records
    current (`numbers_code_changes`: by content, code moves included), not by its hash."""

    def identity(made: Provenance) -> tuple:
        return made.metadata_hash, made.config_hash, made.dataset_checksum, made.seeds, made.run_notes

    same_code = previous.code_hash == current.code_hash or (
        bool(previous.code_files) and not numbers_code_changes(previous.code_files, current.code_files or {}, repo_root)
    )
    same_jobs = [job.file for job in previous.jobs] == [job.file for job in current.jobs]
    return same_code and same_jobs and identity(previous) == identity(current)


def _job_folder(
    replication_id: str, profile: str, jobs_root: Path | None, jobs_dir: Path | None, publish_dir: Path | None
) -> tuple[Path, bool]:
    """(folder of the run's job results, whether they are kept after the record): see `run_replication`."""
    if jobs_dir is not None:
        return Path(jobs_dir) / f"{replication_id}-{profile}", True
    if profile == FULL_PROFILE and publish_dir is not None:
        return publish_dir / replication_id / "jobs", True
    return Path(jobs_root or jobs_dir_default()) / f"{replication_id}-{profile}", False


def _job_store(
    replication_id: str,
    profile: str,
    provenance: dict,
    options: RuntimeOptions,
    folder: Path,
    keep: bool,
    repo_root: Path | None,
) -> JobStore:
    """The run's job results: keyed by config, numbers-layer code, data and the runtime as it acts here."""
    key = JobKey(
        config_hash=provenance["config_hash"],
        code_hash=provenance["code_hash"],
        dataset_checksum=provenance["dataset_checksum"],
        runtime=effective_runtime(options),
    )
    origin = {
        name: provenance[name]
        for name in ("git_commit", "git_dirty", "cpu", "cpu_kind", "python", "packages", "command")
    }
    origin["runtime"] = effective_runtime(options)
    return JobStore(folder, replication_id, profile, key, provenance["code_files"], origin, keep, repo_root)


def _runtime_text(runtime) -> str:
    return f"{runtime['policy']}, {runtime['threads']} thread(s)"


def _seed_entry(job: StoredJob, finalized: Mapping[str, Any]) -> SeedEntry:
    """A job's per-seed entry of the record: its result, with what the replication's `finalize` adds to its
    details across seeds and its per-image labels and predictions (one character each), what a paired
    comparison of two settings scored on the same images reads."""
    y_true, probabilities = job.predictions()
    entry = {
        **job.result,
        "details": {**job.result["details"], **finalized},
        "predictions": {"true": encode_labels(y_true), "predicted": encode_labels(np.argmax(probabilities, axis=1))},
    }
    return SeedEntry.model_validate(records.json_types(entry))


def _job_origin(job: StoredJob) -> dict:
    """One job's line in the record: which result file, and where and how long it ran."""
    origin = job.origin
    return {
        "setting": job.setting,
        "seed": job.seed,
        "file": job.file.name,
        "git_commit": origin["git_commit"],
        "cpu": origin["cpu"],
        "cpu_kind": origin["cpu_kind"],
        "policy": origin["runtime"]["policy"],
        "threads": origin["runtime"]["threads"],
        "wall_time_s": origin["wall_time_s"],
        "finished_utc": origin["finished_utc"],
    }


def _waiting_text(replication_id: str, profile: str, store: JobStore, waiting: list[tuple[str, int]]) -> str:
    seeds = sorted({seed for _, seed in waiting})
    jobs = ", ".join(f"{setting} seed {seed}" for setting, seed in waiting)
    options = "" if profile == FULL_PROFILE else f" --profile {profile}"
    runtime = store.key.runtime
    options += " --precision auto" if runtime["policy"] == "mixed_bfloat16" else ""
    options += f" --threads {runtime['threads']}"
    return (
        f"[{replication_id}] no record yet: the record waits for {len(waiting)} job(s) ({jobs}). Run them here "
        f"or on another machine with `fer-replicate run {replication_id}{options} --seeds "
        f"{','.join(map(str, seeds))}` (the same precision policy and threads: they are part of the jobs' key) "
        f"and bring their results to {paths.portable(str(store.folder))} (commit them, or share the folder with "
        "--jobs-dir); `fer-replicate progress` lists what is there."
    )


def _publishes_in(results_dir: Path | None, repo_root: Path | None) -> bool:
    """Whether the record goes into the repository's own results/: a full record there is the product, so it
    must name a commit that rebuilds it (records written elsewhere, e.g. by tests, are not published)."""
    folder = Path(results_dir or paths.results_dir()).resolve()
    return folder.is_relative_to(Path(repo_root or paths.REPO_ROOT).resolve())


def _finalized_details(
    replication: Replication,
    prepared: Prepared,
    finished: dict[tuple[str, int], StoredJob],
    settings: list[str],
    seeds: list[int],
    config: dict,
) -> dict[str, dict[int, dict[str, Any]]]:
    """What the replication computes across seeds after every job, to add to each seed's details."""
    details = {setting: {seed: finished[setting, seed].result["details"] for seed in seeds} for setting in settings}
    return replication.finalize(prepared, details, config)


def _describe_capacity(replication_id: str, executor: ExecutorOptions, capacity: Capacity) -> None:
    workers = f"{capacity.workers} at a time" if capacity.workers else "as many at a time as the cluster takes"
    log.info(
        "[%s] jobs on %s (%s), %d TensorFlow thread(s) each; the numbers equal a sequential run's with --threads %d",
        replication_id,
        executor.kind,
        workers,
        capacity.threads,
        capacity.threads,
    )


def _run_jobs(
    replication_id: str,
    jobs: list[JobSpec],
    run_seeds: set[int],
    store: JobStore,
    executor: ExecutorOptions,
    capacity: Capacity,
    prepared: Prepared,
) -> dict[tuple[str, int], StoredJob]:
    """Every job's stored result: reused from `store` where an earlier run (here or elsewhere) finished it, else
    run if its seed is in `run_seeds` and stored the moment it finishes; a job of another seed without a result
    stays missing. JobsFailedError (after the rest ran) when some still fail after their retries."""
    finished: dict[tuple[str, int], StoredJob] = {}
    pending = []
    for job in jobs:
        missing = []
        for setting in job.settings:
            stored = store.load(setting, job.seed)
            if stored is None:
                missing.append(setting)
            else:
                log.info("[%s] reusing job setting=%s seed=%d from %s", replication_id, setting, job.seed, store.folder)
                finished[setting, job.seed] = stored
        if missing and job.seed in run_seeds:  # a group runs whole: its settings share one computation
            pending.append(job)

    def keep(job: JobSpec, results: list[JobResult]) -> None:
        for result in results:
            if store.keep and result.model_file is not None and replication_id in REPLICATIONS.ids():
                result.cross_dataset = _cross_dataset_cells(replication_id, result, prepared.class_names)
            finished[result.setting, result.seed] = store.save(result)
            log.info(
                "[%s]   setting=%s seed=%d: accuracy %.4f (%.0fs)",
                replication_id,
                result.setting,
                result.seed,
                result.result["metrics"]["accuracy"],
                result.result["wall_time_s"],
            )

    # Jobs that run in this process use the data prepared above instead of preparing it again.
    clocks = paths.cache_dir() / "job-clocks"
    function = functools.partial(
        run_timed_job, clocks=clocks, key=store.key.digest, prepared=None if executor.parallel else prepared
    )
    failures = execute(
        pending, function, executor, capacity, keep, label=lambda job: job.label, prefix=f"[{replication_id}]"
    )
    if failures:
        raise JobsFailedError(_failure_report(failures, len(pending), store))
    return finished


def _cross_dataset_cells(replication_id: str, result: JobResult, class_names: list[str]) -> dict | None:
    """The trained model scored on the other datasets, for a job result that is kept: its weights do not travel
    with it. A failure here is logged and leaves the job's own measurements intact."""
    from fer_common.cross_dataset import score_trained_model

    name = f"{replication_id}-{result.setting}-seed{result.seed}"
    try:
        return score_trained_model(
            result.model_file,
            name=name,
            replication_id=replication_id,
            class_names=class_names,
            preprocessing=result.model.preprocessing,
        )
    except Exception as error:  # noqa: BLE001 - hours of training must not be lost to the scoring of extra cells
        log.warning(
            "[%s] %s: cross-dataset cells not scored (%s: %s)", replication_id, name, type(error).__name__, error
        )
        return {"error": f"{type(error).__name__}: {error}"}


def run_timed_job(spec: JobSpec, *, clocks: Path, key: str, prepared: Prepared | None = None) -> list[JobResult]:
    """`execution.run_job` with a clock in the cache beside its checkpoints: a job resumed after its session
    ended counts the time of the attempts before (see `JobClock`)."""
    clock = JobClock(clocks / f"{spec.replication.id}-{'+'.join(spec.settings)}-seed{spec.seed}-{key}.json")
    with clock.running() as earlier:
        results = run_job(spec, prepared)
    for result in results:
        result.earlier_wall_time_s = earlier
    return results


def _failure_report(failures: list[TaskFailure], attempted: int, store: JobStore) -> str:
    lines = [f"  {failure.task.label}: {failure.describe()} ({failure.attempts} attempts)" for failure in failures]
    return (
        f"{len(failures)} of {attempted} job(s) failed, so no record was written:\n" + "\n".join(lines) + "\n"
        f"The finished jobs are kept in {store.folder}; the same command runs only what is missing."
    )


def _best_models(
    finished: dict[tuple[str, int], StoredJob], settings: list[str], seeds: list[int]
) -> dict[str, BestModel]:
    """Per setting, the seed of highest selection score (the first on ties) among the jobs that kept a model.

    The score is the replication's validation measure (`TrainedModel.selection_score`), never the reported
    test accuracy; a setting without one publishes its first seed."""
    best: dict[str, BestModel] = {}
    for setting in settings:
        for seed in seeds:
            job = finished[setting, seed]
            if job.model is None:
                continue
            score = job.model.selection_score
            chosen = best.get(setting)
            if chosen is None or (score is not None and (chosen.score is None or score > chosen.score)):
                best[setting] = BestModel(seed, score, job.model.selected_on, job.model_file, job.model.preprocessing)
    return best


def _save_models(
    replication_id: str,
    profile: str,
    finished: dict[tuple[str, int], StoredJob],
    settings: list[str],
    seeds: list[int],
    class_names: list[str],
    record_path: Path,
    provenance: dict,
) -> None:
    """Bundles in FER_MODELS_DIR for `predict` / `demo`: `<id>-<setting>` (the seed of best selection score)
    and, where the replication asks for it, `<id>-<setting>-seed<N>` for every seed. A shorter profile's model
    never replaces one a full run saved under the same name."""

    def save(name: str, seed: int, job: StoredJob, chosen_by: str) -> None:
        if profile != FULL_PROFILE and _full_run_bundle(models_dir() / name):
            log.warning(
                "[%s] model %s kept: it is a full run's, and this %s run's model does not replace it",
                replication_id,
                name,
                profile,
            )
            return
        if job.model_file is None:
            log.warning(
                "[%s] no bundle %s: seed %d's model stayed on the machine that trained it (job results travel "
                "without weights); its measurements are in the record",
                replication_id,
                name,
                seed,
            )
            return
        saved = save_bundle_file(
            job.model_file,
            models_dir() / name,
            class_names=class_names,
            preprocessing=job.model.preprocessing,
            source={
                "replication": replication_id,
                "setting": job.setting,
                "seed": seed,
                "accuracy": job.result["metrics"]["accuracy"],
                "scored_on": job.result["scored_set"],
                "selection_score": job.model.selection_score,
                "selected_on": job.model.selected_on,
                "chosen_by": chosen_by,
                "record": paths.portable(str(record_path)),
                "git_commit": provenance.get("git_commit"),
            },
        )
        log.info("[%s] model saved: %s (seed %d)", replication_id, saved, seed)

    for setting, chosen in _best_models(finished, settings, seeds).items():
        rule = f"highest {chosen.selected_on} of seeds {seeds}" if chosen.score is not None else "first seed"
        save(f"{replication_id}-{setting}", chosen.seed, finished[setting, chosen.seed], rule)
        for seed in seeds:
            job = finished[setting, seed]
            if job.model is not None and job.model.keep_every_seed:
                save(f"{replication_id}-{setting}-seed{seed}", seed, job, f"seed {seed}")


def _full_run_bundle(stem: Path) -> bool:
    """Whether a bundle is there at `stem` whose description names a full run's record."""
    description = stem.with_suffix(".json")
    if not (description.is_file() and stem.with_suffix(".keras").is_file()):
        return False
    try:
        record = json.loads(description.read_text(encoding="utf-8")).get("source", {}).get("record") or ""
    except (OSError, ValueError, AttributeError):
        return False
    return records.is_full_record(record)


# --- what the record vouches for ----------------------------------------------------------------------


def _data_notes(audit: DataAudit) -> list[str]:
    return [MODIFIED_DATA_NOTE] if audit.modified else []


def _data_verification(audit: DataAudit) -> dict:
    """`data_verified`: True when every dataset folder loaded matched its SHA256SUMS, False (with the files that
    differ) when the run went on with modified data, None when no folder had a SHA256SUMS to check."""
    if not audit.checks:
        return {"data_verified": None}
    differences = [f"{check.folder}/{problem}" for check in audit.modified for problem in check.problems]
    if len(differences) > _LISTED_DIFFERENCES:
        differences = [*differences[:_LISTED_DIFFERENCES], f"and {len(differences) - _LISTED_DIFFERENCES} more"]
    return {"data_verified": not differences, "data_differences": differences}


def _checksum_change_notes(replication_id: str, checksum: str, results_dir: Path | None) -> list[str]:
    """Warn, before any training, when the data is not what the latest full record used; the rows' note."""
    try:
        previous = records.latest_record(replication_id, FULL_PROFILE, results_dir)
    except RecordError as error:
        log.warning("[%s] cannot compare the data with the latest full record: %s", replication_id, error)
        return []
    used = previous.provenance.dataset_checksum if previous else None
    if not used or used == checksum:
        return []
    note = f"data checksum {checksum[:12]} differs from {used[:12]}, the latest full record's"
    log.warning(
        "[%s] the data (checksum %s) differs from what the latest full record %s used (%s)",
        replication_id,
        checksum,
        records.record_name(previous),
        used,
    )
    return [note]


def _job_code(meta: ReplicationMetadata, finished: dict[tuple[str, int], StoredJob], repo_root: Path | None) -> dict:
    """The commits the record's jobs ran at, and `mixed_code` when some ran other numbers-layer code than the
    tree has now (code edited while the run went on): matched by content, as a record's code is."""
    commits = list(dict.fromkeys(job.code.git_commit for job in finished.values()))
    now = current_code_files(meta, repo_root)
    mixed = any(numbers_code_changes(job.code_files, now, repo_root) for job in finished.values())
    if mixed:
        log.warning(
            "[%s] the jobs ran at other code than the tree now holds (commits %s): the record says mixed_code and "
            "counts as stale",
            meta.id,
            ", ".join(commit[:7] for commit in commits),
        )
    return {"job_commits": commits, "mixed_code": mixed}


def _not_run(meta, profile, config, seeds, error, results_dir, write, command, repo_root):
    message = f"{meta.missing or ''}\n\n{error}".strip()
    log.warning("[%s] not run: %s", meta.id, message)
    provenance = collect_provenance(meta, config, seeds, "", 0.0, command=command, repo_root=repo_root, profile=profile)
    record = records.build_record(meta, profile, "missing", {}, provenance, missing=message)
    path = records.write_record(record, results_dir) if write else None
    return record, path


def _write_figures(
    record_path: Path, meta: ReplicationMetadata, first_seeds: dict[str, StoredJob], class_names: list[str]
) -> None:
    """Training curves, confusion matrix, ROC and reliability diagram per setting (its first seed), beside the
    record."""
    folder = record_path.with_suffix("")
    folder.mkdir(exist_ok=True)
    for setting, job in first_seeds.items():
        title = f"{meta.id} · {setting}"
        if job.result["history"]:
            plots.plot_training_curves(job.result["history"], folder / f"{setting}-curves.png", title)
        plots.plot_confusion_matrix(
            np.asarray(job.result["report"]["confusion_matrix"]),
            class_names,
            folder / f"{setting}-confusion.png",
            title,
        )
        y_true, probabilities = job.predictions()
        plots.plot_roc_curves(y_true, probabilities, class_names, folder / f"{setting}-roc.png", title)
        plots.plot_reliability(y_true, probabilities, folder / f"{setting}-reliability.png", title)


def _percent_or_value(value, proportion: bool) -> str:
    if value is None:
        return "—"
    return f"{100 * value:.1f}%" if proportion else f"{value:.4f}"


def format_rows(meta: ReplicationMetadata, record: Record) -> str:
    """`metric | reported | reproduced (mean ± sd) | band | verdict`, as REPLICATIONS.md asks."""
    lines = [f"{meta.title} — {meta.id} ({record.profile} profile, data: {record.data})"]
    width = max([len("setting")] + [len(row.setting) for row in record.rows])
    lines.append(f"{'setting':<{width}} {'metric':<30} {'reported':>9} {'reproduced':>18} {'band':>17}  verdict")
    for row in record.rows:
        proportion = row.kind == "proportion"
        reported = _percent_or_value(row.reported, proportion)
        if row.mean is None:
            reproduced = "—"
        else:
            reproduced = f"{_percent_or_value(row.mean, proportion)} ± {_percent_or_value(row.sd, proportion)}"
        band = row.band
        band_text = (
            f"[{_percent_or_value(band.low, proportion)}, {_percent_or_value(band.high, proportion)}]" if band else ""
        )
        lines.append(
            f"{row.setting:<{width}} {row.metric:<30} {reported:>9} {reproduced:>18} {band_text:>17}  {row.verdict}"
        )
    return "\n".join(lines)
