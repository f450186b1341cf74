"""The command line: clear messages and non-zero exits for bad input, never a traceback."""

import logging

import pytest

from fer_common import provenance, records, runner
from fer_common.cli import build_parser, hypothesis_profiles, main
from fer_common.errors import MetadataError
from fer_common.logs import SUITE_LOGGERS
from fer_common.metadata import load_metadata
from fer_common.registry import REPLICATIONS
from fer_common.runner import run_replication

from .helpers import made_record, requires_dataset


def test_missing_dataset_says_where_to_put_it_and_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path))
    assert main(["run", "chen", "--profile", "quick"]) == 2
    error = capsys.readouterr().err
    assert "CK+48 not found" in error and "shawon10/ckplus" in error and "Traceback" not in error


def test_unknown_profile_lists_the_known_ones(capsys):
    assert main(["run", "chen", "--profile", "nope"]) == 2
    error = capsys.readouterr().err
    assert "unknown profile 'nope'; known profiles: full, " in error and ", ci, quick" in error


def test_config_override_must_name_a_known_key():
    with pytest.raises(MetadataError, match="no config key 'weights'"):
        run_replication(REPLICATIONS.get("chen"), "quick", config_overrides={"weights": "none"}, write=False)


def test_bad_seed_list_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "chen", "--seeds", "one,two"])
    assert exit_info.value.code == 2 and "comma-separated integers" in capsys.readouterr().err


@requires_dataset("ckplus48")
def test_data_summary_prints_counts_per_class(capsys):
    assert main(["data", "summary", "ckplus48"]) == 0
    out = capsys.readouterr().out
    assert "981 images" in out and "118 subjects" in out and "contempt 54" in out


def test_tables_render_with_no_records(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FER_RESULTS_DIR", str(tmp_path))
    assert main(["tables"]) == 0
    assert "no record yet" in (tmp_path / "TABLE.md").read_text()


def test_bench_parity_names_the_replications_that_have_a_check(capsys):
    assert main(["bench", "--parity", "hong", "--no-record"]) == 2
    assert "declares no parity check; these do: chen, neamtiu" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--parity", "nope"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["bench", "--repeats", "0"], "argument --repeats: must be 1 or more, not 0"),
        (["bench", "--parity", "chen", "--epochs", "-3"], "argument --epochs: must be 1 or more, not -3"),
        (["run", "chen", "--workers", "-1"], "argument --workers: must be 0 or more, not -1"),
        (["run", "chen", "--steps-per-execution", "0"], "argument --steps-per-execution: must be 1 or more, not 0"),
        (["run", "chen", "--threads", "two"], "argument --threads: takes a whole number, not 'two'"),
        (["run", "chen", "--seeds", "0,-1"], "one or more seeds of 0 or more"),
        (["demo", "0", "--max-frames", "0"], "argument --max-frames: must be 1 or more, not 0"),
    ],
)
def test_numbers_out_of_range_are_usage_errors(arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(arguments)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.fixture
def suite_logging():
    """Leaves the logging set-up as it was before the test called main()."""
    loggers = [logging.getLogger(name) for name in (None, *SUITE_LOGGERS)]
    levels = [logger.level for logger in loggers]
    handlers = list(logging.getLogger().handlers)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)
    logging.getLogger().handlers[:] = handlers


@pytest.mark.parametrize(
    ("arguments", "level"),
    [
        (["list"], logging.INFO),
        (["-q", "list"], logging.WARNING),
        (["list", "--quiet"], logging.WARNING),
        (["-v", "list"], logging.DEBUG),
        (["data", "summary", "--verbose", "nothing"], logging.DEBUG),
    ],
)
def test_verbosity_options_work_before_and_after_the_subcommand(arguments, level):
    assert build_parser().parse_args(arguments).log_level == level


def test_progress_messages_show_by_default_and_not_with_quiet(suite_logging, capsys):
    progress = logging.getLogger("fer_common.runner")
    assert main(["list"]) == 0
    progress.info("[chen] job 1/2: setting=random_split seed=0")
    progress.debug("a detail")
    assert capsys.readouterr().err == "[chen] job 1/2: setting=random_split seed=0\n"

    assert main(["-q", "list"]) == 0
    progress.info("[chen] job 1/2: setting=random_split seed=0")
    progress.warning("[chen] not run: no data")
    assert capsys.readouterr().err == "warning: [chen] not run: no data\n"

    assert main(["list", "-v"]) == 0
    progress.debug("a detail")
    assert capsys.readouterr().err == "a detail\n"


def test_other_libraries_show_only_warnings_with_their_name(suite_logging, capsys):
    assert main(["-v", "list"]) == 0
    logging.getLogger("some_library").info("chatter")
    logging.getLogger("some_library").warning("something to know")
    assert capsys.readouterr().err == "some_library: warning: something to know\n"


def test_explain_runs_each_hypothesis_profile_once_with_the_run_options(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FER_RESULTS_DIR", str(tmp_path))
    calls = []

    def stub_run(replication, profile, **options):
        calls.append((replication.id, profile, options["seeds"], options["options"].precision, options["executor"]))
        return made_record("chen", profile), tmp_path / f"{profile}.json"

    monkeypatch.setattr(runner, "run_replication", stub_run)
    arguments = ["explain", "chen", "--seeds", "0", "--precision", "mixed_bfloat16", "--executor", "process"]
    assert main([*arguments, "--workers", "2"]) == 0
    profiles = hypothesis_profiles(load_metadata(REPLICATIONS.get("chen").metadata_file))
    assert [profile for _, profile, *_ in calls] == profiles and "full" not in profiles and len(profiles) == 6
    _, _, seeds, precision, executor = calls[0]
    assert seeds == [0] and precision == "mixed_bfloat16" and (executor.kind, executor.workers) == ("process", 2)
    assert f"record written: {tmp_path / 'explain_last_epoch.json'}" in capsys.readouterr().out


def test_explain_skips_a_profile_whose_latest_record_is_current_unless_forced(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_RESULTS_DIR", str(tmp_path))
    current = made_record("chen", "explain_patience_3", git_dirty=False)
    monkeypatch.setattr(
        records, "latest_record", lambda _, profile: current if profile == "explain_patience_3" else None
    )
    monkeypatch.setattr(provenance, "stale_reasons", lambda meta, record: [])
    ran = []
    monkeypatch.setattr(
        runner, "run_replication", lambda _, profile, **__: (ran.append(profile) or made_record("chen", profile), None)
    )
    monkeypatch.setattr(runner, "format_rows", lambda meta, record: "")
    assert main(["explain", "chen"]) == 0
    assert "explain_patience_3" not in ran and len(ran) == 5
    ran.clear()
    assert main(["explain", "chen", "--force"]) == 0
    assert "explain_patience_3" in ran and len(ran) == 6


def test_explain_needs_a_replication_with_hypotheses(capsys):
    assert main(["explain", "neamtiu"]) != 0
    assert "no hypotheses" in capsys.readouterr().err


def test_check_prints_no_tensorflow_banner():
    """check loads every replication module with the committed records, and one imports Keras: TensorFlow's
    loading lines stay hidden."""
    import os
    import subprocess
    import sys

    from .helpers import REPO_ROOT

    environment = {**os.environ, "FER_RESULTS_DIR": str(REPO_ROOT / "results")}
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)
    finished = subprocess.run(
        [sys.executable, "-m", "fer_common", "check"], capture_output=True, text=True, env=environment, timeout=300
    )
    assert "absl::InitializeLog" not in finished.stderr and "oneDNN" not in finished.stderr, finished.stderr
