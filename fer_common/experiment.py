"""Run a replication from its metadata: jobs (setting x seed) -> metrics -> band rows -> one record.

A replication module (`replications/<id>/replication.py`) provides only what is its paper's own:

    prepare(config) -> Prepared          # loads its data; raises DatasetError when missing
    run_seed(prepared, setting, seed, config) -> SeedOutcome

and, when it needs them:

    JOB_GROUPS = ((setting, ...), ...)   # settings that share work: one job runs them for a seed
    finalize(prepared, settings, config) # after every job, in the runner's process: adds what spans seeds
                                         # to {setting: {"seeds": {seed: result}}} (e.g. a pooled audit)

Jobs are independent: each may run in another process or on another machine (see executors.py), each
starts from `configure_runtime(seed)`, and nothing but its returned result reaches the record. Everything
else (seeding, metrics, bands, provenance, records, plots) happens here, once.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fer_common import metrics, plots, records
from fer_common.bundles import Preprocessing, models_dir, save_bundle_file
from fer_common.errors import DatasetError, JobsFailedError, MetadataError
from fer_common.executors import Capacity, ExecutorOptions, TaskFailure, execute, plan_capacity
from fer_common.jobs import JobResult, JobSpec, JobStore, StoredJob, job_key, plan_jobs
from fer_common.metadata import ReplicationMetadata, load_metadata
from fer_common.train import RuntimeOptions, configure_runtime


@dataclass
class Prepared:
    """What a replication's `prepare` hands to each job: its data and where the data came from."""

    data: object
    class_names: list[str]
    checksum: str
    data_kind: str  # "real" | "proxy"
    description: str = ""


@dataclass
class SeedOutcome:
    """One job's raw result: test labels and probabilities, curves, and paper-specific numbers."""

    y_true: np.ndarray
    probabilities: np.ndarray
    history: dict[str, list[float]] = field(default_factory=dict)
    extras: dict[str, float] = field(default_factory=dict)  # scalar metrics beside the standard ones
    details: dict = field(default_factory=dict)  # JSON-able detail (folds, selected epoch, ...)
    # The trained model and its input preprocessing, when the replication offers it to `predict` / `demo`:
    # the runner saves the best seed's model of each setting as the bundle `<id>-<setting>`.
    model: Any = None
    preprocessing: Preprocessing | None = None


@dataclass
class BestModel:
    seed: int
    accuracy: float
    scored_on: str
    model_file: Path
    preprocessing: Preprocessing


def replication_module(replication_id: str):
    return importlib.import_module(f"replications.{replication_id}.replication")


def evaluate_outcome(outcome: SeedOutcome, class_names: list[str]) -> dict:
    """Standard metrics for one job, in the record's per-seed format."""
    report = metrics.classification_report(outcome.y_true, outcome.probabilities, class_names)
    flat = metrics.flatten_metrics(report, class_names)
    flat.update({key: float(value) for key, value in outcome.extras.items()})
    return {"metrics": flat, "report": report, "history": outcome.history, "extras": outcome.details}


def summarize_setting(seed_results: dict[str, dict]) -> dict[str, dict]:
    """Mean, sd and per-seed values of every scalar metric over the seeds of one setting."""
    keys = sorted({key for result in seed_results.values() for key in result["metrics"]})
    summary = {}
    for key in keys:
        values = [result["metrics"][key] for result in seed_results.values() if result["metrics"].get(key) is not None]
        if values:
            summary[key] = metrics.summarize(values)
    return summary


# --- one job, wherever it runs ------------------------------------------------------------------------

# The prepared data of the run this process works for: a worker prepares once and serves many jobs.
_prepared_here: dict[tuple[str, str, str], Prepared] = {}


def _prepared_key(replication_id: str, config: dict, checksum: str) -> tuple[str, str, str]:
    return replication_id, records.config_hash(config), checksum


def _prepared_for(spec: JobSpec) -> Prepared:
    key = _prepared_key(spec.replication_id, spec.config, spec.data_checksum)
    if key not in _prepared_here:
        _prepared_here.clear()  # one run's data at a time
        # Thread pools can only be sized before TensorFlow's first op, which `prepare` may run.
        configure_runtime(spec.seed, spec.options)
        prepared = replication_module(spec.replication_id).prepare(spec.config)
        if prepared.checksum != spec.data_checksum:
            raise DatasetError(
                f"{spec.replication_id}: this worker's data (checksum {prepared.checksum[:12]}) is not the data the "
                f"run started with ({spec.data_checksum[:12]}); point FER_DATA_DIR at the same data on every machine."
            )
        _prepared_here[key] = prepared
    return _prepared_here[key]


