"""`fer-replicate` (also `python -m fer_common`): one entry point, one subcommand per task."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path

from fer_common.errors import FerError
from fer_common.logs import TENSORFLOW_LOG_LEVEL, configure_logging, import_tensorflow_quietly

# TensorFlow's C++ chatter buries the messages users need; set here, before any import of TensorFlow, so
# that the processes this one starts inherit it too.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TENSORFLOW_LOG_LEVEL)
# TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX512-VNNI or newer. On an AVX2-only
# AMD EPYC they train 1.1-1.8x faster than the Eigen kernels it falls back to, and ResNet18 3.5x
# (results/bench/bench-20261202T155907Z-d4f238b.json, cmu_proxy-cost-20261202T15*); every CPU then runs
# the same kernel family. TF_ENABLE_ONEDNN_OPTS=0 still turns them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
log = logging.getLogger(__name__)


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a whole number, not {text!r}") from None


def positive_int(text: str) -> int:
    """argparse type: an integer of 1 or more."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer of 0 or more."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes comma-separated integers, e.g. 0,1,2; got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"takes one or more seeds of 0 or more, e.g. 0,1,2; got {text!r}")
    return seeds


def _add_runtime_options(parser: argparse.ArgumentParser, precision_default: str = "float32") -> None:
    from fer_common.train import DEFAULT_STEPS_PER_EXECUTION, PRECISIONS

    group = parser.add_argument_group(
        "speed switches (measured with `fer-replicate bench`; bf16's parity: `fer-replicate bench --parity`)"
    )
    group.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=precision_default,
        help="compute precision: mixed_bfloat16 = bf16 compute with float32 weights and output layer (other "
        "numbers than float32: check parity); auto = mixed_bfloat16 where the CPU has native bf16 (AMX or "
        f"AVX512-BF16) with oneDNN on, else float32 (default {precision_default})",
    )
    group.add_argument(
        "--jit",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="XLA-compile the train and predict steps (default off: 2-6x slower on a 2-core AVX512 CPU); needs "
        "--no-deterministic, as Keras turns XLA off under op determinism; other numbers than without",
    )
    group.add_argument(
        "--threads",
        type=non_negative_int,
        default=0,
        help="TensorFlow intra-op threads (0 = automatic: all cores); another count gives other, equally valid, "
        "numbers (sums are added in another order)",
    )
    group.add_argument(
        "--steps-per-execution",
        type=positive_int,
        default=DEFAULT_STEPS_PER_EXECUTION,
        help=f"training steps per compiled call (default {DEFAULT_STEPS_PER_EXECUTION}; 1 = off); bit-identical "
        "results, less Python overhead per step for small models",
    )
    group.add_argument(
        "--no-deterministic",
        action="store_true",
        help="turn TensorFlow op determinism off (runs are then not bit-reproducible)",
    )


def _runtime_options(args):
    from fer_common.train import RuntimeOptions

    return RuntimeOptions(
        precision=args.precision,
        jit_compile=args.jit,
        threads=args.threads,
        deterministic=not args.no_deterministic,
        steps_per_execution=args.steps_per_execution,
    )


