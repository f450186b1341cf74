"""`fer-replicate progress`: the finished jobs and training checkpoints an unfinished run left in the cache."""

from __future__ import annotations

import numpy as np
import pytest

from fer_common.progress import checkpoints, progress_text, unfinished_runs
from fer_common.resume import STATE_FILE, CheckpointError

from .test_resume import EPOCHS, NUM_CLASSES, build_model, train


def test_progress_lists_finished_jobs_and_each_checkpoints_epochs(tmp_path):
    generator = np.random.default_rng(0)
    data = generator.random((64, 16, 16, 1), dtype=np.float32), generator.integers(0, NUM_CLASSES, 64)
    jobs = tmp_path / "jobs" / "boyce-full-0123456789abcdef"
    jobs.mkdir(parents=True)
    (jobs / "model1-seed0.json").write_text("{}")
    (tmp_path / "jobs" / "boyce-full-0123456789abcdef.lock").write_text("")
    train(build_model(init_seed=0), data, tmp_path / "checkpoints", keep_checkpoint=True)

    [run] = unfinished_runs(tmp_path / "jobs")
    assert (run.replication, run.profile, run.finished_jobs) == ("boyce", "full", ["model1-seed0"])
    [checkpoint] = checkpoints(tmp_path / "checkpoints")
    assert checkpoint.run_key == "test-run" and checkpoint.epochs_done == EPOCHS and not checkpoint.stopped
    text = progress_text([run], [checkpoint])
    assert "boyce --profile full: 1 finished (model1-seed0)" in text
    assert f"test-run: {EPOCHS} epochs done (val_accuracy" in text
    assert progress_text([], []).startswith("No unfinished runs")


def test_a_corrupt_checkpoint_is_named_not_a_traceback(tmp_path):
    state = tmp_path / "some-run" / STATE_FILE
    state.parent.mkdir()
    state.write_bytes(b"not an npz")
    with pytest.raises(CheckpointError, match="some-run.*delete it to start afresh"):
        checkpoints(tmp_path)