def _model_file(outcome: SeedOutcome, setting: str) -> bytes | None:
    """The trained model as the bytes of a .keras file: it travels to the runner, which may not share a disk."""
    if outcome.model is None:
        return None
    if outcome.preprocessing is None:
        raise ValueError(f"setting {setting!r} returned a model without its preprocessing")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        outcome.model.save(path)
        return path.read_bytes()


def run_job(spec: JobSpec) -> list[JobResult]:
    """Run one job (in this process or a worker): each of its settings from `configure_runtime(seed)`, so its
    numbers do not depend on what the process ran before."""
    prepared = _prepared_for(spec)
    module = replication_module(spec.replication_id)
    results = []
    for setting in spec.settings:
        started = time.perf_counter()
        configure_runtime(spec.seed, spec.options)
        outcome = module.run_seed(prepared, setting, spec.seed, spec.config)
        result = evaluate_outcome(outcome, prepared.class_names)
        result["wall_time_s"] = round(time.perf_counter() - started, 2)
        model_file = _model_file(outcome, setting)
        results.append(
            JobResult(
                setting=setting,
                seed=spec.seed,
                result=result,
                y_true=outcome.y_true,
                probabilities=outcome.probabilities,
                model_file=model_file,
                preprocessing=outcome.preprocessing if model_file is not None else None,
            )
        )
    return results


# --- the run ------------------------------------------------------------------------------------------


def run_replication(
    replication_id: str,
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
) -> tuple[dict, Path | None]:
    """Run every setting x seed of a replication, check the bands and write one record.

    config_overrides (e.g. `weights: none` from the command line) must name keys the metadata's config
    has; they are part of the recorded config and its hash. executor: where the jobs run (default: here,
    one after another). Each finished job is kept in `jobs_root` (default `<cache>/jobs`) until the run
    ends, so a re-run of an interrupted or failed run reuses it; JobsFailedError when jobs still fail after
    their retries (no record then).
    """
    meta = load_metadata(replication_id)
    config, default_seeds = meta.resolve(profile)
    for key, value in (config_overrides or {}).items():
        if key not in config:
            raise MetadataError(f"{meta.id} has no config key {key!r} to override; its keys: {', '.join(config)}")
        config[key] = value
    seeds = list(seeds) if seeds else list(default_seeds)
    executor = executor or ExecutorOptions()
    module = replication_module(replication_id)
    started = time.perf_counter()
    try:
        prepared = module.prepare(config)
    except DatasetError as error:
        if meta.dataset.data != "missing":
            raise
        return _not_run(meta, profile, config, seeds, error, results_dir, write, command)

    settings_run = meta.settings_for(profile)
    planned = plan_jobs(settings_run, seeds, getattr(module, "JOB_GROUPS", ()))
    capacity = plan_capacity(executor, (options or RuntimeOptions()).threads, len(planned))
    job_options = replace(options or RuntimeOptions(), threads=capacity.threads)
    # Provenance is taken before the jobs: it must describe the code that ran, not the tree at the end.
    provenance = records.collect_provenance(
        meta,
        config,
        seeds,
        prepared.checksum,
        0.0,
        options=job_options if executor.parallel else options,
        command=command,
    )
    if executor.parallel:
        provenance["executor"] = {"kind": executor.kind, "workers": capacity.workers}
        _describe_capacity(meta.id, executor, capacity)
    store = JobStore.for_run(meta.id, profile, job_key(provenance, job_options), jobs_root)
    jobs = [JobSpec(meta.id, config, group, seed, job_options, prepared.checksum) for group, seed in planned]
    finished = _run_jobs(meta.id, jobs, store, executor, capacity, prepared)

    settings: dict[str, dict] = {
        setting: {"seeds": {str(seed): finished[setting, seed].result for seed in seeds}} for setting in settings_run
    }
    if hasattr(module, "finalize"):
        module.finalize(prepared, settings, config)
    for setting_result in settings.values():
        setting_result["summary"] = summarize_setting(setting_result["seeds"])

    summaries = {setting: result["summary"] for setting, result in settings.items()}
    rows = records.build_rows(meta, summaries, prepared.data_kind)
    _add_row_notes(rows, settings)
    provenance["wall_time_s"] = round(time.perf_counter() - started, 1)
    record = records.build_record(meta, profile, prepared.data_kind, settings, rows, provenance)
    path = None
    if write:
        path = records.write_record(record, results_dir)
        if make_plots:
            first_seeds = {setting: finished[setting, seeds[0]] for setting in settings_run}
            _write_figures(path, meta, first_seeds, prepared.class_names)
        _save_best_models(meta.id, _best_models(finished, settings_run, seeds), prepared.class_names, path, provenance)
    store.remove()  # the record holds it all now
    print_rows(meta, record)
    return record, path