def _add_executor_options(parser: argparse.ArgumentParser) -> None:
    from fer_common.executors import EXECUTORS

    group = parser.add_argument_group("where the jobs (setting x seed) run")
    group.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="sequential",
        help="sequential (default): here, one after another; process: a pool of local processes; "
        "ray: Ray tasks, on this machine or a cluster (--ray-address)",
    )
    group.add_argument(
        "--workers",
        type=non_negative_int,
        default=0,
        help="jobs at once for process and ray (default: as many as there are cores and jobs); each job "
        "gets cores / workers TensorFlow threads unless --threads says otherwise",
    )
    group.add_argument(
        "--ray-address", help="join this Ray cluster (e.g. auto, or head-node:6379) instead of a local Ray"
    )
    group.add_argument(
        "--retries", type=non_negative_int, default=1, help="further attempts of a job that fails (default 1)"
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """What `run` and `explain` share: seeds, data checks, speed switches and where the jobs run."""
    parser.add_argument(
        "--seeds",
        type=_seed_list,
        help="comma-separated seeds to run now (default: the metadata's); the record also waits for the "
        "metadata's seeds, whose job results may come from other machines or sessions",
    )
    parser.add_argument(
        "--jobs-dir",
        type=Path,
        help="keep and reuse job results in this folder (e.g. shared storage of several machines) instead of "
        "results/<id>/jobs (full runs) or the cache (other profiles)",
    )
    parser.add_argument(
        "--allow-modified-data",
        action="store_true",
        help="run on a dataset folder that fails its SHA256SUMS (the record and every row say so)",
    )
    _add_runtime_options(parser)
    _add_executor_options(parser)


def _executor_options(args):
    from fer_common.executors import ExecutorOptions

    return ExecutorOptions(kind=args.executor, workers=args.workers, ray_address=args.ray_address, retries=args.retries)


def cmd_run(args) -> int:
    from fer_common.metadata import load_metadata
    from fer_common.registry import REPLICATIONS
    from fer_common.runner import format_rows, run_replication

    replication = REPLICATIONS.get(args.replication)
    record, path = run_replication(
        replication,
        args.profile,
        seeds=args.seeds,
        options=_runtime_options(args),
        write=not args.no_record,
        command=shlex.join(sys.argv),
        config_overrides={"weights": args.weights} if args.weights else None,
        executor=_executor_options(args),
        jobs_dir=args.jobs_dir,
        allow_modified_data=args.allow_modified_data,
    )
    if record is None:  # the log said which jobs the record waits for
        return 0
    print("\n" + format_rows(load_metadata(replication.metadata_file), record) + "\n")
    if path:
        print(f"record: {path}")
    return 0


def hypothesis_profiles(meta) -> list[str]:
    """The distinct profiles of a replication's hypotheses, in metadata order; `full` is `run`'s, not theirs."""
    from fer_common.metadata import FULL_PROFILE

    profiles = [entry.profile for entry in meta.hypotheses if entry.profile != FULL_PROFILE]
    return list(dict.fromkeys(profiles))


def _why_run(meta, profile: str) -> str | None:
    """Why a hypothesis profile needs a run (no record, a stale or dirty one); None when its latest is current."""
    from fer_common.provenance import stale_reasons
    from fer_common.records import latest_record

    record = latest_record(meta.id, profile)
    if record is None:
        return "no record yet"
    stale = stale_reasons(meta, record)
    if stale:
        return "stale: " + ", ".join(stale)
    return "made from uncommitted changes" if record.provenance.git_dirty else None


def cmd_explain(args) -> int:
    from fer_common.metadata import load_metadata
    from fer_common.registry import REPLICATIONS
    from fer_common.runner import format_rows, run_replication

    replication = REPLICATIONS.get(args.replication)
    meta = load_metadata(replication.metadata_file)
    profiles = hypothesis_profiles(meta)
    if not profiles:
        raise FerError(f"{meta.id} has no hypotheses with a profile of their own (`hypotheses:` in its metadata)")
    for number, profile in enumerate(profiles, start=1):
        reason = "--force" if args.force else _why_run(meta, profile)
        if reason is None:
            log.info("[%s] %s: its latest record is current, skipped", meta.id, profile)
            continue
        log.info("[%s] hypothesis %d/%d: %s (%s)", meta.id, number, len(profiles), profile, reason)
        record, path = run_replication(
            replication,
            profile,
            seeds=args.seeds,
            options=_runtime_options(args),
            command=shlex.join(sys.argv),
            executor=_executor_options(args),
            jobs_dir=args.jobs_dir,
            allow_modified_data=args.allow_modified_data,
        )
        if record is None:
            continue
        print("\n" + format_rows(meta, record) + "\n")
        print(f"record written: {path}")
    return 0


def cmd_bench(args) -> int:
    if args.parity:
        from fer_common.parity import format_parity, run_parity

        result, path = run_parity(
            args.parity,
            seeds=args.seeds,
            epochs=args.epochs,
            optimised=_runtime_options(args),
            output_dir=args.output,
            write=not args.no_record,
            command=shlex.join(sys.argv),
        )
        print(format_parity(result))
        if path:
            print(f"parity record written: {path}")
        return 0
    from fer_common.bench import plan_for, run_bench
    from fer_common.measurement_pages import format_bench

    if args.seeds or args.epochs:
        raise FerError("--seeds and --epochs belong to --parity runs")
    record, path = run_bench(
        plan_for(args.quick, args.repeats),
        _runtime_options(args),
        output_dir=args.output,
        write=not args.no_record,
        command=shlex.join(sys.argv),
    )
    print(format_bench(record))
    if path:
        print(f"bench record written: {path}")
    return 0


def cmd_list(args) -> int:
    from fer_common.metadata import load_metadata
    from fer_common.registry import REPLICATIONS

    for replication_id in REPLICATIONS.ids():  # papers and our own recipes
        meta = load_metadata(REPLICATIONS.metadata_file(replication_id))
        print(f"{replication_id:<11} {meta.dataset.name:<10} {meta.dataset.data:<8} {meta.title}")
    return 0


def cmd_progress(args) -> int:
    from fer_common.progress import checkpoints, job_groups, progress_text

    print(progress_text(job_groups(jobs_root=args.jobs_dir), checkpoints()))
    return 0


def cmd_tables(args) -> int:
    from fer_common.tables import write_tables

    for path in write_tables():
        print(f"wrote {path}")
    return 0


def cmd_check(args) -> int:
    from fer_common.checks import check_records

    problems, warnings = check_records(strict=args.strict)
    for warning in warnings:
        print(f"warning: {warning}")
    for problem in problems:
        print(f"FAIL: {problem}")
    if problems:
        print(f"{len(problems)} problem(s)")
        return 1
    print("every full record there is valid, clean and meets its metadata's expectations")
    return 0


def cmd_data_summary(args) -> int:
    from fer_common.data import DATASETS, load_dataset

    names = [args.dataset] if args.dataset else list(DATASETS)
    found_any = False
    for name in names:
        try:
            dataset = load_dataset(name)
        except FerError as error:
            print(f"{name}: not available\n  {error}\n")
            continue
        found_any = True
        print(f"{name}: {len(dataset)} images, {dataset.images.shape[1:]} each, checksum {dataset.checksum[:12]}")
        if dataset.groups is not None:
            print(f"  {len(set(dataset.groups))} subjects/persons")
        for split in sorted(dataset.meta["split"].unique()):
            part = dataset.split(split)
            counts = ", ".join(f"{name} {count}" for name, count in part.class_counts().items())
            print(f"  {split:<12} {len(part):>6}: {counts}")
        print()
    if args.dataset and not found_any:
        return 2
    return 0


def cmd_data_verify(args) -> int:
    from fer_common.data import DATASETS
    from fer_common.data.integrity import verify_sha256sums
    from fer_common.paths import data_dir

    names = [args.dataset] if args.dataset else list(DATASETS)
    for name in names:
        folder = data_dir() / name
        if not (folder / "SHA256SUMS").exists():
            print(f"{name}: no SHA256SUMS in {folder}; nothing to verify")
            continue
        print(f"{name}: {verify_sha256sums(folder)}")
    return 0


def cmd_data_download(args) -> int:
    from fer_common.data.download import download_all

    return download_all()


def _load_model_bundle(name_or_path: str | None):
    from fer_common.bundles import default_bundle_name, load_bundle

    return load_bundle(name_or_path or default_bundle_name())


def cmd_predict(args) -> int:
    import json

    from fer_common.demo import predict_images
    from fer_common.faces import make_face_detector

    detector = make_face_detector(args.detector)
    bundle = _load_model_bundle(args.model)
    results = predict_images(args.images, bundle, detector)
    if args.json:
        print(json.dumps({"model": str(bundle.path), "images": results}, indent=2))
        return 0
    print(f"model: {bundle.path}")
    # The image column is as wide as the longest path, so long paths do not push the other columns out of line.
    width = max([len("image"), *(len(result["image"]) for result in results)])
    print(f"{'image':<{width}}  {'face box (x, y, w, h)':<24} {'emotion':<12} confidence")
    for result in results:
        if not result["faces"]:
            print(f"{result['image']:<{width}}  {result['note']}")
        for face in result["faces"]:
            box = ", ".join(str(value) for value in face["box"])
            print(f"{result['image']:<{width}}  {box:<24} {face['label']:<12} {face['confidence']:.1%}")
    return 0


def cmd_demo(args) -> int:
    from fer_common.demo import run_demo
    from fer_common.faces import make_face_detector

    detector = make_face_detector(args.detector)
    bundle = _load_model_bundle(args.model)
    print(f"model: {bundle.path}")
    summary = run_demo(
        args.source,
        bundle,
        output_dir=args.output,
        display=False if args.no_display else None,
        max_frames=args.max_frames,
        detector=detector,
    )
    print(summary.describe())
    return 0


def cmd_ship(args) -> int:
    from fer_common.bundles import ship_bundle

    shipped = ship_bundle(args.bundle, args.as_name or args.bundle.split("-")[0])
    print(f"shipped: {shipped} (and its .json)")
    return 0


def cmd_audit_duplicates(args) -> int:
    from fer_common.audit_duplicates import audit_fer2013
    from fer_common.measurement_pages import audit_markdown

    result = audit_fer2013(args.threshold, args.model, output_dir=args.output, write=not args.no_record)
    print(audit_markdown(result.record))
    if result.path:
        print(f"record: {result.path}\nfigure: {result.figure}")
    return 0


def cmd_cross_dataset(args) -> int:
    from fer_common.cross_dataset import run_cross_dataset, write_outputs
    from fer_common.measurement_pages import format_results
    from fer_common.report import latest_measurements

    models = [name.strip() for name in args.models.split(",") if name.strip()] if args.models else None
    previous = None if args.no_carry else latest_measurements().cross_dataset
    record = run_cross_dataset(models, reference=not args.no_reference, command=shlex.join(sys.argv), previous=previous)
    print(format_results(record))
    if not args.no_record:
        print(f"record written: {write_outputs(record)}")
    return 0


def _add_detector_option(parser: argparse.ArgumentParser) -> None:
    from fer_common.faces import DEFAULT_DETECTOR, DETECTORS

    parser.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        help=f"face detector: {' or '.join(DETECTORS)} (default {DEFAULT_DETECTOR}; haar is the papers' demos' "
        "OpenCV cascade; `fer-replicate bench-detectors` compares them)",
    )


