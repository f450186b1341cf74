"""Where long runs stand, for `fer-replicate progress`: per replication, the job results there are (committed
under `results/<id>/jobs/`, in a `--jobs-dir`, or in the cache), the jobs a full record still waits for and what
each costs, measured from the finished jobs of its setting on each CPU kind; and each training checkpoint's
epochs (a job resumes from its last). A run of hours on a CPU spans sessions and machines; this says where each
one stands without starting anything.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fer_common import paths
from fer_common.jobs import JobKey, JobResultError, jobs_dir, read_job
from fer_common.metadata import FULL_PROFILE, load_metadata
from fer_common.provenance import current_code_files, numbers_code_changes
from fer_common.registry import REPLICATIONS
from fer_common.resume import STATE_FILE, checkpoints_dir, read_npz

BF16_POLICY = "mixed_bfloat16"


@dataclass
class JobGroup:
    """The job results of one key (config, code, data, runtime) in one folder."""

    replication: str
    profile: str
    folder: Path
    key: JobKey
    finished: dict[tuple[str, int], dict] = field(default_factory=dict)  # (setting, seed) -> its provenance
    code_changes: list[str] = field(default_factory=list)  # numbers-layer files changed since (empty: current)
    missing: list[tuple[str, int]] = field(default_factory=list)  # jobs the profile's record still waits for
    problems: list[str] = field(default_factory=list)  # result files that cannot be trusted


@dataclass(frozen=True)
class Checkpoint:
    """One training run's last saved epoch."""

    run_key: str
    epochs_done: int
    stopped: bool  # early stopping ended it: the run only needs its results written
    last_epoch: dict[str, float]  # the history's last values


def _folders(
    results_dir: Path | None, jobs_root: Path | None, replications: Mapping[str, Path]
) -> list[tuple[str, str, Path]]:
    """(replication, profile, folder) of every job folder: committed full runs, then the cache or --jobs-dir."""
    results = Path(results_dir or paths.results_dir())
    found = [(replication, FULL_PROFILE, results / replication / "jobs") for replication in replications]
    for folder in sorted(Path(jobs_root or jobs_dir()).glob("*-*")):
        replication, _, profile = folder.name.rpartition("-")
        if folder.is_dir() and replication in replications:
            found.append((replication, profile, folder))
    return [(replication, profile, folder) for replication, profile, folder in found if folder.is_dir()]


def job_groups(
    results_dir: Path | None = None, jobs_root: Path | None = None, replications: Mapping[str, Path] | None = None
) -> list[JobGroup]:
    """Every folder's job results, grouped by key, with what the profile's record still needs. replications:
    {id: metadata file} (default: the registry's entries)."""
    if replications is None:
        replications = {name: REPLICATIONS.metadata_file(name) for name in REPLICATIONS.ids()}
    groups: list[JobGroup] = []
    for replication, profile, folder in _folders(results_dir, jobs_root, replications):
        meta = load_metadata(replications[replication])
        now = current_code_files(meta)
        by_key: dict[str, JobGroup] = {}
        problems = []
        for path in sorted(folder.glob("*.json")):
            try:
                job = read_job(path)
            except JobResultError as error:
                problems.append(str(error))
                continue
            group = by_key.setdefault(job.key.digest, JobGroup(replication, profile, folder, job.key))
            group.finished[job.setting, job.seed] = job.origin
            group.code_changes = numbers_code_changes(job.code_files, now)
        if problems and not by_key:
            groups.append(JobGroup(replication, profile, folder, JobKey("", "", "", {}), problems=problems))
        for group in by_key.values():
            group.problems = problems
            if profile == FULL_PROFILE or profile in meta.profiles:
                _, seeds = meta.resolve(profile)
                group.missing = [
                    (setting, seed)
                    for setting in meta.settings_for(profile)
                    for seed in seeds
                    if (setting, seed) not in group.finished
                ]
            groups.append(group)
    return groups


def measured_cost(group: JobGroup, setting: str) -> dict[str, float]:
    """{CPU kind: median hours} of the finished jobs of `setting` in the group, summed across resumes."""
    hours: dict[str, list[float]] = defaultdict(list)
    for (name, _), origin in group.finished.items():
        if name == setting and origin.get("wall_time_s") is not None:
            hours[origin.get("cpu_kind") or "unknown CPU"].append(origin["wall_time_s"] / 3600)
    return {kind: statistics.median(values) for kind, values in sorted(hours.items())}