def _describe_capacity(replication_id: str, executor: ExecutorOptions, capacity: Capacity) -> None:
    workers = f"{capacity.workers} at a time" if capacity.workers else "as many at a time as the cluster takes"
    print(
        f"[{replication_id}] jobs on {executor.kind} ({workers}), {capacity.threads} TensorFlow thread(s) each; "
        f"the numbers equal a sequential run's with --threads {capacity.threads}",
        flush=True,
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
                print(f"[{replication_id}] reusing job setting={setting} seed={job.seed} from {store.folder}")
                finished[setting, job.seed] = stored
        if missing:
            pending.append(replace(job, settings=tuple(missing)))

    def keep(job: JobSpec, results: list[JobResult]) -> None:
        for result in results:
            finished[result.setting, result.seed] = store.save(result)
            wall_time = result.result["wall_time_s"]
            accuracy = result.result["metrics"]["accuracy"]
            print(
                f"[{replication_id}]   setting={result.setting} seed={result.seed}: accuracy {accuracy:.4f} "
                f"({wall_time:.0f}s)",
                flush=True,
            )

    if pending and not executor.parallel:
        # Jobs run in this process: they use the data prepared above instead of preparing it again.
        _prepared_here[_prepared_key(replication_id, pending[0].config, prepared.checksum)] = prepared
    try:
        failures = execute(
            pending, run_job, executor, capacity, keep, label=lambda job: job.label, prefix=f"[{replication_id}]"
        )
    finally:
        _prepared_here.clear()
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
    """Per setting, the seed of highest accuracy (the first on ties) among the jobs that kept a model."""
    best: dict[str, BestModel] = {}
    for setting in settings:
        for seed in seeds:
            job = finished[setting, seed]
            if job.model_file is None:
                continue
            accuracy = job.result["metrics"]["accuracy"]
            if setting not in best or accuracy > best[setting].accuracy:
                scored_on = job.result["extras"].get("scored_set", "the replication's test set")
                best[setting] = BestModel(seed, accuracy, scored_on, job.model_file, job.preprocessing)
    return best


def _save_best_models(
    replication_id: str, best: dict[str, BestModel], class_names: list[str], record_path: Path, provenance: dict
) -> None:
    """`<id>-<setting>.keras` + `.json` in FER_MODELS_DIR: the best seed of each setting, for `predict` / `demo`."""
    for setting, chosen in best.items():
        saved = save_bundle_file(
            chosen.model_file,
            models_dir() / f"{replication_id}-{setting}",
            class_names=class_names,
            preprocessing=chosen.preprocessing,
            source={
                "replication": replication_id,
                "setting": setting,
                "seed": chosen.seed,
                "accuracy": chosen.accuracy,
                "scored_on": chosen.scored_on,
                "record": str(record_path),
                "git_commit": provenance.get("git_commit"),
            },
        )
        print(f"[{replication_id}] model saved: {saved} (best seed {chosen.seed}, accuracy {chosen.accuracy:.4f})")


def _add_row_notes(rows: list[dict], settings: dict[str, dict]) -> None:
    """A job can qualify its setting's rows (e.g. "ResNet18 from scratch: no ImageNet weights")."""
    for row in rows:
        seeds = settings.get(row["setting"], {}).get("seeds", {})
        notes = sorted({result["extras"].get("row_note", "") for result in seeds.values()} - {""})
        if notes:
            row["note"] = "; ".join(filter(None, [row.get("note", ""), *notes]))


def _not_run(meta, profile, config, seeds, error, results_dir, write, command):
    message = f"{meta.missing or ''}\n\n{error}".strip()
    print(f"[{meta.id}] not run: {message}", file=sys.stderr)
    rows = records.build_rows(meta, {}, "missing")
    provenance = records.collect_provenance(meta, config, seeds, "", 0.0, command=command)
    record = records.build_record(meta, profile, "missing", {}, rows, provenance, missing=message)
    path = records.write_record(record, results_dir) if write else None
    print_rows(meta, record)
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


def print_rows(meta: ReplicationMetadata, record: dict) -> None:
    """`metric | reported | reproduced (mean ± sd) | band | verdict`, as REPLICATIONS.md asks."""
    print(f"\n{meta.title} — {meta.id} ({record['profile']} profile, data: {record['data']})")
    width = max([len("setting")] + [len(row["setting"]) for row in record["rows"]])
    print(f"{'setting':<{width}} {'metric':<30} {'reported':>9} {'reproduced':>18} {'band':>17}  verdict")
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
        print(
            f"{row['setting']:<{width}} {row['metric']:<30} {reported:>9} {reproduced:>18} {band_text:>17}  "
            f"{row['verdict']}"
        )
    print()