def cmd_bench_detectors(args) -> int:
    from fer_common.detector_bench import run_detector_bench
    from fer_common.measurement_pages import format_detector_bench
    from fer_common.paths import data_dir

    record, path = run_detector_bench(
        data_dir(), args.output, seed=args.seed, command=shlex.join(sys.argv), write=not args.no_record
    )
    print(format_detector_bench(record))
    if path:
        print(f"detector record written: {path}")
    return 0


def _verbosity_options(default) -> argparse.ArgumentParser:
    """-v and -q, for the top-level parser (default: INFO) and, so that they also work after the subcommand,
    for every subcommand (default: leave the top level's value)."""
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_mutually_exclusive_group()
    group.add_argument(
        "-v",
        "--verbose",
        dest="log_level",
        action="store_const",
        const=logging.DEBUG,
        default=default,
        help="also show debugging messages",
    )
    group.add_argument(
        "-q",
        "--quiet",
        dest="log_level",
        action="store_const",
        const=logging.WARNING,
        default=default,
        help="show only warnings and errors, no progress (results are still printed)",
    )
    return options


MODEL_HELP = (
    "a bundle name (<id> or <id>-<setting>, see `fer-replicate list`) or a .keras file with its .json beside "
    "it (default: the bundle of the paper with the demo if trained, else the first bundle found)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fer-replicate",
        description="Replicate facial-emotion-recognition papers and check their numbers against tolerance bands.",
        parents=[_verbosity_options(default=logging.INFO)],
    )
    verbosity = [_verbosity_options(default=argparse.SUPPRESS)]
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_run,
        _add_explain,
        _add_bench,
        _add_records,
        _add_data,
        _add_predict_and_demo,
        _add_ship,
        _add_audit,
        _add_cross_dataset,
        _add_bench_detectors,
    ):
        add(commands, verbosity)
    return parser


