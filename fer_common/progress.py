"""What unfinished runs have left in the cache, for `fer-replicate progress`: the finished jobs of each run
configuration (reused when the same command runs again) and each training checkpoint's epochs (a run resumes
from its last). A run of hours on a CPU spans sessions; this says where each one stands without starting it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fer_common.jobs import jobs_dir
from fer_common.resume import STATE_FILE, checkpoints_dir, read_npz


@dataclass(frozen=True)
class UnfinishedRun:
    """A run configuration's job folder: the jobs it finished, as `<setting>-seed<N>`."""

    replication: str
    profile: str
    folder: Path
    finished_jobs: list[str]


@dataclass(frozen=True)
class Checkpoint:
    """One training run's last saved epoch."""

    run_key: str
    epochs_done: int
    stopped: bool  # early stopping ended it: the run only needs its results written
    last_epoch: dict[str, float]  # the history's last values


def unfinished_runs(root: Path | None = None) -> list[UnfinishedRun]:
    """Every job folder under `root` (default: the cache's), sorted; a run that wrote its record has none."""
    folder = Path(root or jobs_dir())
    runs = []
    for store in sorted(path for path in folder.glob("*-*-*") if path.is_dir()):
        prefix, _ = store.name.rsplit("-", 1)
        replication, profile = prefix.split("-", 1)
        finished = sorted(path.stem for path in store.glob("*.json"))
        runs.append(UnfinishedRun(replication, profile, store, finished))
    return runs


def checkpoints(root: Path | None = None) -> list[Checkpoint]:
    """Every training checkpoint under `root` (default: the cache's), sorted by run key."""
    found = []
    for state in sorted(Path(root or checkpoints_dir()).glob(f"*/{STATE_FILE}")):
        info, _ = read_npz(state)  # a corrupt file: CheckpointError, naming it
        last = {key: values[-1] for key, values in info["history"].items() if values}
        found.append(Checkpoint(info["run_key"], int(info["epochs_done"]), bool(info["stopped"]), last))
    return found


def progress_text(runs: list[UnfinishedRun], saved: list[Checkpoint]) -> str:
    if not runs and not saved:
        return "No unfinished runs: every run started here has written its record (or none was started)."
    lines = []
    if runs:
        lines.append("Unfinished runs (the same command reuses these jobs):")
        for run in runs:
            jobs = ", ".join(run.finished_jobs) or "none yet"
            lines.append(f"  {run.replication} --profile {run.profile}: {len(run.finished_jobs)} finished ({jobs})")
    if saved:
        lines.append("Training checkpoints (each resumes from its last epoch):")
        for checkpoint in saved:
            state = f"{checkpoint.epochs_done} epochs done" + (", stopped early" if checkpoint.stopped else "")
            numbers = ", ".join(
                f"{key} {value:.4f}" for key, value in checkpoint.last_epoch.items() if key.startswith("val_")
            )
            lines.append(f"  {checkpoint.run_key}: {state}" + (f" ({numbers})" if numbers else ""))
    return "\n".join(lines)
