"""Job results that travel: made on one machine (or in one session), reused by a run anywhere whose key matches,
refused with the file named when damaged or edited, and never reused across other code, data, config or runtime."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fer_common.job_types import JobResult
from fer_common.jobs import JobKey, JobResultError, JobStore, read_job
from fer_common.paired import paired_accuracy, paired_runs
from fer_common.per_image import decode_labels, encode_labels
from fer_common.progress import job_groups, progress_text
from fer_common.provenance import CODE_MOVES_FILE
from fer_common.records import load_record

from .helpers import REPO_ROOT, seed_entry
from .helpers import git as _git

TRAIN = "fer_common/train.py"
RUNTIME = {"policy": "float32", "threads": 2, "deterministic": True, "jit_compile": False, "steps_per_execution": 1}
KEY = JobKey("config", "code", "data", RUNTIME)
FILES = {TRAIN: "a" * 64, "replications/sixth/replication.py": "b" * 64}
ORIGIN = {"git_commit": "c" * 40, "cpu": "test CPU", "cpu_kind": "avx2", "runtime": RUNTIME}


def _store(folder: Path, key: JobKey = KEY, files: dict | None = None) -> JobStore:
    return JobStore(folder, "sixth_replication", "full", key, files or FILES, ORIGIN)


def _result(seed: int = 0) -> JobResult:
    return JobResult(
        "gray", seed, {"metrics": {"accuracy": 0.5}, "wall_time_s": 10.0}, np.array([0, 1]), np.eye(2)[[0, 0]]
    )


def test_a_job_result_holds_its_key_code_and_provenance_and_is_reused_by_the_same_key(tmp_path):
    store = _store(tmp_path)
    result = _result()
    result.earlier_wall_time_s = 5.0  # an attempt a session's end interrupted
    saved = store.save(result)
    assert saved.file.name == f"gray-seed0-{KEY.digest}.json"
    entry = json.loads(saved.file.read_text())
    assert entry["key"]["runtime"] == RUNTIME and entry["code_files"] == FILES
    assert entry["provenance"]["wall_time_s"] == 15.0 and entry["provenance"]["cpu_kind"] == "avx2"
    again = _store(tmp_path).load("gray", 0)
    assert again.result == saved.result and again.model_file is None
    np.testing.assert_array_equal(again.predictions()[0], [0, 1])


@pytest.mark.parametrize(
    ("key", "files", "reason"),
    [
        (replace(KEY, config_hash="other"), FILES, "another config"),
        (replace(KEY, dataset_checksum="other data"), FILES, "other data (checksum data, this run's other data)"),
        (
            replace(KEY, runtime={**RUNTIME, "policy": "mixed_bfloat16"}),
            FILES,
            "other runtime: policy float32 (this run: mixed_bfloat16)",
        ),
        (replace(KEY, code_hash="edited"), {**FILES, TRAIN: "e" * 64}, f"other numbers-layer code ({TRAIN})"),
    ],
)
def test_a_job_result_of_other_code_data_config_or_runtime_is_not_reused_and_the_log_says_why(
    tmp_path, caplog, key, files, reason
):
    _store(tmp_path).save(_result())
    with caplog.at_level(logging.INFO, logger="fer_common.jobs"):
        assert _store(tmp_path, key, files).load("gray", 0) is None
    assert f"not reusing {tmp_path}/gray-seed0-{KEY.digest}.json: " in caplog.text and reason in caplog.text


def test_a_result_whose_code_moved_or_lost_a_file_is_still_reused(tmp_path):
    _store(tmp_path).save(_result())
    fewer = {TRAIN: FILES[TRAIN]}  # a file the job ran was removed from the replication since
    assert _store(tmp_path, replace(KEY, code_hash="fewer files"), fewer).load("gray", 0) is not None


def test_a_result_whose_code_moved_word_for_word_is_reused_as_a_record_would_be(tmp_path):
    """A numbers-layer file at content the job never ran is accepted when fer_common/code_moves.yaml says its
    code came, word for word, from files the job ran (the rule records follow, `numbers_code_changes`)."""
    _store(tmp_path / "jobs").save(_result())
    moved = {**FILES, TRAIN: "f" * 64}
    key = replace(KEY, code_hash="moved")
    assert JobStore(tmp_path / "jobs", "sixth_replication", "full", key, moved, ORIGIN).load("gray", 0) is None
    (tmp_path / CODE_MOVES_FILE).parent.mkdir(parents=True)
    (tmp_path / CODE_MOVES_FILE).write_text(
        f"moves:\n  - file: {TRAIN}\n    sha256: {'f' * 64}\n"
        f"    from:\n      - {{path: {TRAIN}, commit: {'c' * 40}, sha256: {FILES[TRAIN]}}}\n"
    )
    store = JobStore(tmp_path / "jobs", "sixth_replication", "full", key, moved, ORIGIN, repo_root=tmp_path)
    assert store.load("gray", 0) is not None


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda json_file: json_file.write_text(json_file.read_text().replace('"accuracy": 0.5', '"accuracy": 0.9')),
            "does not match its digest: it was edited or damaged",
        ),
        (lambda json_file: json_file.write_text(json_file.read_text()[:50]), "cannot be read"),
        (
            lambda json_file: json_file.with_suffix(".npz").write_bytes(b"not the predictions"),
            "its predictions file gray-seed0-.*npz does not match",
        ),
        (lambda json_file: json_file.with_suffix(".npz").unlink(), "is missing"),
    ],
)
def test_a_damaged_or_hand_edited_job_result_is_refused_naming_the_file(tmp_path, damage, message):
    saved = _store(tmp_path).save(_result())
    damage(saved.file)
    with pytest.raises(JobResultError, match=rf"job result {tmp_path}/gray-seed0-{KEY.digest}\.json.*{message}"):
        _store(tmp_path).load("gray", 0)
    with pytest.raises(JobResultError, match="delete it and its .npz to run that job again"):
        read_job(saved.file)


def test_per_image_labels_round_trip_one_character_each():
    labels = np.array([0, 9, 10, 61, 3])
    assert encode_labels(labels) == "09aZ3"
    np.testing.assert_array_equal(decode_labels(encode_labels(labels)), labels)
    with pytest.raises(ValueError, match="0..61"):
        encode_labels([62])


def test_mcnemar_on_a_known_example():
    """10 images only the first model gets right, 2 only the second: exact two-sided p = 2 * P(X <= 2 | 12, 1/2)
    = 2 * (1 + 12 + 66) / 4096 = 0.03857."""
    true = np.zeros(100, dtype=int)
    first = np.concatenate([np.zeros(10), np.ones(2), np.zeros(50), np.ones(38)]).astype(int)
    second = np.concatenate([np.ones(10), np.zeros(2), np.zeros(50), np.ones(38)]).astype(int)
    result = paired_accuracy(true, first, second)
    assert (result.only_setting, result.only_against, result.n) == (10, 2, 100)
    assert result.difference == pytest.approx(0.08)
    assert result.p_value == pytest.approx(158 / 4096)
    spread = np.sqrt(12 - 8**2 / 100) / 100  # the paired difference's standard error
    assert result.ci == pytest.approx((0.08 - 1.959964 * spread, 0.08 + 1.959964 * spread))


_SCRIPT = """
import logging
import sys
from pathlib import Path
sys.path.insert(0, {repo_root!r})
from tests.sixth_replication.replication import SixthReplication
from fer_common.runner import run_replication

