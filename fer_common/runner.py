"""Run a replication from its metadata: jobs (setting x seed) -> metrics -> band rows -> one record.

A replication (see `fer_common.contract`) prepares its data and runs one job; everything else (seeding,
metrics, bands, provenance, records, figures, model bundles) happens here, once. Jobs are independent: each
may run in another process or on another machine (see executors.py), each starts from
`configure_runtime(seed)`, and nothing but its returned outcomes reaches the record.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from fer_common import paths, plots, records
from fer_common.bundles import Preprocessing, models_dir, save_bundle_file
from fer_common.contract import Prepared, Replication
from fer_common.data.integrity import DataAudit, data_audit
from fer_common.errors import DatasetError, JobsFailedError, MetadataError, RecordError
from fer_common.execution import run_job
from fer_common.executors import Capacity, ExecutorOptions, TaskFailure, execute, plan_capacity
from fer_common.jobs import CodeVersion, JobResult, JobSpec, JobStore, StoredJob, job_key, plan_jobs
from fer_common.metadata import FULL_PROFILE, ReplicationMetadata, files_hash, load_metadata
from fer_common.provenance import collect_provenance, current_code_files, require_clean_tree
from fer_common.rows import summarize_seeds
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
    allow_modified_data: bool = False,
    repo_root: Path | None = None,
) -> tuple[dict, Path | None]:
    """Run every setting x seed of a replication, check the bands and write one record.

    config_overrides (e.g. `weights: none` from the command line) must name keys the metadata's config
    has; they are part of the recorded config and its hash. executor: where the jobs run (default: here,
    one after another). Each finished job is kept in `jobs_root` (default `<cache>/jobs`) until the run
    ends, so a re-run of an interrupted or failed run reuses it; JobsFailedError when jobs still fail after
    their retries (no record then).

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
    planned = plan_jobs(settings_run, seeds, replication.job_groups)
    capacity = plan_capacity(executor, options.threads, len(planned))
    job_options = replace(options, threads=capacity.threads)
    # Provenance is taken before the jobs: it must describe the code that ran, not the tree at the end.
    provenance = collect_provenance(
        meta,
        config,
        seeds,
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
    code = CodeVersion(provenance["git_commit"], provenance["code_hash"])
    store = JobStore.for_run(meta.id, profile, job_key(provenance, job_options), code, jobs_root)
    jobs = [
        JobSpec(replication, config, group, seed, job_options, prepared.checksum, allow_modified_data)
        for group, seed in planned
    ]
    with store.owned():
        finished = _run_jobs(meta.id, jobs, store, executor, capacity, prepared)

        settings: dict[str, dict] = {
            setting: {"seeds": {str(seed): finished[setting, seed].result for seed in seeds}}
            for setting in settings_run
        }
        _add_finalized_details(replication, prepared, settings, config)
        for setting_result in settings.values():
            setting_result["summary"] = summarize_seeds(setting_result["seeds"])

        provenance.update(_job_code(meta, finished, repo_root))
        provenance["wall_time_s"] = round(time.perf_counter() - started, 1)
        # Every job's own time, those finished by an earlier invocation of the run included (a resumed run's
        # clock counts only what it trained itself); a job of several settings counts once.
        provenance["jobs_wall_time_s"] = round(
            sum(finished[group[0], seed].result["wall_time_s"] for group, seed in planned), 1
        )
        record = records.build_record(meta, profile, prepared.data_kind, settings, provenance)
        path = None
        if write:
            path = records.write_record(record, results_dir)
            if make_plots:
                first_seeds = {setting: finished[setting, seeds[0]] for setting in settings_run}
                _write_figures(path, meta, first_seeds, prepared.class_names)
            _save_models(meta.id, finished, settings_run, seeds, prepared.class_names, path, provenance)
        store.remove()  # the record holds it all now
    return record, path


def _publishes_in(results_dir: Path | None, repo_root: Path | None) -> bool:
    """Whether the record goes into the repository's own results/: a full record there is the product, so it
    must name a commit that rebuilds it (records written elsewhere, e.g. by tests, are not published)."""
    folder = Path(results_dir or paths.results_dir()).resolve()
    return folder.is_relative_to(Path(repo_root or paths.REPO_ROOT).resolve())


def _add_finalized_details(replication: Replication, prepared: Prepared, settings: dict, config: dict) -> None:
    """What the replication computes across seeds after every job, added to each seed's details."""
    details = {
        setting: {int(seed): result["details"] for seed, result in entry["seeds"].items()}
        for setting, entry in settings.items()
    }
    for setting, by_seed in replication.finalize(prepared, details, config).items():
        for seed, additions in by_seed.items():
            settings[setting]["seeds"][str(seed)]["details"].update(additions)


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
    store: JobStore,
    executor: ExecutorOptions,
    capacity: Capacity,
    prepared: Prepared,
) -> dict[tuple[str, int], StoredJob]:
    """Every job's stored result: reused from `store` where an earlier run finished it, else run and stored
    the moment it finishes. JobsFailedError (after the rest ran) when some still fail after their retries."""
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
        if missing:  # a group runs whole: its settings share one computation
            pending.append(job)

    def keep(job: JobSpec, results: list[JobResult]) -> None:
        for result in results:
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
    function = run_job if executor.parallel else functools.partial(run_job, prepared=prepared)
    failures = execute(
        pending, function, executor, capacity, keep, label=lambda job: job.label, prefix=f"[{replication_id}]"
    )
    if failures:
        raise JobsFailedError(_failure_report(failures, len(pending), store))
    return finished


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
            if job.model_file is None:
                continue
            score = job.model.selection_score
            chosen = best.get(setting)
            if chosen is None or (score is not None and (chosen.score is None or score > chosen.score)):
                best[setting] = BestModel(seed, score, job.model.selected_on, job.model_file, job.model.preprocessing)
    return best


