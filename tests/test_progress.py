"""`fer-replicate progress`: the finished jobs and training checkpoints an unfinished run left in the cache."""

from __future__ import annotations

import numpy as np
import pytest

from fer_common.job_types import JobResult
from fer_common.jobs import JobKey, JobStore
from fer_common.metadata import load_metadata
from fer_common.progress import JobGroup, checkpoints, job_groups, progress_text
from fer_common.provenance import current_code_files
from fer_common.resume import STATE_FILE, CheckpointError

from .test_resume import EPOCHS, NUM_CLASSES, build_model, train


def test_progress_lists_job_results_what_each_record_waits_for_and_each_checkpoints_epochs(tmp_path):
    generator = np.random.default_rng(0)
    data = generator.random((64, 16, 16, 1), dtype=np.float32), generator.integers(0, NUM_CLASSES, 64)
    runtime = {
        "policy": "mixed_bfloat16",
        "threads": 2,
        "deterministic": True,
        "jit_compile": False,
        "steps_per_execution": 16,
    }
    key = JobKey("config", "code", "data", runtime)
    meta = load_metadata("boyce")
    origin = {"git_commit": "c" * 40, "cpu": "test CPU", "cpu_kind": "amx-bf16", "runtime": runtime}
    store = JobStore(tmp_path / "jobs" / "boyce-full", "boyce", "full", key, current_code_files(meta), origin)
    setting = meta.settings_for("full")[0]
    store.save(JobResult(setting, 0, {"metrics": {}, "wall_time_s": 7200.0}, np.array([0]), np.eye(2)[[0]]))
    train(build_model(init_seed=0), data, tmp_path / "checkpoints", keep_checkpoint=True)

    [group] = job_groups(tmp_path / "results", tmp_path / "jobs")
    assert (group.replication, group.profile, list(group.finished)) == ("boyce", "full", [(setting, 0)])
    assert (setting, 1) in group.missing and not group.code_changes
    [checkpoint] = checkpoints(tmp_path / "checkpoints")
    assert checkpoint.run_key == "test-run" and checkpoint.epochs_done == EPOCHS and not checkpoint.stopped
    text = progress_text([group], [checkpoint])
    assert f"done     {setting} seed 0: 2.00 h on amx-bf16" in text
    assert f"missing  {setting} seed 1: about 2.0 h on amx-bf16; to match this key it needs a bf16 CPU" in text
    assert f"test-run: {EPOCHS} epochs done (val_accuracy" in text
    assert progress_text([], []).startswith("No job results")


def test_a_complete_run_counts_each_jobs_time_once_though_its_settings_share_the_job(tmp_path):
    runtime = {"policy": "float32", "threads": 1}
    shared = {"cpu_kind": "avx2", "wall_time_s": 3600.0, "finished_utc": "2026-12-07T20:00:00Z"}
    alone = {"cpu_kind": "avx2", "wall_time_s": 1800.0, "finished_utc": "2026-12-07T21:00:00Z"}
    saved_later = {**shared, "finished_utc": "2026-12-07T20:00:01Z"}
    finished = {("single_view", 0): shared, ("flip_tta", 0): saved_later, ("single_view", 1): alone}
    group = JobGroup("fer2013_cnn", "full", tmp_path, JobKey("config", "code", "data", runtime), finished)
    assert "done     all 3 results of 2 jobs: 1.50 h on avx2" in progress_text([group], [])


def test_a_corrupt_checkpoint_is_named_not_a_traceback(tmp_path):
    state = tmp_path / "some-run" / STATE_FILE
    state.parent.mkdir()
    state.write_bytes(b"not an npz")
    with pytest.raises(CheckpointError, match="some-run.*delete it to start afresh"):
        checkpoints(tmp_path)


def test_the_progress_command_lists_a_jobs_dir(tmp_path, capsys):
    from fer_common.cli import main

    assert main(["progress", "--jobs-dir", str(tmp_path / "none")]) == 0
    assert capsys.readouterr().out.strip()  # committed job results, or "nothing is under way"
