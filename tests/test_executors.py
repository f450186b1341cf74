"""Executors: the same record whichever executor runs the jobs; retries, failure reports and resumed runs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import replications.chen.replication as chen
from fer_common.cli import main
from fer_common.contract import Prepared, SeedOutcome
from fer_common.errors import FerError, JobsFailedError, WeightsError
from fer_common.executors import Capacity, ExecutorOptions, execute, plan_capacity
from fer_common.jobs import plan_jobs
from fer_common.records import load_record
from fer_common.registry import REPLICATIONS
from fer_common.runner import run_replication
from fer_common.schema import Record
from fer_common.train import RuntimeOptions
from replications.neamtiu.replication import Neamtiu

from . import executor_tasks
from .helpers import REPO_ROOT, requires_dataset

SEEDS = [0, 1]
# Thread counts change TensorFlow's float sums, and a pool's workers get cores // workers threads each:
# one thread in every run makes the sequential record the one the pools must equal.
ONE_THREAD = RuntimeOptions(threads=1)
POOL = ExecutorOptions(kind="process", workers=2)
CHEN_JOBS = [("random_split", 0), ("random_split", 1), ("subject_split", 0), ("subject_split", 1)]


def chen_quick(jobs_root, executor: ExecutorOptions | None = None, **kwargs) -> Record:
    """Chen's quick profile (2 folds, 3 epochs) for SEEDS: 2 settings x 2 seeds = 4 jobs."""
    arguments = {"seeds": SEEDS, "write": False, "make_plots": False, **kwargs}
    record, _ = run_replication(REPLICATIONS.get("chen"), "quick", executor=executor, jobs_root=jobs_root, **arguments)
    return record


def one_thread_record(tmp_path, executor: ExecutorOptions) -> Record:
    """Chen quick with one TensorFlow thread per job, written and read back like the sequential record."""
    _, path = run_replication(
        REPLICATIONS.get("chen"),
        "quick",
        seeds=SEEDS,
        options=ONE_THREAD,
        executor=executor,
        jobs_root=tmp_path / "jobs",
        results_dir=tmp_path / "results",
        make_plots=False,
    )
    return load_record(path)


def job_folders(jobs_root) -> list:
    """The run configurations' job folders (each has a lock file beside it, which stays)."""
    return [path for path in jobs_root.iterdir() if path.is_dir()]


def numbers(record: Record) -> dict:
    """What the jobs computed: per-seed entries (without their wall time) and the rows."""
    settings = {
        setting: {seed: entry.model_dump(exclude={"wall_time_s"}) for seed, entry in result.seeds.items()}
        for setting, result in record.settings.items()
    }
    return {"settings": settings, "rows": record.rows}


@pytest.fixture(scope="module")
def sequential_chen(tmp_path_factory) -> Record:
    """The sequential record, made by the command line in a fresh process: TensorFlow sizes its thread
    pools once per process, and this one (pytest's) may have started them with another count."""
    results = tmp_path_factory.mktemp("sequential-results")
    command = [sys.executable, "-m", "fer_common", "run", "chen", "--profile", "quick", "--threads", "1"]
    command += ["--seeds", ",".join(map(str, SEEDS))]
    finished = subprocess.run(
        command, env={**os.environ, "FER_RESULTS_DIR": str(results)}, capture_output=True, text=True
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    [path] = (results / "chen").glob("*.json")
    return load_record(path)


@requires_dataset("ckplus48")
def test_process_pool_gives_the_sequential_record(sequential_chen, tmp_path):
    record = one_thread_record(tmp_path, POOL)
    assert numbers(record) == numbers(sequential_chen)
    assert record.provenance.executor == {"kind": "process", "workers": 2}
    assert record.provenance.runtime["threads"] == 1
    assert job_folders(tmp_path / "jobs") == [], "the job folder goes once the record is built"


# --- retries, failure reports and resumed runs, with a stand-in for Chen's training ----------------------


@pytest.fixture
def fake_chen(monkeypatch):
    """Chen without data or training: each job's predictions are random draws from its seed. `calls` lists
    the jobs run; a job in `failing` raises (always, or only the first time if in `fail_once`)."""
    state = {"calls": [], "failing": set(), "fail_once": set()}
    chen_classes = ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]

    def prepare(self, config):
        labels = np.arange(40) % len(chen_classes)
        return Prepared(data=labels, class_names=chen_classes, checksum="fake", data_kind="real")

    def run_setting(self, prepared, setting, seed, config, runtime, run_keys):
        state["calls"].append((setting, seed))
        if (setting, seed) in state["failing"]:
            if (setting, seed) in state["fail_once"]:
                state["failing"].discard((setting, seed))
            raise RuntimeError(f"{setting} seed {seed} crashed")
        labels = prepared.data
        probabilities = np.random.default_rng(seed).dirichlet(np.ones(len(chen_classes)), size=len(labels))
        return SeedOutcome(
            labels, probabilities, "fake", history={"loss": [1.0, 0.5]}, metrics={"fold_mean_test_accuracy": 0.5}
        )

    monkeypatch.setattr(chen.Chen, "prepare", prepare)
    monkeypatch.setattr(chen.Chen, "run_setting", run_setting)
    return state