def _save_models(
    replication_id: str,
    finished: dict[tuple[str, int], StoredJob],
    settings: list[str],
    seeds: list[int],
    class_names: list[str],
    record_path: Path,
    provenance: dict,
) -> None:
    """Bundles in FER_MODELS_DIR for `predict` / `demo`: `<id>-<setting>` (the seed of best selection score)
    and, where the replication asks for it, `<id>-<setting>-seed<N>` for every seed."""

    def save(name: str, seed: int, job: StoredJob, chosen_by: str) -> None:
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
            if job.model_file is not None and job.model.keep_every_seed:
                save(f"{replication_id}-{setting}-seed{seed}", seed, job, f"seed {seed}")


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
    used = previous["provenance"].get("dataset_checksum") if previous else None
    if not used or used == checksum:
        return []
    note = f"data checksum {checksum[:12]} differs from {used[:12]}, the latest full record's"
    log.warning(
        "[%s] the data (checksum %s) differs from what the latest full record %s used (%s)",
        replication_id,
        checksum,
        Path(previous["_path"]).name,
        used,
    )
    return [note]


def _job_code(meta: ReplicationMetadata, finished: dict[tuple[str, int], StoredJob], repo_root: Path | None) -> dict:
    """The commits the record's jobs ran at, and `mixed_code` when some ran other code than the tree has now
    (a resumed run after a code change, or code edited while the run went on)."""
    commits = list(dict.fromkeys(job.code.git_commit for job in finished.values()))
    now = files_hash(current_code_files(meta, repo_root))
    mixed = any(job.code.code_hash != now for job in finished.values())
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


def format_rows(meta: ReplicationMetadata, record: dict) -> str:
    """`metric | reported | reproduced (mean ± sd) | band | verdict`, as REPLICATIONS.md asks."""
    lines = [f"{meta.title} — {meta.id} ({record['profile']} profile, data: {record['data']})"]
    width = max([len("setting")] + [len(row["setting"]) for row in record["rows"]])
    lines.append(f"{'setting':<{width}} {'metric':<30} {'reported':>9} {'reproduced':>18} {'band':>17}  verdict")
    for row in record["rows"]:
        proportion = row.get("kind", "proportion") == "proportion"
        reported = _percent_or_value(row.get("reported"), proportion)
        if row.get("mean") is None:
            reproduced = "—"
        else:
            reproduced = f"{_percent_or_value(row['mean'], proportion)} ± {_percent_or_value(row['sd'], proportion)}"
        band = row.get("band")
        band_text = (
            f"[{_percent_or_value(band['low'], proportion)}, {_percent_or_value(band['high'], proportion)}]"
            if band
            else ""
        )
        lines.append(
            f"{row['setting']:<{width}} {row['metric']:<30} {reported:>9} {reproduced:>18} {band_text:>17}  "
            f"{row['verdict']}"
        )
    return "\n".join(lines)
