"""The command line: clear messages and non-zero exits for bad input, never a traceback."""

import pytest

from fer_common.cli import main
from fer_common.errors import MetadataError
from fer_common.registry import REPLICATIONS
from fer_common.runner import run_replication

from .helpers import requires_dataset


def test_missing_dataset_says_where_to_put_it_and_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path))
    assert main(["run", "chen", "--profile", "quick"]) == 2
    error = capsys.readouterr().err
    assert "CK+48 not found" in error and "shawon10/ckplus" in error and "Traceback" not in error


def test_unknown_profile_lists_the_known_ones(capsys):
    assert main(["run", "chen", "--profile", "nope"]) == 2
    assert "known profiles: full, ci, quick" in capsys.readouterr().err


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