def _add_run(commands, verbosity: list) -> None:
    """`run`: one replication, its record and its rows."""
    run = commands.add_parser("run", parents=verbosity, help="run one replication and record its result")
    run.add_argument("replication", help="replication id (see `fer-replicate list`)")
    run.add_argument("--profile", default="full", help="full (default) or a profile from the metadata, e.g. quick")
    run.add_argument("--no-record", action="store_true", help="print the rows but write no record")
    _add_run_options(run)
    run.add_argument(
        "--weights",
        help="pretrained weights for transfer models: imagenet (default: look in FER_WEIGHTS_DIR), "
        "a file or folder path, or none (train from random initialisation; the table says so)",
    )
    run.set_defaults(handler=cmd_run)


def _add_explain(commands, verbosity: list) -> None:
    """`explain`: the hypotheses of the claims that do not reproduce."""
    explain = commands.add_parser(
        "explain",
        parents=verbosity,
        help="run every profile of a replication's hypotheses (what could explain a claim that does not "
        "reproduce), one after another, skipping those whose latest record is current",
    )
    explain.add_argument("replication", help="replication id (see `fer-replicate list`)")
    explain.add_argument("--force", action="store_true", help="run every profile, current records or not")
    _add_run_options(explain)
    explain.set_defaults(handler=cmd_explain)