def test_a_job_that_fails_once_is_retried(fake_chen, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    fake_chen["failing"] = {("subject_split", 1)}
    fake_chen["fail_once"] = {("subject_split", 1)}
    record = chen_quick(tmp_path)
    assert fake_chen["calls"] == CHEN_JOBS + [("subject_split", 1)]
    assert set(record.settings["subject_split"].seeds) == {"0", "1"}
    assert "setting=subject_split seed=1 failed (attempt 1 of 2)" in caplog.text


def test_a_failing_job_is_reported_and_a_rerun_reuses_the_finished_jobs(fake_chen, tmp_path, caplog):
    jobs_root, results = tmp_path / "jobs", tmp_path / "results"
    fake_chen["failing"] = {("subject_split", 1)}
    with pytest.raises(JobsFailedError) as failed:
        chen_quick(jobs_root, write=True, results_dir=results)
    assert "1 of 4 job(s) failed" in str(failed.value)
    assert "setting=subject_split seed=1: RuntimeError: subject_split seed 1 crashed (2 attempts)" in str(failed.value)
    assert not results.exists(), "no record when a job failed"
    [job_folder] = job_folders(jobs_root)
    assert sorted(path.name.rsplit("-", 1)[0] for path in job_folder.glob("*.json")) == [
        "random_split-seed0",
        "random_split-seed1",
        "subject_split-seed0",
    ]

    fake_chen["failing"], fake_chen["calls"] = set(), []
    caplog.clear()
    caplog.set_level(logging.INFO)
    record = chen_quick(jobs_root, write=True, results_dir=results)
    assert fake_chen["calls"] == [("subject_split", 1)], "only the missing job runs again"
    assert caplog.text.count("reusing job") == 3
    assert len(list((results / "chen").glob("*.json"))) == 1 and not job_folder.exists()
    # The record's job time counts the jobs the first invocation finished, not only what this one trained.
    job_times = [entry.wall_time_s for setting in record.settings.values() for entry in setting.seeds.values()]
    assert record.provenance.jobs_wall_time_s == pytest.approx(sum(job_times), abs=0.1)

    fake_chen["calls"] = []
    assert numbers(chen_quick(tmp_path / "fresh")) == numbers(record), "reused jobs give the record fresh ones give"


def test_a_fer_error_stops_the_run_at_once(fake_chen, tmp_path, monkeypatch):
    def missing_weights(self, prepared, setting, seed, config, runtime, run_keys):
        fake_chen["calls"].append((setting, seed))
        raise WeightsError("no ImageNet weights at /nowhere")

    monkeypatch.setattr(chen.Chen, "run_setting", missing_weights)
    with pytest.raises(WeightsError, match="no ImageNet weights"):
        chen_quick(tmp_path)
    assert fake_chen["calls"] == [("random_split", 0)], "no retry, no further job"


def test_without_ray_the_command_says_how_to_install_it(fake_chen, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["run", "chen", "--profile", "quick", "--executor", "ray", "--no-record"]) == 2
    assert 'pip install -e ".[ray]"' in capsys.readouterr().err


def test_executor_options_are_checked(capsys):
    assert main(["run", "chen", "--workers", "2"]) == 2
    assert "--workers needs --executor process or --executor ray" in capsys.readouterr().err
    with pytest.raises(FerError, match="--ray-address needs --executor ray"):
        ExecutorOptions(kind="process", ray_address="auto")


# --- the process pool on its own (no TensorFlow in its workers) --------------------------------------------


def run_pool(function, tasks, retries: int = 1):
    done = {}
    options = ExecutorOptions(kind="process", workers=2, retries=retries)
    failures = execute(tasks, function, options, Capacity(2, 1), lambda task, result: done.update({task[1]: result}))
    return done, failures


def test_pool_retries_a_task_that_raised(tmp_path):
    done, failures = run_pool(executor_tasks.fails_once, [(str(tmp_path / f"m{value}"), value) for value in (2, 3)])
    assert done == {2: 4, 3: 9} and failures == []


def test_pool_replaces_a_pool_whose_worker_died(tmp_path):
    # The death breaks the whole pool: the job running beside it fails too, and both run again in a new pool.
    done, failures = run_pool(executor_tasks.dies_once, [(str(tmp_path / "m2"), 2), ("", 3), ("", 4)])
    assert done == {2: 4, 3: 9, 4: 16} and failures == []


def test_pool_reports_a_task_that_always_fails_and_finishes_the_others(tmp_path):
    done, failures = run_pool(executor_tasks.always_fails, [("", 5)])
    assert done == {} and len(failures) == 1
    assert failures[0].attempts == 2 and failures[0].describe() == "RuntimeError: task 5 always fails"
    assert "always_fails" in failures[0].trace, "the worker's traceback comes back"
    done, failures = run_pool(executor_tasks.square, [("", 2), ("", 3)], retries=0)
    assert done == {2: 4, 3: 9} and failures == []


def test_pool_stops_at_a_fer_error_without_waiting_for_running_jobs():
    started = time.perf_counter()
    with pytest.raises(WeightsError, match="weights file is missing"):
        run_pool(executor_tasks.needs_weights_or_sleeps, [("sleep", 60), ("weights", 0)])
    assert time.perf_counter() - started < 30, "the sleeping job was waited for"


def test_a_worker_whose_runner_is_killed_stops_instead_of_training_on(tmp_path):
    """`kill <runner pid>` (or a session that ends) must not leave a pool's worker running for hours."""
    pid_file = tmp_path / "worker.pid"
    script = (
        "from fer_common.executors import Capacity, ExecutorOptions, execute\n"
        "from tests import executor_tasks\n"
        f"execute([({str(pid_file)!r}, 120)], executor_tasks.writes_pid_then_sleeps,"
        " ExecutorOptions(kind='process', workers=1), Capacity(1, 1), lambda task, result: None)\n"
    )
    runner = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 60
        while not pid_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        worker = int(pid_file.read_text())
        runner.kill()  # SIGKILL: the runner gets no chance to stop its pool
        runner.wait()
        deadline = time.monotonic() + 20
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(worker), "the worker outlived its runner"
    finally:
        runner.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by whoever adopted it) is gone for our purpose.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and stat.read_text().split()[2] == "Z")


