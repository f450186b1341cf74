"""A sixth, test-only replication (tests/sixth_replication/) run end to end through the contract."""

import pytest

from fer_common.records import load_record
from fer_common.registry import REPLICATIONS
from fer_common.runner import run_replication

from .sixth_replication.replication import SixthReplication


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    monkeypatch.setenv("FER_MODELS_DIR", str(folder))
    return folder


def test_an_extra_replication_joins_a_new_registry_and_leaves_the_suites_alone():
    registry = REPLICATIONS.with_replication(SixthReplication())
    assert registry.get("sixth_replication") == SixthReplication()
    assert registry.ids() == [*REPLICATIONS.ids(), "sixth_replication"]
    assert "sixth_replication" not in REPLICATIONS.ids()


def test_each_registry_entry_knows_its_metadata_file_without_making_the_replication():
    for replication_id in REPLICATIONS.ids():
        assert REPLICATIONS.metadata_file(replication_id) == REPLICATIONS.get(replication_id).metadata_file
    registry = REPLICATIONS.with_replication(SixthReplication())
    assert registry.metadata_file("sixth_replication") == SixthReplication.metadata_file


def test_the_runner_turns_its_jobs_into_a_record_figures_and_a_bundle(tmp_path, models_dir):
    replication = REPLICATIONS.with_replication(SixthReplication()).get("sixth_replication")
    record, path = run_replication(replication, "full", results_dir=tmp_path / "results", jobs_root=tmp_path / "jobs")

    assert path.parent == tmp_path / "results" / "sixth_replication"
    assert load_record(path).rows == record.rows  # written as built, and valid against the schema
    assert record.replication == "sixth_replication" and record.data == "real"
    assert list(record.settings["gray"].seeds) == ["0", "1"]
    accuracy, macro_f1 = record.rows
    assert (accuracy.metric, accuracy.reported, accuracy.verdict) == ("accuracy", 0.95, "reproduced")
    assert accuracy.band.low <= accuracy.mean <= accuracy.band.high
    assert (macro_f1.metric, macro_f1.verdict) == ("macro_f1", "beyond paper")

    provenance = record.provenance
    assert provenance.seeds == [0, 1] and provenance.config["epochs"] == 4
    # The precision switch and what it resolved to on this machine; the CPU kind the bands are grouped by.
    assert (provenance.runtime["precision"], provenance.runtime["policy"]) == ("float32", "float32")
    assert provenance.cpu_kind in ("avx2", "avx512-bf16", "amx-bf16", "other")
    assert (
        provenance.code_hash and provenance.dataset_checksum == SixthReplication().prepare(provenance.config).checksum
    )
    figures = {file.name for file in path.with_suffix("").iterdir()}
    assert {"gray-curves.png", "gray-confusion.png", "gray-roc.png", "gray-reliability.png"} <= figures
    # The seed of highest selection score (its train accuracy) is published as a bundle for `predict`.
    assert (models_dir / "sixth_replication-gray.keras").is_file()
    assert "highest train accuracy of seeds [0, 1]" in (models_dir / "sixth_replication-gray.json").read_text()
    # A full run keeps its job results beside its record (to be committed: see test_jobs.py), not in the cache.
    assert len(list((tmp_path / "results" / "sixth_replication" / "jobs").glob("gray-seed*.json"))) == 2
    assert not (tmp_path / "jobs").exists()


def test_a_profile_picks_its_seeds_and_config(tmp_path, models_dir):
    record, _ = run_replication(SixthReplication(), "quick", results_dir=tmp_path, jobs_root=tmp_path / "jobs")
    assert record.profile == "quick" and list(record.settings["gray"].seeds) == ["0"]
    assert record.settings["gray"].seeds["0"].history["accuracy"].__len__() == 2  # quick: 2 epochs