def _add_bench(commands, verbosity: list) -> None:
    """`bench`: training and inference speed, or bf16 parity."""
    from fer_common.registry import REPLICATIONS

    bench = commands.add_parser(
        "bench",
        parents=verbosity,
        help="training and inference speed: plain float32 Keras vs the suite's optimised path (~4 min); "
        "--parity checks that the optimised path gives the same science",
    )
    bench.add_argument("--quick", action="store_true", help="a seconds-long smoke test; its numbers mean little")
    bench.add_argument("--repeats", type=positive_int, help="fresh processes per model and way (default 2)")
    bench.add_argument(
        "--parity",
        metavar="REPLICATION",
        choices=REPLICATIONS.ids(),
        help="instead of timing: train the replication with the optimised switches and compare with float32, as "
        "its declared parity check says (a profile, against the committed full record or float32 runs here); "
        "takes 30+ minutes",
    )
    bench.add_argument("--seeds", type=_seed_list, help="parity seeds (default: the replication's, e.g. 0,1,2)")
    bench.add_argument(
        "--epochs",
        type=positive_int,
        help="parity epochs, for replications whose check trains a fixed number (default theirs)",
    )
    bench.add_argument("--output", help="folder for the JSON (default results/bench)")
    bench.add_argument("--no-record", action="store_true", help="print, write nothing")
    _add_runtime_options(bench, precision_default="auto")
    bench.set_defaults(handler=cmd_bench)


def _add_records(commands, verbosity: list) -> None:
    """`list`, `progress`, `tables`, `check`: what there is, and what the records say."""
    commands.add_parser("list", parents=verbosity, help="list the replications").set_defaults(handler=cmd_list)
    progress = commands.add_parser(
        "progress",
        parents=verbosity,
        help="where long runs stand: their job results (committed or in the cache), the jobs each record still "
        "waits for with their measured cost, and training checkpoints (nothing is started)",
    )
    progress.add_argument("--jobs-dir", type=Path, help="also list the job results in this folder (shared storage)")
    progress.set_defaults(handler=cmd_progress)
    commands.add_parser(
        "tables",
        parents=verbosity,
        help="regenerate results/TABLE.{md,csv,tex}, audits.md and the pages from the records",
    ).set_defaults(handler=cmd_tables)
    check = commands.add_parser(
        "check",
        parents=verbosity,
        help="fail when a full record is dirty or invalid, or breaks its metadata's expectations (missing or "
        "stale records: warnings)",
    )
    check.add_argument(
        "--strict", action="store_true", help="also fail on missing and stale records (code or metadata changed since)"
    )
    check.set_defaults(handler=cmd_check)


def _add_data(commands, verbosity: list) -> None:
    """`data summary | verify | download`."""
    data = commands.add_parser("data", parents=verbosity, help="dataset tools").add_subparsers(
        dest="data_command", required=True
    )
    summary = data.add_parser("summary", parents=verbosity, help="counts per split and class")
    summary.add_argument("dataset", nargs="?", help="one dataset (default: all)")
    summary.set_defaults(handler=cmd_data_summary)
    verify = data.add_parser("verify", parents=verbosity, help="check a dataset folder against its SHA256SUMS")
    verify.add_argument("dataset", nargs="?", help="one dataset (default: all)")
    verify.set_defaults(handler=cmd_data_verify)
    data.add_parser("download", parents=verbosity, help="fetch what the Kaggle API can fetch").set_defaults(
        handler=cmd_data_download
    )