logging.basicConfig(level=logging.INFO)

class Copied(SixthReplication):
    metadata_file = Path({metadata!r})

record, path = run_replication(
    Copied(), "full", seeds=[int(seed) for seed in sys.argv[1].split(",")], results_dir=Path(sys.argv[2]),
    make_plots=False, repo_root=Path({copy!r}),
)
print("RECORD", path)
"""


def _run_elsewhere(copy: Path, seeds: str, results: Path, cache: Path) -> str:
    """A run in a process of its own with a cache of its own, as on another machine or in another session."""
    script = _SCRIPT.format(
        repo_root=str(REPO_ROOT),
        metadata=str(copy / "replications" / "sixth_replication" / "metadata.yaml"),
        copy=str(copy),
    )
    environment = {**os.environ, "FER_CACHE_DIR": str(cache), "FER_MODELS_DIR": str(cache / "models")}
    done = subprocess.run(
        [sys.executable, "-c", script, seeds, str(results)], capture_output=True, text=True, env=environment
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def test_seeds_run_in_two_processes_with_separate_caches_assemble_the_record_of_one_run(repository, tmp_path):
    results = repository / "results"
    first = _run_elsewhere(repository, "1", results, tmp_path / "cache-a")
    assert "RECORD None" in first and "the record waits for 1 job(s) (gray seed 0)" in first
    assert "--seeds 0" in first
    jobs = results / "sixth_replication" / "jobs"
    assert [path.name.split("-")[1] for path in sorted(jobs.glob("*.json"))] == ["seed1"]
    _git(repository, "add", "results")
    _git(repository, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "seed 1's job")

    sixth = {"sixth_replication": repository / "replications" / "sixth_replication" / "metadata.yaml"}
    text = progress_text(job_groups(results, tmp_path / "no-cache", sixth), [])  # a fresh clone's `make progress`
    assert "done     gray seed 1" in text and "missing  gray seed 0" in text and "--seeds 0" in text

    second = _run_elsewhere(repository, "0", results, tmp_path / "cache-b")
    assert "reusing job setting=gray seed=1" in second
    [assembled] = sorted((results / "sixth_replication").glob("full-*.json"))
    alone = tmp_path / "alone"
    _run_elsewhere(repository, "0,1", alone, tmp_path / "cache-c")
    [one_run] = sorted((alone / "sixth_replication").glob("full-*.json"))

    assembled, one_run = load_record(assembled), load_record(one_run)
    for seed in ("0", "1"):
        mine, theirs = (record.settings["gray"].seeds[seed] for record in (assembled, one_run))
        assert mine.metrics == theirs.metrics and mine.predictions == theirs.predictions
    jobs_listed = assembled.provenance.jobs
    assert [job.seed for job in jobs_listed] == [0, 1] and all(job.cpu_kind for job in jobs_listed)
    assert assembled.provenance.jobs_wall_time_s == pytest.approx(sum(job.wall_time_s for job in jobs_listed), abs=0.2)

    _git(repository, "add", "results")
    _git(repository, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "record")
    third = _run_elsewhere(repository, "0", results, tmp_path / "cache-d")  # a fresh clone's `make replicate-...`
    assert "already holds these job results" in third and "job 1/" not in third
    assert len(list((results / "sixth_replication").glob("full-*.json"))) == 1


def test_a_record_is_assembled_from_complete_results_of_another_runtime_without_training(tmp_path):
    """A fresh clone on a CPU without bf16 rebuilds a record whose jobs ran in bf16 elsewhere: nothing to train."""
    bf16 = replace(KEY, runtime={**RUNTIME, "policy": "mixed_bfloat16"})
    for seed in (0, 1):
        _store(tmp_path, bf16).save(_result(seed))
    here = _store(tmp_path)  # float32: this machine's runtime
    assembled = here.with_runtime_of_complete_results([("gray", 0), ("gray", 1)])
    assert assembled.key == bf16 and assembled.load("gray", 1) is not None
    assert here.with_runtime_of_complete_results([("gray", 0), ("gray", 2)]) is None, "seed 2 would need training"
    assert _store(tmp_path, bf16).with_runtime_of_complete_results([("gray", 0)]) is None, "already its own"


def test_two_runs_of_a_setting_pair_seed_by_seed_on_the_same_images_only():
    """A hypothesis's record against the record as run: seeds both have, with the same labels."""
    true = encode_labels([0, 1, 1, 0])
    mine = {
        "0": seed_entry(predictions={"true": true, "predicted": encode_labels([0, 1, 1, 0])}),
        "1": seed_entry(predictions={"true": true, "predicted": encode_labels([0, 0, 0, 0])}),
        "2": seed_entry(),
    }  # made before per-image predictions were kept
    theirs = {
        "0": seed_entry(predictions={"true": true, "predicted": encode_labels([0, 0, 1, 1])}),
        "1": seed_entry(predictions={"true": encode_labels([1, 1, 1, 0]), "predicted": true}),  # other images
        "2": seed_entry(predictions={"true": true, "predicted": true}),
    }
    paired = paired_runs(mine, theirs)
    assert list(paired) == ["0"] and (paired["0"].only_setting, paired["0"].only_against) == (2, 0)


def test_a_short_profile_never_replaces_the_model_a_full_run_saved(tmp_path, monkeypatch, caplog):
    """`predict` and `demo` load `<id>-<setting>`: a quick run after a full one must not put its toy model there."""
    from fer_common.runner import run_replication
    from tests.sixth_replication.replication import SixthReplication

    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "models"))
    (tmp_path / "models").mkdir()
    full = tmp_path / "models" / "sixth_replication-gray"
    full.with_suffix(".keras").write_bytes(b"the full run's model")
    full.with_suffix(".json").write_text(json.dumps({"source": {"record": "results/sixth_replication/full-x.json"}}))
    with caplog.at_level(logging.WARNING, logger="fer_common.runner"):
        run_replication(
            SixthReplication(), "quick", results_dir=tmp_path / "results", jobs_root=tmp_path / "jobs", make_plots=False
        )
    assert full.with_suffix(".keras").read_bytes() == b"the full run's model"
    assert "model sixth_replication-gray kept: it is a full run's" in caplog.text
