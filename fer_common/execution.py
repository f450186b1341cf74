"""One job, wherever it runs: the runtime set up from its seed, the replication's own work, and the scoring
of its predictions into the record's per-seed entry. The numbers layer's door for the runner: a record's code
hash starts here (see `metadata.NUMBERS_LAYER`), so the runner that plans, stores and records jobs can change
without making a record stale."""

from __future__ import annotations

import functools
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from fer_common import metrics
from fer_common.contract import Prepared, Replication, RunKeys, SeedOutcome
from fer_common.data.integrity import data_audit
from fer_common.errors import DatasetError
from fer_common.job_types import JobResult, JobSpec
from fer_common.metadata import canonical_json
from fer_common.train import RuntimeOptions, configure_runtime


def evaluate_outcome(outcome: SeedOutcome, class_names: list[str]) -> dict:
    """Standard metrics for one setting of a job, in the record's per-seed format."""
    report = metrics.classification_report(outcome.y_true, outcome.probabilities, class_names)
    flat = metrics.flatten_metrics(report, class_names)
    flat.update({key: float(value) for key, value in outcome.metrics.items()})
    return {
        "metrics": flat,
        "report": report,
        "history": outcome.history,
        "scored_set": outcome.scored_set,
        "denominators": dict(outcome.denominators),
        "notes": list(outcome.notes),
        "details": outcome.details,
    }


@functools.lru_cache(maxsize=1)
def _prepare_once(
    replication: Replication, config_json: str, checksum: str, options: RuntimeOptions, allow_modified_data: bool
) -> Prepared:
    """A worker prepares a run's data once and serves all of that run's jobs from it."""
    import json

    # Thread pools can only be sized before TensorFlow's first op, which `prepare` may run.
    configure_runtime(0, options)
    with data_audit(allow_modified_data):
        prepared = replication.prepare(json.loads(config_json))
    if prepared.checksum != checksum:
        raise DatasetError(
            f"{replication.id}: this worker's data (checksum {prepared.checksum[:12]}) is not the data the "
            f"run started with ({checksum[:12]}); point FER_DATA_DIR at the same data on every machine."
        )
    return prepared


def _model_file(outcome: SeedOutcome) -> bytes | None:
    """The trained model as the bytes of a .keras file: it travels to the runner, which may not share a disk."""
    if outcome.model is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        outcome.model.model.save(path)
        return path.read_bytes()


def run_job(spec: JobSpec, prepared: Prepared | None = None) -> list[JobResult]:
    """Run one job (in this process or a worker) from `configure_runtime(seed)`, so its numbers do not
    depend on what the process ran before. `prepared`: the run's data where the caller has it already."""
    if prepared is None:
        prepared = _prepare_once(
            spec.replication, canonical_json(spec.config), spec.data_checksum, spec.options, spec.allow_modified_data
        )
    started = time.perf_counter()
    configure_runtime(spec.seed, spec.options)
    run_keys = RunKeys(spec.replication.id, spec.seed, spec.data_checksum, spec.code_hash, spec.options)
    outcomes = spec.replication.run_job(prepared, spec.settings, spec.seed, spec.config, spec.options, run_keys)
    if set(outcomes) != set(spec.settings):
        raise ValueError(f"{spec.replication.id}: job {spec.label} returned settings {sorted(outcomes)}")
    wall_time = round(time.perf_counter() - started, 2)
    results = []
    for setting in spec.settings:
        outcome = outcomes[setting]
        result = evaluate_outcome(outcome, prepared.class_names)
        result["wall_time_s"] = wall_time
        model_file = _model_file(outcome)
        results.append(
            JobResult(
                setting=setting,
                seed=spec.seed,
                result=result,
                y_true=outcome.y_true,
                probabilities=outcome.probabilities,
                model_file=model_file,
                model=None if outcome.model is None else replace(outcome.model, model=None),
            )
        )
    return results