def distinct_jobs(group: JobGroup) -> list[dict]:
    """The origin of each job once: settings that share a job (a replication's `job_groups`) each keep a result
    with that job's seed and measured wall time (saved a moment apart), and its time must be counted once."""
    jobs = {(seed, origin.get("wall_time_s")): origin for (_, seed), origin in group.finished.items()}
    return list(jobs.values())


def checkpoints(root: Path | None = None) -> list[Checkpoint]:
    """Every training checkpoint under `root` (default: the cache's), sorted by run key."""
    found = []
    for state in sorted(Path(root or checkpoints_dir()).glob(f"*/{STATE_FILE}")):
        info, _ = read_npz(state)  # a corrupt file: CheckpointError, naming it
        last = {key: values[-1] for key, values in info["history"].items() if values}
        found.append(Checkpoint(info["run_key"], int(info["epochs_done"]), bool(info["stopped"]), last))
    return found


def _group_lines(group: JobGroup) -> list[str]:
    where = paths.portable(str(group.folder))
    if not group.finished:
        return [f"  {group.replication} ({group.profile}), {where}:", *(f"    refused: {p}" for p in group.problems)]
    runtime = group.key.runtime
    code = "current code" if not group.code_changes else f"other code ({', '.join(group.code_changes[:3])} changed)"
    lines = [
        f"  {group.replication} ({group.profile}), {where}, key {group.key.digest}: {code}, "
        f"{runtime.get('policy')}, {runtime.get('threads')} thread(s)"
    ]
    if group.missing:
        for (setting, seed), origin in sorted(group.finished.items()):
            hours = origin["wall_time_s"] / 3600
            lines.append(
                f"    done     {setting} seed {seed}: {hours:.2f} h on {origin.get('cpu_kind')} "
                f"({origin.get('git_commit', '')[:7]}, {origin.get('finished_utc')})"
            )
    else:  # a complete run: one line, not one per job
        jobs = distinct_jobs(group)
        hours = sum(origin["wall_time_s"] for origin in jobs) / 3600
        kinds = ", ".join(sorted({str(origin.get("cpu_kind")) for origin in jobs}))
        lines.append(f"    done     all {len(group.finished)} results of {len(jobs)} jobs: {hours:.2f} h on {kinds}")
    needs = (
        "a bf16 CPU (AMX or AVX512-BF16; `--precision auto` there)"
        if runtime.get("policy") == BF16_POLICY
        else "float32 (`--precision float32`, any CPU)"
    )
    for setting, seed in group.missing:
        cost = measured_cost(group, setting)
        estimate = ", ".join(f"about {hours:.1f} h on {kind}" for kind, hours in cost.items()) or "not measured yet"
        lines.append(f"    missing  {setting} seed {seed}: {estimate}; to match this key it needs {needs}")
    command = f"fer-replicate run {group.replication}"
    command += "" if group.profile == FULL_PROFILE else f" --profile {group.profile}"
    if group.folder.parent not in (jobs_dir(), group.folder.parent.parent / group.replication):
        command += f" --jobs-dir {paths.portable(str(group.folder.parent))}"
    if runtime.get("policy") == BF16_POLICY:
        command += " --precision auto"
    if group.missing:
        seeds = ",".join(str(seed) for seed in sorted({seed for _, seed in group.missing}))
        lines.append(f"    next: {command} --seeds {seeds} --threads {runtime.get('threads')} (then keep {where})")
    elif group.code_changes:
        lines.append("    its code has changed since: a run now trains every job again")
    else:
        lines.append(f"    complete: `{command}` assembles the record without training")
    lines.extend(f"    refused: {problem}" for problem in group.problems)
    return lines


def progress_text(groups: list[JobGroup], saved: list[Checkpoint]) -> str:
    if not groups and not saved:
        return "No job results and no training checkpoints: nothing is under way."
    lines = []
    if groups:
        lines.append("Job results (a run whose key matches reuses them, on any machine):")
        for group in groups:
            lines.extend(_group_lines(group))
    if saved:
        lines.append("Training checkpoints in this machine's cache (each job resumes from its last epoch):")
        for checkpoint in saved:
            state = f"{checkpoint.epochs_done} epochs done" + (", stopped early" if checkpoint.stopped else "")
            numbers = ", ".join(
                f"{key} {value:.4f}" for key, value in checkpoint.last_epoch.items() if key.startswith("val_")
            )
            lines.append(f"  {checkpoint.run_key}: {state}" + (f" ({numbers})" if numbers else ""))
    return "\n".join(lines)
