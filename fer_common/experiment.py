"""Run a replication from its metadata: jobs (setting x seed) -> metrics -> band rows -> one record.

A replication module (`replications/<id>/replication.py`) provides only what is its paper's own:

    prepare(config) -> Prepared          # loads its data; raises DatasetError when missing
    run_seed(prepared, setting, seed, config) -> SeedOutcome

Everything else (seeding, metrics, bands, provenance, records, plots) happens here, once.
"""

from __future__ import annotations

import importlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fer_common import metrics, plots, records
from fer_common.bundles import Preprocessing, models_dir, save_bundle
from fer_common.errors import DatasetError, MetadataError
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
    model: Any
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
        values = [
            result["metrics"][key]
            for result in seed_results.values()
            if result["metrics"].get(key) is not None
        ]
        if values:
            summary[key] = metrics.summarize(values)
    return summary


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
) -> tuple[dict, Path | None]:
    """Run every setting x seed of a replication, check the bands and write one record.

    config_overrides (e.g. `weights: none` from the command line) must name keys the metadata's config
    has; they are part of the recorded config and its hash.
    """
    meta = load_metadata(replication_id)
    config, default_seeds = meta.resolve(profile)
    for key, value in (config_overrides or {}).items():
        if key not in config:
            raise MetadataError(
                f"{meta.id} has no config key {key!r} to override; its keys: {', '.join(config)}"
            )
        config[key] = value
    seeds = list(seeds) if seeds else list(default_seeds)
    module = replication_module(replication_id)
    started = time.perf_counter()
    try:
        prepared = module.prepare(config)
    except DatasetError as error:
        if meta.dataset.data != "missing":
            raise
        return _not_run(meta, profile, config, seeds, error, results_dir, write, command)

    # Provenance is taken before the jobs: it must describe the code that ran, not the tree at the end.
    provenance = records.collect_provenance(
        meta, config, seeds, prepared.checksum, 0.0, options=options, command=command
    )
    settings: dict[str, dict] = {}
    outcomes: dict[str, SeedOutcome] = {}
    best_models: dict[str, BestModel] = {}
    jobs = [(setting, seed) for setting in meta.settings_for(profile) for seed in seeds]
    for index, (setting, seed) in enumerate(jobs, start=1):
        print(f"[{meta.id}] job {index}/{len(jobs)}: setting={setting} seed={seed}", flush=True)
        job_started = time.perf_counter()
        configure_runtime(seed, options or RuntimeOptions())
        outcome = module.run_seed(prepared, setting, seed, config)
        result = evaluate_outcome(outcome, prepared.class_names)
        result["wall_time_s"] = round(time.perf_counter() - job_started, 2)
        settings.setdefault(setting, {"seeds": {}})["seeds"][str(seed)] = result
        _keep_if_best(best_models, setting, seed, outcome, result["metrics"]["accuracy"])
        outcome.model = None  # only the best model of a setting stays in memory
        outcomes.setdefault(setting, outcome)  # the first seed's predictions feed the figures
        print(
            f"[{meta.id}]   accuracy {result['metrics']['accuracy']:.4f} ({result['wall_time_s']:.0f}s)",
            flush=True,
        )
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
            _write_figures(path, meta, outcomes, settings, prepared.class_names)
        _save_best_models(meta.id, best_models, prepared.class_names, path, provenance)
    print_rows(meta, record)
    return record, path


def _keep_if_best(best: dict[str, BestModel], setting: str, seed: int, outcome: SeedOutcome, accuracy: float) -> None:
    if outcome.model is None:
        return
    if outcome.preprocessing is None:
        raise ValueError(f"setting {setting!r} returned a model without its preprocessing")
    if setting not in best or accuracy > best[setting].accuracy:
        scored_on = outcome.details.get("scored_set", "the replication's test set")
        best[setting] = BestModel(seed, accuracy, scored_on, outcome.model, outcome.preprocessing)


def _save_best_models(
    replication_id: str, best: dict[str, BestModel], class_names: list[str], record_path: Path, provenance: dict
) -> None:
    """`<id>-<setting>.keras` + `.json` in FER_MODELS_DIR: the best seed of each setting, for `predict` / `demo`."""
    for setting, chosen in best.items():
        saved = save_bundle(
            chosen.model,
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


def _write_figures(record_path: Path, meta: ReplicationMetadata, outcomes, settings, class_names) -> None:
    """Training curves, confusion matrix, ROC and reliability diagram per setting, beside the record."""
    folder = record_path.with_suffix("")
    folder.mkdir(exist_ok=True)
    for setting, outcome in outcomes.items():
        first_seed = next(iter(settings[setting]["seeds"].values()))
        title = f"{meta.id} · {setting}"
        if outcome.history:
            plots.plot_training_curves(outcome.history, folder / f"{setting}-curves.png", title)
        plots.plot_confusion_matrix(
            np.asarray(first_seed["report"]["confusion_matrix"]),
            class_names,
            folder / f"{setting}-confusion.png",
            title,
        )
        plots.plot_roc_curves(
            outcome.y_true, outcome.probabilities, class_names, folder / f"{setting}-roc.png", title
        )
        plots.plot_reliability(
            outcome.y_true, outcome.probabilities, folder / f"{setting}-reliability.png", title
        )


def _percent_or_value(value, proportion: bool) -> str:
    if value is None:
        return "—"
    return f"{100 * value:.1f}%" if proportion else f"{value:.4f}"


def print_rows(meta: ReplicationMetadata, record: dict) -> None:
    """`metric | reported | reproduced (mean ± sd) | band | verdict`, as REPLICATIONS.md asks."""
    print(f"\n{meta.title} — {meta.id} ({record['profile']} profile, data: {record['data']})")
    print(f"{'setting':<16} {'metric':<30} {'reported':>9} {'reproduced':>18} {'band':>17}  verdict")
    for row in record["rows"]:
        proportion = row.get("kind", "proportion") == "proportion"
        reported = _percent_or_value(row.get("reported"), proportion)
        if row.get("mean") is None:
            reproduced = "—"
        else:
            reproduced = (
                f"{_percent_or_value(row['mean'], proportion)} ± {_percent_or_value(row['sd'], proportion)}"
            )
        band = row.get("band")
        band_text = (
            f"[{_percent_or_value(band['low'], proportion)}, {_percent_or_value(band['high'], proportion)}]"
            if band
            else ""
        )
        print(
            f"{row['setting']:<16} {row['metric']:<30} {reported:>9} {reproduced:>18} {band_text:>17}  {row['verdict']}"
        )
    print()
