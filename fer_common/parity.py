"""Parity: a faster run is only acceptable if it gives the same science.

A replication declares its check as `Replication.parity` (profile, settings, metric, reference). Two today:

`fer-replicate bench --parity chen` runs Chen's `ci` profile (the paper's random split, the full protocol:
5 folds, up to 200 epochs with early stopping) with the optimised switches for seeds 0, 1, 2 and compares
each seed's test accuracy with the float32 values of the committed full record (results/chen/full-*.json).

`fer-replicate bench --parity neamtiu --epochs 10` trains Neamtiu (`protocols` profile, all of FER2013) for
10 epochs per seed, 3 seeds in float32 (the suite's defaults) and 3 with the optimised switches, and compares
the clean protocol's PrivateTest accuracy (and the source protocol's beside it).

Rule: the optimised runs keep the science when the mean of their values lies within the float32 seed
spread, mean +- 2 sd (the sd over seeds). The per-seed values, their paired differences (same seed, same
split and initial weights) and the wall times of both ways are recorded next to the verdict in
`results/bench/parity-<replication>-<UTC time>-<commit>.json`.
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from fer_common import paths, provenance, records
from fer_common.contract import Parity
from fer_common.errors import FerError
from fer_common.metrics import summarize
from fer_common.schema import Record
from fer_common.train import RuntimeOptions, describe_options

log = logging.getLogger(__name__)

SPREAD_SDS = 2.0
SAME_SCIENCE, DIFFERENT, UNDETERMINED = "same science", "different", "undetermined"


def parity_replications() -> list[str]:
    """The ids of the replications that declare a parity check, in registry order."""
    from fer_common.registry import REPLICATIONS

    return [replication_id for replication_id in REPLICATIONS.ids() if REPLICATIONS.get(replication_id).parity]


def parity_of(replication_id: str) -> Parity:
    """The replication's declared parity check; FerError naming those that have one when it has none."""
    from fer_common.registry import REPLICATIONS

    spec = REPLICATIONS.get(replication_id).parity
    if spec is None:
        raise FerError(
            f"{replication_id} declares no parity check; these do: {', '.join(parity_replications()) or 'none'}"
        )
    return spec


def spread_check(reference: list[float], candidate: list[float], sds: float = SPREAD_SDS) -> dict:
    """Is the candidates' mean within the reference's mean +- `sds` sd? Undetermined with < 2 reference seeds."""
    base, other = summarize(reference), summarize(candidate)
    result = {
        "reference": base,
        "optimised": other,
        "sds": sds,
        "low": None,
        "high": None,
        "difference_of_means": None,
        "verdict": UNDETERMINED,
    }
    if base["mean"] is None or other["mean"] is None:
        return result
    result["difference_of_means"] = other["mean"] - base["mean"]
    if base["n"] < 2:
        return result
    result["low"], result["high"] = base["mean"] - sds * base["sd"], base["mean"] + sds * base["sd"]
    inside = result["low"] <= other["mean"] <= result["high"]
    result["verdict"] = SAME_SCIENCE if inside else DIFFERENT
    return result


def seed_values(record: Record, setting: str, metric: str) -> dict[int, float]:
    """{seed: value} of one metric of one setting of a record."""
    seeds = record.seeds_of(setting)
    return {int(seed): entry.metrics[metric] for seed, entry in seeds.items() if metric in entry.metrics}


def seed_wall_times(record: Record) -> dict[int, float]:
    """{seed: seconds} summed over the record's settings (a Neamtiu seed trains once for both protocols)."""
    times: dict[int, float] = {}
    for setting in record.settings.values():
        for seed, entry in setting.seeds.items():
            if entry.wall_time_s is not None:
                times[int(seed)] = times.get(int(seed), 0.0) + float(entry.wall_time_s)
    return times


def committed_reference(replication: str, path: Path | str | None = None) -> Record:
    """The float32 record parity compares with: `path`, else the newest full record of the replication."""
    record = records.load_record(path) if path else records.latest_record(replication, "full", paths.results_dir())
    if record is None:
        raise FerError(
            f"no full record of {replication} in {paths.results_dir() / replication} to compare with; "
            "run `fer-replicate run " + replication + "` first or pass the record"
        )
    runtime = record.provenance.runtime or {}
    ran_as = runtime.get("policy", runtime.get("precision", "float32"))  # records before `policy`: the switch
    if ran_as != "float32":
        raise FerError(f"{record.path} was not a float32 run (precision {ran_as})")
    return record


def _run(
    replication: str, spec: Parity, seeds: list[int], options: RuntimeOptions, overrides: dict, command: str
) -> Record:
    from fer_common.registry import REPLICATIONS
    from fer_common.runner import run_replication

    record, _ = run_replication(
        REPLICATIONS.get(replication),
        spec.profile,
        seeds=seeds,
        options=options,
        write=False,
        make_plots=False,
        command=command,
        config_overrides=overrides or None,
    )
    return record


def _way(record: Record, spec: Parity, options: dict | None, source: str) -> dict:
    return {
        "source": source,
        "options": options,
        "values": {setting: seed_values(record, setting, spec.metric) for setting in spec.settings},
        "wall_time_s": seed_wall_times(record),
        "config_hash": record.provenance.config_hash,
    }