def _add_predict_and_demo(commands, verbosity: list) -> None:
    """`predict` and `demo`: a trained model on faces."""
    predict = commands.add_parser("predict", parents=verbosity, help="classify the emotion of every face in images")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    predict.add_argument("--model", help=MODEL_HELP)
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_detector_option(predict)
    predict.set_defaults(handler=cmd_predict)

    demo = commands.add_parser(
        "demo",
        parents=verbosity,
        help="live demo: find, classify and label every face in a webcam, video, image or folder",
    )
    demo.add_argument("source", help="webcam index (e.g. 0), video file, image file or folder of images")
    demo.add_argument("--model", help=MODEL_HELP)
    demo.add_argument(
        "--output",
        default="demo-output",
        help="folder for the annotated video or images and the predictions (default: demo-output)",
    )
    demo.add_argument("--no-display", action="store_true", help="never open a window, only write files")
    demo.add_argument("--max-frames", type=positive_int, help="stop after this many frames")
    _add_detector_option(demo)
    demo.set_defaults(handler=cmd_demo)


def _add_ship(commands, verbosity: list) -> None:
    """`ship`: a trained bundle into the package."""
    ship = commands.add_parser(
        "ship",
        parents=verbosity,
        help="copy a trained bundle into the package (fer_common/pretrained/), without optimizer state",
    )
    ship.add_argument(
        "bundle",
        help="a bundle in FER_MODELS_DIR, e.g. <id>-<setting>: the bundle of that name, else the "
        "<bundle>-seed<N> with the highest selection score (measured on validation data, never the test set)",
    )
    ship.add_argument("--as", dest="as_name", help="name in the package (default: the part before the first -)")
    ship.set_defaults(handler=cmd_ship)


def _add_audit(commands, verbosity: list) -> None:
    """`audit fer2013-duplicates`."""
    audit = commands.add_parser("audit", parents=verbosity, help="data audits").add_subparsers(
        dest="audit_command", required=True
    )
    duplicates = audit.add_parser(
        "fer2013-duplicates",
        parents=verbosity,
        help="exact and near-duplicate FER2013 images within and across its splits, and a model's PrivateTest "
        "accuracy with and without a duplicate in Training (~1 min)",
    )
    duplicates.add_argument(
        "--threshold", type=non_negative_int, help="pHash Hamming distance of a near duplicate, in bits (default 6)"
    )
    duplicates.add_argument("--model", help=MODEL_HELP)
    duplicates.add_argument(
        "--output", help="folder for the record and figure (default results/audits/fer2013-duplicates)"
    )
    duplicates.add_argument("--no-record", action="store_true", help="print, write nothing")
    duplicates.set_defaults(handler=cmd_audit_duplicates)


def _add_cross_dataset(commands, verbosity: list) -> None:
    """`cross-dataset`: every trained model on the other datasets."""
    cross = commands.add_parser(
        "cross-dataset",
        parents=verbosity,
        help="score every trained model on the other datasets whose classes overlap (inference only, minutes)",
    )
    cross.add_argument(
        "--models",
        help="comma-separated bundle names or .keras paths (default: every bundle found, shipped ones included, "
        "without per-seed copies)",
    )
    cross.add_argument("--no-reference", action="store_true", help="leave out the `fer` package's reference row")
    cross.add_argument(
        "--no-carry",
        action="store_true",
        help="leave out the rows of models not scored now, instead of carrying them over unchanged from the "
        "latest matrix (when its test sets are the same)",
    )
    cross.add_argument("--no-record", action="store_true", help="print the matrix, write nothing")
    cross.set_defaults(handler=cmd_cross_dataset)


def _add_bench_detectors(commands, verbosity: list) -> None:
    """`bench-detectors`: face detectors side by side."""
    bench_detectors = commands.add_parser(
        "bench-detectors",
        parents=verbosity,
        help="face detectors side by side: detection rate and false positives on CFD, CK+48 and a synthetic "
        "video of turned and small faces, and frames per second (a few minutes)",
    )
    bench_detectors.add_argument("--seed", type=int, default=0, help="seed of the synthetic video (default 0)")
    bench_detectors.add_argument("--output", help="folder for the JSON (default results/bench)")
    bench_detectors.add_argument("--no-record", action="store_true", help="print, write nothing")
    bench_detectors.set_defaults(handler=cmd_bench_detectors)


# The subcommands that run models; they load TensorFlow at once, without its load-time notices. The report
# (`tables`, `check`) never loads it.
USES_TENSORFLOW = (
    cmd_run,
    cmd_explain,
    cmd_bench,
    cmd_predict,
    cmd_demo,
    cmd_ship,
    cmd_audit_duplicates,
    cmd_cross_dataset,
)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        if args.handler in USES_TENSORFLOW:
            import_tensorflow_quietly()
        return args.handler(args)
    except FerError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted: no record was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