# --- planning -----------------------------------------------------------------------------------------------


def test_settings_that_share_a_training_run_are_one_job_per_seed():
    settings = ["fer_package_reference", "source_protocol", "clean_protocol"]
    assert plan_jobs(settings, [0, 1], Neamtiu.job_groups) == [
        (("fer_package_reference",), 0),
        (("fer_package_reference",), 1),
        (("source_protocol", "clean_protocol"), 0),
        (("source_protocol", "clean_protocol"), 1),
    ]
    assert plan_jobs(["clean_protocol"], [3], Neamtiu.job_groups) == [(("clean_protocol",), 3)]
    assert plan_jobs(["random_split", "subject_split"], [0, 1]) == [(("random_split",), 0), (("random_split",), 1)] + [
        (("subject_split",), 0),
        (("subject_split",), 1),
    ]


def test_workers_share_the_cores():
    assert plan_capacity(ExecutorOptions(), threads=0, job_count=4, cores=8) == Capacity(1, 0)
    assert plan_capacity(POOL, threads=0, job_count=4, cores=8) == Capacity(2, 4)
    assert plan_capacity(ExecutorOptions(kind="process"), threads=0, job_count=3, cores=8) == Capacity(3, 2)
    assert plan_capacity(POOL, threads=3, job_count=4, cores=8) == Capacity(2, 3)
    cluster = ExecutorOptions(kind="ray", ray_address="auto")
    assert plan_capacity(cluster, threads=0, job_count=40, cores=8) == Capacity(None, 1)


# --- Ray (last: its local cluster lives until the module's tests end) ----------------------------------------


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason='Ray is not installed: pip install -e ".[dev]"')
    # A 2-core machine: 2 CPUs and a small object store (the jobs return a few small arrays).
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024 * 1024)
    yield ray
    ray.shutdown()


@requires_dataset("ckplus48")
def test_local_ray_gives_the_sequential_record(local_ray, sequential_chen, tmp_path):
    record = one_thread_record(tmp_path, ExecutorOptions(kind="ray", workers=2))
    assert numbers(record) == numbers(sequential_chen)
    assert record.provenance.executor == {"kind": "ray", "workers": 2}
    assert local_ray.is_initialized(), "a Ray the run did not start is left running"


def test_ray_retries_a_task_and_keeps_a_fer_error_a_fer_error(local_ray, tmp_path):
    ray_once = ExecutorOptions(kind="ray", workers=2, retries=1)
    done = {}
    tasks = [(str(tmp_path / f"marker-{value}"), value) for value in (2, 3)]
    failures = execute(tasks, executor_tasks.fails_once, ray_once, Capacity(2, 1), lambda t, r: done.update({t[1]: r}))
    assert failures == [] and done == {2: 4, 3: 9}
    with pytest.raises(WeightsError, match="weights file is missing"):
        execute(tasks, executor_tasks.needs_weights, ray_once, Capacity(2, 1), lambda t, r: None)