def run_parity(
    replication: str,
    *,
    seeds: list[int] | None = None,
    epochs: int | None = None,
    config_overrides: dict | None = None,
    optimised: RuntimeOptions | None = None,
    reference_record: Path | str | None = None,
    output_dir: Path | None = None,
    write: bool = True,
    command: str | None = None,
) -> tuple[dict, Path | None]:
    """Run the optimised way (and, for a "run" reference, the float32 way) of the replication's declared parity
    check and compare; returns (result, path). `format_parity(result)` gives the report.

    config_overrides: keys of the replication's config to change (a smoke test uses tiny epochs or subsets);
    the result says so, and a comparison with a committed record of another config is only a smoke test.
    """
    from fer_common.bench import OPTIMISED_OPTIONS
    from fer_common.records import write_measurement

    spec = parity_of(replication)
    optimised = optimised or OPTIMISED_OPTIONS
    seeds = list(seeds) if seeds else list(spec.default_seeds)
    overrides = {**spec.config_overrides, **(config_overrides or {})}
    if epochs is not None or spec.default_epochs is not None:
        if spec.default_epochs is None:
            raise FerError(f"{replication} parity runs the full protocol (early stopping decides the epochs)")
        overrides.setdefault("epochs", epochs or spec.default_epochs)
    command = command or shlex.join(sys.argv)
    started = time.perf_counter()
    notes = []
    if spec.reference == "record":
        reference_source = committed_reference(replication, reference_record)
        reference = _way(reference_source, spec, reference_source.provenance.runtime, str(reference_source.path))
        notes.append(
            "float32 wall times are the committed record's (another day, other load on the machine): the speedup "
            "is indicative only"
        )
    else:
        log.info("[parity] %s: float32 (the suite's defaults), seeds %s", replication, seeds)
        baseline = _run(replication, spec, seeds, RuntimeOptions(), overrides, command)
        reference = _way(baseline, spec, describe_options(RuntimeOptions()), "float32 run here")
    log.info("[parity] %s: optimised (%s), seeds %s", replication, describe_options(optimised)["policy"], seeds)
    candidate_record = _run(replication, spec, seeds, optimised, overrides, command)
    candidate = _way(candidate_record, spec, describe_options(optimised), "optimised run here")
    if reference["config_hash"] != candidate["config_hash"]:
        notes.append(
            "the reference was run with another config than the optimised run (config_overrides): "
            "the comparison is a smoke test, not evidence"
        )
    comparisons = {}
    for setting in spec.settings:
        base, other = reference["values"][setting], candidate["values"][setting]
        comparison = spread_check(list(base.values()), [other[seed] for seed in seeds if seed in other])
        comparison["paired_differences"] = {
            seed: other[seed] - base[seed] for seed in seeds if seed in base and seed in other
        }
        comparisons[setting] = comparison
    result = {
        "kind": "fer-replicate parity",
        "schema_version": 1,
        "replication": replication,
        "profile": spec.profile,
        "metric": spec.metric,
        "seeds": seeds,
        "config_overrides": overrides,
        "rule": f"optimised mean within the float32 mean +- {SPREAD_SDS:g} sd over seeds",
        "reference": reference,
        "optimised": candidate,
        "comparisons": comparisons,
        "verdict": comparisons[spec.settings[0]]["verdict"],
        "speedup": _speedup(reference["wall_time_s"], candidate["wall_time_s"], seeds),
        "notes": notes,
        "provenance": provenance.machine_provenance(command),
    }
    result["provenance"]["wall_time_s"] = round(time.perf_counter() - started, 1)
    return result, write_measurement(result, f"parity-{replication}", output_dir) if write else None


def _speedup(reference: dict[int, float], candidate: dict[int, float], seeds: list[int]) -> float | None:
    """Mean float32 wall time / mean optimised wall time over the seeds both have (None if none)."""
    shared = [seed for seed in seeds if seed in reference and seed in candidate]
    if not shared:
        return None
    return float(np.mean([reference[seed] for seed in shared]) / np.mean([candidate[seed] for seed in shared]))


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def format_parity(result: dict) -> str:
    lines = [
        "",
        f"Parity, {result['replication']} ({result['profile']}, {result['metric']}, seeds {result['seeds']}; "
        f"rule: {result['rule']})",
        f"  float32:   {result['reference']['source']}",
        f"  optimised: {result['optimised']['options']['policy']}",
    ]
    for setting, comparison in result["comparisons"].items():
        base, other = comparison["reference"], comparison["optimised"]
        reference_values = ", ".join(_percent(value) for value in base["values"])
        optimised_values = ", ".join(_percent(value) for value in other["values"])
        indent = " " * len(setting)
        lines += [
            f"  {setting}: float32 {_percent(base['mean'])} +- {_percent(base['sd'])} ({reference_values})",
            f"  {indent}  optimised {_percent(other['mean'])} +- {_percent(other['sd'])} ({optimised_values})",
            f"  {indent}  spread [{_percent(comparison['low'])}, {_percent(comparison['high'])}]: "
            + comparison["verdict"],
        ]
    speedup = result["speedup"]
    if speedup is not None:
        lines.append(f"  wall time per seed, float32 / optimised: {speedup:.2f}x")
    lines += [f"  note: {note}" for note in result["notes"]]
    return "\n".join(lines)
