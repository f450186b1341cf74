"""Metadata, records, tables and regression checks for a made-up replication in tmp_path."""

import copy
import json
import re
import shutil
from dataclasses import dataclass

import numpy as np
import pytest
import yaml

from fer_common import atomic, measurement_pages
from fer_common.bands import ABOVE, BEYOND_PAPER, NOT_RUN, REPRODUCED
from fer_common.checks import check_generated_files, check_records, check_value_in_regression_band
from fer_common.contract import SeedOutcome
from fer_common.errors import MetadataError, RecordError
from fer_common.execution import evaluate_outcome
from fer_common.metadata import code_hash, list_replications, load_metadata, metadata_hash
from fer_common.metrics import classification_report, wilson_interval
from fer_common.paths import portable
from fer_common.provenance import collect_provenance
from fer_common.records import (
    build_record,
    latest_record,
    load_record,
    load_records,
    record_content,
    validate_record,
    write_new_json,
    write_record,
)
from fer_common.report import (
    band_text,
    collect_papers,
    collect_recipes,
    interval_text,
    ours_text,
    outcome_counts,
    paper_result,
    statement_outcome,
    summary_text,
    verdict_text,
)
from fer_common.rows import baselines, record_rows, with_derived, with_orders
from fer_common.schema import ClassificationReport, Provenance, Record, SeedEntry, Setting
from fer_common.tables import (
    STATUS_END,
    STATUS_START,
    generated_files,
    render_markdown,
    render_status,
    write_tables,
)
from fer_common.verdicts import INCONCLUSIVE

from .helpers import REPO_ROOT, seed_entry, with_provenance

CLASSES = ["neg", "pos"]
TOY_YAML = """\
# A made-up replication used only by the tests.
id: toy
title: "A Toy Paper on Two Emotions"
authors: [Ada Example, Bo Sample]
year: 2024
paper_file: toy.txt
dataset: {name: toyset, data: real, description: "two classes"}
protocol: "random 80/20 split"
seeds: [0, 1]
config: {epochs: 20, batch_size: 8, optimizer: {name: rmsprop, lr: 0.001}}
profiles:
  quick: {seeds: [0], config: {epochs: 2, optimizer: {lr: 0.01}}}
settings:
  random_split: "the paper's protocol"
  subject_split: "leakage audit"
reported:
  - {metric: accuracy, setting: random_split, value: 0.85, n_test: 10, where: "Table 1"}
  - {metric: loss, setting: random_split, value: 0.40, kind: value, floor: 0.05, where: "Table 1"}
  - {metric: recall/pos, setting: random_split, value: 0.99, n_test: 5, where: "Figure 2"}
beyond_paper:
  - {metric: accuracy, setting: subject_split, note: "subject-disjoint split"}
  - {metric: loss, setting: subject_split}
assumptions:
  - {choice: "dropout 0.5", why: "rate not given"}
expected: []
"""
MISSING_YAML = """\
id: absent
title: "A Paper Whose Data We Lack"
authors: [Cy Nobody]
year: 2023
paper_file: absent.txt
dataset: {name: bigset, data: missing}
protocol: "80/10/10"
seeds: [0]
config: {}
settings: {main: "paper protocol"}
reported:
  - {metric: accuracy, setting: main, value: 0.70, n_test: 1000, where: "Sec. 4"}
missing: "bigset (licensed): put it in $FER_DATA_DIR/bigset"
"""


@dataclass
class RuntimeStub:
    precision: str = "float32"
    threads: int = 0


def _seed(correct: int, probability: float = 0.8) -> SeedEntry:
    """A seed scored on 10 images (5 per class) with `correct` of them right."""
    y = np.array([0] * 5 + [1] * 5)
    predicted = y.copy()
    predicted[: 10 - correct] = 1 - predicted[: 10 - correct]
    p = np.where(np.eye(2)[predicted] == 1, probability, 1 - probability)
    outcome = SeedOutcome(y, p, scored_set="toy test split", history={"loss": [0.9, 0.5], "val_loss": [1.0, 0.6]})
    return SeedEntry.model_validate(evaluate_outcome(outcome, CLASSES))


@pytest.fixture
def root(tmp_path, monkeypatch):
    base = tmp_path / "replications"
    for name, text in (("toy", TOY_YAML), ("absent", MISSING_YAML)):
        (base / name).mkdir(parents=True)
        (base / name / "metadata.yaml").write_text(text)
    (base / "toy" / "model.py").write_text("LAYERS = 3\n")
    (base / "notes").mkdir()  # no metadata.yaml: not a replication
    monkeypatch.setenv("FER_REPLICATIONS_DIR", str(base))
    return base


@pytest.fixture
def results(tmp_path):
    return tmp_path / "results"


def _settings() -> dict[str, dict[str, SeedEntry]]:
    # Seeds: 8/10 and 9/10 correct on random_split; the subject split is harder.
    return {
        "random_split": {"0": _seed(8), "1": _seed(9)},
        "subject_split": {"0": _seed(6), "1": _seed(7)},
    }


def _record(profile: str = "full") -> Record:
    meta = load_metadata("toy")
    config, seeds = meta.resolve(profile)
    provenance = collect_provenance(
        meta, config, seeds, "sha256:toy", 1.5, command="make replicate-toy", profile=profile
    )
    return build_record(meta, profile, "real", _settings(), provenance)


def _edit_metadata(root, **changes) -> None:
    path = root / "toy" / "metadata.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


# --- metadata -------------------------------------------------------------------------------------------


def test_list_and_load_metadata_via_env(root):
    assert list_replications() == ["absent", "toy"]
    meta = load_metadata("toy")
    assert meta.title.startswith("A Toy Paper") and meta.dataset.data == "real"
    assert meta.reported[1].kind == "value" and meta.reported[1].floor == 0.05
    assert meta.beyond_paper[0].note == "subject-disjoint split"
    assert meta.beyond_paper[1].kind == "value"  # the loss is not a proportion, even unsaid
    assert load_metadata(root / "toy").id == "toy"  # a folder path works too


def test_resolve_profiles(root):
    meta = load_metadata("toy", root)
    config, seeds = meta.resolve("full")
    assert seeds == [0, 1] and config["epochs"] == 20
    config, seeds = meta.resolve("quick")
    assert seeds == [0] and config["epochs"] == 2 and config["batch_size"] == 8
    assert config["optimizer"] == {"name": "rmsprop", "lr": 0.01}  # nested override merged
    assert meta.config["optimizer"]["lr"] == 0.001  # defaults untouched
    with pytest.raises(MetadataError, match="full, quick"):
        meta.resolve("nightly")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"year": "twenty"}, "year"),
        ({"dataset": {"name": "x", "data": "synthetic"}}, "dataset.data"),
        ({"profiles": {"quick": {"config": {"epoch": 2}}}}, "profiles.quick.config.epoch"),
        (
            {
                "reported": [
                    {
                        "metric": "accuracy",
                        "setting": "random_split",
                        "value": 83.25,
                        "n_test": 197,
                        "where": "T1",
                    }
                ]
            },
            r"reported\[0\].value",
        ),
        (
            {"reported": [{"metric": "accuracy", "setting": "nowhere", "value": 0.8, "n_test": 197, "where": "T1"}]},
            r"reported\[0\].setting",
        ),
        (
            {
                "reported": [
                    {
                        "metric": "loss",
                        "setting": "random_split",
                        "value": 0.5,
                        "kind": "value",
                        "where": "T1",
                    }
                ]
            },
            r"reported\[0\].floor",
        ),
        (
            {"expected": [{"metric": "accuracy", "setting": "random_split", "verdict": "great", "mean": 0.9}]},
            r"expected\[0\].verdict",
        ),
        ({"reportd": []}, "reportd"),
    ],
)
def test_metadata_errors_name_file_and_field(root, change, field):
    _edit_metadata(root, **change)
    with pytest.raises(MetadataError, match=rf"metadata.yaml: field '{field}'"):
        load_metadata("toy")


def test_missing_required_field(root):
    path = root / "toy" / "metadata.yaml"
    path.write_text(TOY_YAML.replace("protocol:", "# protocol:"))
    with pytest.raises(MetadataError, match="field 'protocol': is missing"):
        load_metadata("toy")


def test_unknown_replication_lists_known(root):
    with pytest.raises(MetadataError, match="known replications: absent, toy"):
        load_metadata("nope")


def test_metadata_hash_ignores_comments_but_not_values(root):
    path = root / "toy" / "metadata.yaml"
    before = metadata_hash(load_metadata("toy"))
    path.write_text("# another comment\n" + TOY_YAML)
    assert metadata_hash(load_metadata("toy")) == before
    path.write_text(TOY_YAML.replace("epochs: 20", "epochs: 30"))
    assert metadata_hash(load_metadata("toy")) != before


def test_a_new_ci_profile_leaves_full_records_current(root):
    path = root / "toy" / "metadata.yaml"
    before = metadata_hash(load_metadata("toy"))
    path.write_text(TOY_YAML.replace("profiles:\n", "profiles:\n  ci: {seeds: [0]}\n"))
    assert metadata_hash(load_metadata("toy")) == before
    assert metadata_hash(load_metadata("toy"), "ci") != metadata_hash(load_metadata("toy"), "quick")


def test_code_hash_tracks_py_files(root):
    before = code_hash("toy")
    (root / "toy" / "notes.txt").write_text("not code")
    assert code_hash("toy") == before
    (root / "toy" / "model.py").write_text("LAYERS = 4\n")
    assert code_hash("toy") != before


# --- records --------------------------------------------------------------------------------------------


def test_rows_bands_verdicts_and_ci(root):
    record = _record()
    rows = {(r.metric, r.setting): r for r in record.rows}
    accuracy = rows[("accuracy", "random_split")]
    assert accuracy.mean == pytest.approx(0.85) and accuracy.values == [0.8, 0.9]
    # Two seeds on ten images cannot tell 85% from much else: the paper's value is in a range wider than ±5.
    assert accuracy.band.binding == "sampling" and accuracy.verdict == INCONCLUSIVE
    assert accuracy.margin == 0.05 and accuracy.interval[0] < 0.85 < accuracy.interval[1]
    assert "wider than the paper's ±5.0%" in accuracy.judgement
    # CI = mean of the per-seed Wilson bounds (not a pooled 17/20 interval).
    (l8, h8), (l9, h9) = wilson_interval(8, 10), wilson_interval(9, 10)
    assert accuracy.ci == pytest.approx([(l8 + l9) / 2, (h8 + h9) / 2])
    loss = rows[("loss", "random_split")]
    assert loss.band.terms["sampling"] is None and loss.ci is None
    recall = rows[("recall/pos", "random_split")]  # 0.99 reported; we get 0.9/1.0 on 5 positives
    # Every positive is found in both seeds: two equal seeds show 100%, within ±5 of the paper's 99%.
    assert recall.values == [1.0, 1.0] and recall.ci is not None and recall.verdict == REPRODUCED
    beyond = rows[("accuracy", "subject_split")]
    assert beyond.verdict == BEYOND_PAPER and beyond.band is None and beyond.mean == pytest.approx(0.65)
    provenance = record.provenance
    assert provenance.seeds == [0, 1] and provenance.dataset_checksum == "sha256:toy"
    required = {name for name, field in Provenance.model_fields.items() if field.is_required()}
    assert required <= provenance.model_fields_set and "numpy" in provenance.packages


THRESHOLD_ROWS = [
    # A paper's "above 90%" beside its value for the same metric, and another reading of an ambiguous figure.
    {
        "metric": "recall/pos",
        "setting": "random_split",
        "value": 0.9,
        "n_test": 5,
        "claim": "at_least",
        "where": "Sec. 3",
    },
    {
        "metric": "recall/neg",
        "setting": "random_split",
        "value": 0.1,
        "n_test": 5,
        "claim": "at_most",
        "where": "Sec. 3",
    },
    {
        "metric": "confusion/neg->pos",
        "setting": "random_split",
        "value": 0.1,
        "n_test": 5,
        "reading": "alternative",
        "note": "other reading of the recall/pos row",
        "where": "Sec. 3",
    },
]


def _with_threshold_rows(root) -> None:
    _edit_metadata(root, reported=[*yaml.safe_load(TOY_YAML)["reported"], *THRESHOLD_ROWS])


def test_threshold_and_alternative_rows(root):
    _with_threshold_rows(root)
    record = _record()
    by_claim = {(r.metric, r.claim, r.reading): r for r in record.rows}
    assert by_claim[("recall/pos", "about", "primary")].reported == 0.99
    at_least = by_claim[("recall/pos", "at_least", "primary")]
    # 1.0 in both seeds: both reach "at least 90%", and so does our mean's bound.
    assert at_least.verdict == REPRODUCED and at_least.band.high == 1.0
    assert at_least.judgement.startswith("2 of 2 seeds at least 90.0%")
    assert at_least.band.low == pytest.approx(max(0.0, 0.9 - 1.96 * np.sqrt(0.9 * 0.1 / 5)))
    # recall/neg is 0.6 and 0.8 against "at most 10%": neither seed, yet two seeds' range still reaches 10%.
    at_most = by_claim[("recall/neg", "at_most", "primary")]
    assert at_most.verdict == INCONCLUSIVE and at_most.band.low == 0.0
    assert at_most.judgement.startswith("0 of 2 seeds at most 10.0%")
    alternative = by_claim[("confusion/neg->pos", "about", "alternative")]
    assert alternative.mean is not None and "recall/pos" in alternative.note


def test_checks_compare_expected_with_the_first_row_of_a_metric(root, results):
    _with_threshold_rows(root)
    write_record(_clean_record(), results)
    about = next(r for r in _record().rows if r.metric == "recall/pos")
    entry = {"metric": "recall/pos", "setting": "random_split", "verdict": about.verdict, "mean": about.mean}
    _edit_metadata(root, expected=[entry])
    write_tables(results)
    assert check_records(results).problems == []


@pytest.mark.parametrize(
    ("row", "field", "problem"),
    [
        ({**THRESHOLD_ROWS[0], "metric": "loss", "kind": "value", "floor": 0.1}, "claim", "kind: proportion only"),
        ({**THRESHOLD_ROWS[2], "note": ""}, "note", "which primary row"),
        ({**THRESHOLD_ROWS[0], "claim": "above"}, "claim", ""),
        ({**THRESHOLD_ROWS[0], "claim": "about", "value": 0.99}, "", "already listed"),
    ],
)
def test_threshold_and_reading_errors(root, row, field, problem):
    _edit_metadata(root, reported=[*yaml.safe_load(TOY_YAML)["reported"], row])
    where = r"reported\[3\]" + (f".{field}" if field else "")
    with pytest.raises(MetadataError, match=rf"field '{where}'.*{problem}"):
        load_metadata("toy")


def test_beyond_paper_row_may_not_repeat_a_reported_metric(root):
    _edit_metadata(root, beyond_paper=[{"metric": "recall/pos", "setting": "random_split"}])
    with pytest.raises(MetadataError, match=r"field 'beyond_paper\[0\]'.*already listed"):
        load_metadata("toy")


def test_missing_data_rows_are_not_run(root):
    meta = load_metadata("absent")
    provenance = collect_provenance(meta, {}, [0], None, 0.0)
    record = build_record(meta, "full", "missing", {}, provenance)
    (row,) = record.rows
    assert row.verdict == NOT_RUN and row.mean is None
    assert "licensed" in row.note and record.missing == row.note


def test_the_report_derives_rows_from_the_seeds_not_from_the_rows_a_record_kept(root):
    """Verdicts are derived: a record's stored rows are the run's printout, and a changed rule or band re-reads
    its per-seed values (here, a record whose stored verdict was tampered with still reads as its seeds say)."""
    meta = load_metadata("toy")
    record = _record()
    assert record_rows(meta, record) == record.rows
    tampered = record.model_copy(
        update={"rows": [record.rows[0].model_copy(update={"verdict": ABOVE}), *record.rows[1:]]}
    )
    assert tampered.rows[0].verdict == ABOVE
    assert record_rows(meta, tampered) == record.rows


def test_run_notes_in_the_provenance_qualify_every_derived_row(root):
    meta = load_metadata("toy")
    provenance = collect_provenance(meta, meta.config, meta.seeds, None, 0.0, options=RuntimeStub())
    assert provenance["runtime"] == {"precision": "float32", "threads": 0}
    provenance["run_notes"] = ["data differs from its SHA256SUMS"]
    record = build_record(meta, "full", "real", _settings(), provenance)
    assert all(row.note.endswith("data differs from its SHA256SUMS") for row in record_rows(meta, record))


def test_build_record_rejects_unknown_profile_and_setting(root):
    meta = load_metadata("toy")
    provenance = collect_provenance(meta, meta.config, meta.seeds, None, 0.0)
    with pytest.raises(MetadataError, match="unknown profile 'nightly'"):
        build_record(meta, "nightly", "real", _settings(), provenance)
    with pytest.raises(ValueError, match="not declared"):
        build_record(meta, "full", "real", {"other": {"0": _seed(5)}}, provenance)


def test_write_load_and_never_overwrite(root, results):
    record = _record()
    first = write_record(record, results)
    assert re.fullmatch(r"full-\d{8}T\d{6}Z-[0-9a-z]{5,7}\.json", first.name), first.name
    content = first.read_bytes()
    second = write_record(record, results)  # same second, same commit -> a new name, no clobbering
    assert second != first and second.name.endswith("-2.json")
    assert first.read_bytes() == content
    loaded = load_record(first)
    assert loaded.path == first
    assert record_content(loaded) == json.loads(content) and "path" not in json.loads(content)
    assert loaded == record.model_copy(update={"path": first})
    assert latest_record("toy", results_dir=results).path == second


def test_never_overwrite_without_hard_links(root, results, monkeypatch):
    def no_links(source, target):
        raise OSError("hard links not supported")

    monkeypatch.setattr(atomic.os, "link", no_links)
    first = write_record(_record(), results)
    second = write_record(_record(), results)
    assert first != second and len(list((results / "toy").glob("*.json"))) == 2
    assert not list((results / "toy").glob(".*.tmp"))


def test_interrupted_write_leaves_no_record(root, results, monkeypatch):
    def crash(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        write_record(_record(), results)
    assert list((results / "toy").iterdir()) == []  # not even the temp file
    monkeypatch.undo()
    # A temp file left by a killed process is ignored by the loaders.
    (results / "toy" / ".full-20240101T000000Z-nogit.abc.tmp").write_text('{"half": ')
    assert load_records(results) == [] and latest_record("toy", results_dir=results) is None


def test_corrupt_record_names_the_file(root, results):
    path = write_record(_record(), results)
    path.write_text(path.read_text()[:100])
    with pytest.raises(RecordError, match=re.escape(path.name)):
        load_record(path)
    with pytest.raises(RecordError, match=re.escape(path.name)):
        load_records(results)


def test_schema_violation_names_file_and_field(root, results):
    path = write_record(_record(), results)
    data = json.loads(path.read_text())
    data["rows"][0]["verdict"] = "kind of"
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match=rf"{re.escape(path.name)}.*rows\[0\].verdict"):
        load_record(path)


def test_schema(root):
    record = _record()
    content = record_content(record)
    assert validate_record(content) == record
    assert validate_record(json.loads(json.dumps(content, allow_nan=False))) == record  # strict JSON round trip
    for broken, field in [
        ({"schema_version": 1}, "schema_version"),
        ({"schema_version": 3}, "schema_version"),
        ({"data": "real-ish"}, "data"),
        ({"provenance": {"git_commit": "x"}}, "provenance"),
        ({"profile": "../escape"}, "profile"),
    ]:
        bad = {**copy.deepcopy(content), **broken}
        with pytest.raises(RecordError, match=field):
            validate_record(bad)
    bad = copy.deepcopy(content)
    del bad["settings"]["random_split"]["summary"]["accuracy"]["sd"]
    with pytest.raises(RecordError, match="settings.random_split.summary.accuracy"):
        validate_record(bad)
    bad = copy.deepcopy(content)
    bad["rows"][0]["band"] = None
    with pytest.raises(RecordError, match=r"rows\[0\].band"):
        validate_record(bad)


def test_latest_record_picks_newest_of_profile(root, results):
    old = with_provenance(_record(), created_utc="2024-01-01T00:00:00Z")
    new = with_provenance(_record(), created_utc="2024-06-01T00:00:00Z")
    quick = with_provenance(_record("quick"), created_utc="2025-01-01T00:00:00Z")
    for record in (new, old, quick):
        write_record(record, results)
    assert latest_record("toy", "full", results).provenance.created_utc == "2024-06-01T00:00:00Z"
    assert latest_record("toy", "quick", results).profile == "quick"
    assert [r.provenance.created_utc[:4] for r in load_records(results)] == ["2024", "2024", "2025"]


# --- tables ---------------------------------------------------------------------------------------------


def test_table_rows_and_files(root, results):
    write_record(_record(), results)
    write_tables(results)
    papers = {paper.meta.id: paper for paper in collect_papers(results)}
    toy = papers["toy"]
    assert [(r.setting, r.metric) for r in toy.claims] == [
        ("random_split", "accuracy"),
        ("random_split", "loss"),
        ("random_split", "recall/pos"),
    ]
    assert [(r.setting, r.metric) for r in toy.beyond_paper] == [
        ("subject_split", "accuracy"),
        ("subject_split", "loss"),
    ]
    accuracy, loss = toy.claims[:2]
    assert re.fullmatch(r"85\.0 ± 7\.1% \[\d+\.\d, \d+\.\d\]", ours_text(accuracy)), ours_text(accuracy)
    assert band_text(accuracy).endswith("(sampling)") and accuracy.verdict == INCONCLUSIVE
    assert verdict_text(accuracy) == "inconclusive: ours equal to the paper's, too uncertain to tell"
    assert interval_text(accuracy).endswith("% (±5.0)")
    assert accuracy.n_seeds == 2 and toy.record.data == "real" and toy.stale == []
    assert re.fullmatch(r"\d\.\d{3} ± \d\.\d{3}", ours_text(loss)), ours_text(loss)
    assert papers["absent"].record is None and summary_text(papers["absent"]).startswith("no record yet")

    markdown = (results / "TABLE.md").read_text()
    summary = f"([page](toy/README.md), real data): {summary_text(toy)}"
    assert f"- **Example et al. (2024)** {summary}" in markdown
    assert summary_text(toy) == "1 reproduced, 0 not reproduced, 2 inconclusive of 3 claims"
    assert "| [Example et al. (2024)](toy/README.md) | " in markdown  # the outcome counts open the page
    assert (
        "### How to read a verdict" in markdown
        and "### How to read a verdict" in (results / "toy" / "README.md").read_text()
    )
    # Without a record, the kind of data comes from the metadata.
    assert "- **Nobody (2023)** ([page](absent/README.md), missing data): no record yet" in markdown
    assert (
        "| Nobody (2023) | accuracy (main) | Sec. 4 | 70.0% | — | — | 1000 | — | no result yet: run the replication |"
        in markdown
    )
    assert "| Example et al. (2024) | accuracy (random split) | Table 1 | 85.0% |" in markdown
    assert "subject split" not in markdown  # beyond-paper rows live on the replication's page
    csv_text = (results / "TABLE.csv").read_text()
    header = "paper,setting,metric,claim,where,reported,ours,majority,chance,n_test,one_more_run,verdict,why"
    assert csv_text.splitlines()[0].startswith(header)
    assert len(csv_text.splitlines()) == 1 + 3 + 1  # header, toy's claims, absent's claim
    tex = (results / "TABLE.tex").read_text()
    assert "\\begin{tabular}" in tex and "85.0\\%" in tex and "$\\pm$" in tex
    page = (results / "toy" / "README.md").read_text()
    assert "## Paper claims" in page and "| subject_split | `accuracy` |" in page
    assert not list(results.glob(".*.tmp"))


def test_write_tables_returns_paths(root, results):
    paths = write_tables(results)
    assert [p.relative_to(results).as_posix() for p in paths] == [
        "TABLE.md",
        "TABLE.csv",
        "TABLE.tex",
        "absent/README.md",
        "toy/README.md",
        "audits.md",
    ]
    assert "no record yet" in paths[0].read_text()


def test_write_tables_twice_gives_identical_files(root, results):
    write_record(_record(), results)
    first = {path: path.read_text() for path in write_tables(results)}
    assert {path: path.read_text() for path in write_tables(results)} == first


def test_table_marks_stale_records(root, results):
    write_record(_record(), results)
    (root / "toy" / "model.py").write_text("LAYERS = 5\n")
    (toy,) = [p for p in collect_papers(results) if p.meta.id == "toy"]
    assert toy.stale == ["code changed: replications/toy/model.py"]
    write_tables(results)
    assert "| Example et al. (2024) *stale* |" in (results / "TABLE.md").read_text()
    assert "> **Stale:** code changed" in (results / "toy" / "README.md").read_text()


def test_table_marks_records_made_under_other_metadata_stale(root, results):
    write_record(_record(), results)
    _edit_metadata(root, protocol="a different protocol")
    (toy,) = [p for p in collect_papers(results) if p.meta.id == "toy"]
    assert toy.stale == ["metadata changed"]


# --- regression checks ----------------------------------------------------------------------------------


def _expect(root, verdict: str, mean: float, sd: float = 0.01) -> None:
    _edit_metadata(
        root,
        expected=[{"metric": "accuracy", "setting": "random_split", "verdict": verdict, "mean": mean, "sd": sd}],
    )


def _clean_record() -> Record:
    """A full record as a clean tree makes it (the tests may run in a tree with uncommitted changes)."""
    return with_provenance(_record(), git_dirty=False)


def test_a_runnable_replication_without_a_full_record_warns_and_fails_the_strict_check(root, results):
    # `absent` has no data (dataset.data: missing): it needs no record; `toy` can run, so it should have one:
    # a warning until its first full run lands, a failure before a release.
    write_tables(results)
    missing = ["toy: no full record yet — run `make replicate-toy`"]
    assert check_records(results) == ([], missing)
    assert check_records(results, strict=True) == (missing, [])
    _expect(root, INCONCLUSIVE, 0.85)
    write_record(_clean_record(), results)
    write_tables(results)
    report = check_records(results)
    assert report.ok and report.warnings == []


def test_check_records_reads_the_recipes_beside_the_replications_too(root, results):
    path = write_record(with_provenance(_clean_record(), git_dirty=True), results)
    (root.parent / "recipes").mkdir()
    shutil.move(root / "toy", root.parent / "recipes" / "toy")  # our own recipe now, not a paper
    problems = _checked(results).problems
    assert any(problem.startswith(f"toy ({path.name}): made from a dirty tree") for problem in problems)


def _checked(results, **options):
    """check_records after regenerating the tables, so that only the records' own problems remain."""
    write_tables(results)
    return check_records(results, **options)


def test_check_records_fails_on_a_dirty_full_record(root, results):
    path = write_record(with_provenance(_clean_record(), git_dirty=True), results)
    (problem,) = _checked(results).problems
    assert problem.startswith(f"toy ({path.name}): made from a dirty tree") and "clean commit" in problem


def test_check_records_fails_on_an_invalid_record(root, results):
    path = write_record(_clean_record(), results)
    broken = json.loads(path.read_text())
    del broken["provenance"]["code_hash"]
    path.write_text(json.dumps(broken))
    problem, tables = check_records(results).problems
    assert tables.startswith("tables not regenerated:")
    assert problem.startswith(f"toy: {path}: does not follow the record schema") and "code_hash" in problem


def test_a_stale_record_warns_and_fails_the_strict_check(root, results):
    path = write_record(_clean_record(), results)
    (root / "toy" / "model.py").write_text("LAYERS = 5\n")
    _edit_metadata(root, protocol="a different protocol")
    expected = (
        f"toy ({path.name}): stale (metadata changed; code changed: replications/toy/model.py); "
        "re-run `make replicate-toy`"
    )
    assert _checked(results) == ([], [expected])
    assert _checked(results, strict=True) == ([expected], [])


def test_a_record_of_jobs_from_other_code_is_stale(root, results):
    write_record(with_provenance(_clean_record(), job_commits=["a" * 40, "b" * 40], mixed_code=True), results)
    (problem,) = _checked(results, strict=True).problems
    assert "stale (jobs made by other code (commits aaaaaaa, bbbbbbb))" in problem


def test_check_records_catches_verdict_change_and_band_breach(root, results):
    write_record(_record(), results)
    write_tables(results)
    _expect(root, "not reproduced (below)", 0.60)
    problems, warnings = check_records(results)
    assert any("verdict 'inconclusive', expected 'not reproduced (below)'" in p for p in problems)
    assert any("mean 0.8500 outside regression band [0.5800, 0.6200]" in p for p in problems)
    # Filling in `expected` records a reviewed run: it must not make that run's own record stale.
    assert warnings == []


def test_check_value_in_regression_band(root):
    _expect(root, REPRODUCED, 0.85, sd=0.02)
    meta = load_metadata("toy")
    ok, low, high = check_value_in_regression_band(meta, "accuracy", "random_split", 0.82)
    assert ok and (low, high) == pytest.approx((0.81, 0.89))
    assert not check_value_in_regression_band(meta, "accuracy", "random_split", 0.80)[0]
    with pytest.raises(MetadataError, match="no expected mean"):
        check_value_in_regression_band(meta, "loss", "random_split", 0.4)


def test_replication_page_groups_rows_and_moves_timing_to_speed(root, results):
    beyond = [
        {"metric": "accuracy", "setting": "subject_split", "group": "leakage audit", "note": "subject-disjoint split"},
        {"metric": "loss", "setting": "subject_split", "kind": "value", "group": "timing"},
    ]
    _edit_metadata(root, beyond_paper=beyond)
    write_record(_record(), results)
    write_tables(results)
    page = (results / "toy" / "README.md").read_text()
    leakage, speed = page.index("### Leakage audit"), page.index("## Speed (this machine)")
    assert leakage < page.index("| subject_split | `accuracy` |") < speed < page.index("| subject_split | `loss` |")
    assert "subject split" not in (results / "TABLE.md").read_text()  # the headline holds paper claims only


def test_readme_status_is_rewritten_between_markers(root, results):
    readme = results.parent / "README.md"
    readme.write_text(f"# intro\n\n{STATUS_START}\n| old | table |\n{STATUS_END}\n\n## after\n")
    write_record(_record(), results)
    write_tables(results)
    text = readme.read_text()
    assert text.startswith(f"# intro\n\n{STATUS_START}\n| replication | paper | dataset | status |\n")
    assert "| old | table |" not in text and text.endswith(f"{STATUS_END}\n\n## after\n")
    assert "| full run recorded: 1 reproduced, 0 not reproduced, 2 inconclusive of 3 claims |" in text
    readme.write_text("# a README without markers\n")
    write_tables(results)
    assert readme.read_text() == "# a README without markers\n"


def test_check_fails_when_a_generated_file_is_edited(root, results):
    write_record(_clean_record(), results)
    write_tables(results)
    assert check_generated_files(results) == []
    page = results / "toy" / "README.md"
    page.write_text(page.read_text().replace("reproduced", "hand-edited"))
    (results / "TABLE.csv").unlink()
    problems = check_records(results).problems
    assert any(p.startswith(f"{page}: differs") for p in problems), problems
    assert any(p.startswith(f"{results / 'TABLE.csv'}: missing") for p in problems), problems
    write_tables(results)
    assert check_records(results).ok


# --- what could explain a claim, and the audits page ------------------------------------------------------


def _with_hypotheses(root) -> None:
    """Toy's accuracy reported as 40% (ours 85% over two seeds on ten images: inconclusive) with two hypotheses:
    `quick`, and a profile that has no record."""
    data = yaml.safe_load((root / "toy" / "metadata.yaml").read_text())
    data["reported"][0]["value"] = 0.40
    data["profiles"]["explain_longer"] = {"config": {"epochs": 40}}
    data["hypotheses"] = [
        {"metric": "accuracy", "setting": "random_split", "profile": "quick", "hypothesis": "fewer epochs"},
        {"metric": "accuracy", "setting": "random_split", "profile": "explain_longer", "hypothesis": "more epochs"},
    ]
    _edit_metadata(root, **data)


def test_a_claim_not_shown_to_reproduce_gets_its_hypotheses_read_against_its_band(root, results):
    _with_hypotheses(root)
    write_record(_record(), results)
    write_record(_record("quick"), results)
    write_tables(results)
    (toy,) = [paper for paper in collect_papers(results) if paper.meta.id == "toy"]
    [explained] = toy.explained
    assert explained.claim.metric == "accuracy" and explained.claim.verdict == INCONCLUSIVE
    quick, longer = explained.explanations
    assert quick.record_name.startswith("quick-") and quick.row.mean == pytest.approx(0.85) and quick.stale == []
    assert longer.record_name == "" and longer.row is None

    page = (results / "toy" / "README.md").read_text()
    section = page[page.index("## What could explain the gaps") :]
    assert f"| accuracy (random split): 40.0%, band {band_text(explained.claim)} | record |" in section
    assert "| the replication as run (`full`) | 85.0 ± 7.1% (above) |" in section
    assert f"| fewer epochs; `quick` | 85.0 ± 7.1% (above) | [{quick.record_name}]({quick.record_name}) |" in section
    assert "| more epochs; `explain_longer` | not run yet | not run yet: `make explain-toy` |" in section
    link = "](toy/README.md#what-could-explain-the-gaps) |"
    table = (results / "TABLE.md").read_text()
    assert f"| [inconclusive: ours 45.0 points higher, too uncertain to tell{link}" in table
    assert table.count("#what-could-explain") == 2  # the summary line and the claim; reproduced claims link nowhere
    assert (
        "[what could explain the gaps](toy/README.md#what-could-explain-the-gaps): "
        "1 of 2 hypotheses computed; none lands inside a band" in table
    )
    assert "[inconclusive: ours 45.0 points higher, too uncertain to tell](#what-could-explain-the-gaps)" in page
    # quick's record gives a number, so the page has its figure; without that record it would have none
    assert (results / "toy" / "hypotheses.svg").is_file()


def test_hypotheses_not_computed_yet_give_no_figure(root, results):
    _with_hypotheses(root)
    write_record(_record(), results)
    write_tables(results)
    assert not (results / "toy" / "hypotheses.svg").exists()
    assert "hypotheses.svg" not in (results / "toy" / "README.md").read_text()


def test_a_hypothesis_inside_the_band_is_bold_and_one_row_spans_the_claims_it_explains(root, results):
    _with_hypotheses(root)
    data = yaml.safe_load((root / "toy" / "metadata.yaml").read_text())
    data["reported"][1]["value"] = 0.05  # the loss: ours about 0.43, not reproduced
    data["hypotheses"].append({**data["hypotheses"][0], "metric": "loss"})
    data["hypotheses"].append({**data["hypotheses"][0], "measure": "recall/neg", "hypothesis": "another metric"})
    _edit_metadata(root, **data)
    write_record(_record(), results)
    write_record(_record("quick"), results)
    write_tables(results)
    section = (results / "toy" / "README.md").read_text().split("## What could explain the gaps")[1]
    rows = [line for line in section.splitlines() if line.startswith("| fewer epochs")]
    assert len(rows) == 1 and rows[0].count("(above)") == 2, rows  # both claims, one row
    # recall/neg has no row (no claim, not beyond the paper): the hypothesis reads the record's summary (70%).
    assert "| another metric (reads `recall/neg`); `quick` | **70.0 ± 14.1% (inside)** | — |" in section
    figure = results / "toy" / "hypotheses.svg"
    assert "](hypotheses.svg)" in section and figure.read_text().startswith("<?xml")
    first = figure.read_bytes()
    write_tables(results)
    assert figure.read_bytes() == first  # the same records give the same bytes
    summary = "2 of 3 hypotheses computed; 1 lands inside a band: `recall/neg` for accuracy (random split)"
    assert summary in (results / "TABLE.md").read_text()
    assert (
        f"[What could explain the gaps](#what-could-explain-the-gaps): {summary}; judged on every claim"
        in (results / "toy" / "README.md").read_text()
    )
    (toy,) = [paper for paper in collect_papers(results) if paper.meta.id == "toy"]
    link = "(results/toy/README.md#what-could-explain-the-gaps)"
    assert f"{link}: 2 of 3 hypotheses computed; 1 lands inside a band; judged" in render_status([toy])


def test_the_audits_page_says_how_to_make_what_is_missing(root, results):
    write_tables(results)
    audits = (results / "audits.md").read_text()
    for command in ("make audit-duplicates", "make cross-dataset", "make bench-detectors"):
        assert f"Not made yet: `{command}`." in audits
    assert "(audits.md)" in (results / "TABLE.md").read_text()


def test_the_latest_duplicate_audit_lands_on_the_audits_page_and_its_line_on_the_replications_page(
    root, results, monkeypatch
):
    folder = results / "audits" / "fer2013-duplicates"
    folder.mkdir(parents=True)
    for stamp, count in (("2024-01-01T00:00:00Z", 9), ("2025-01-01T00:00:00Z", 3)):
        record = {"count": count, "provenance": {"created_utc": stamp, "git_commit": "abcdef0123"}}
        (folder / f"audit-{stamp[:4]}.json").write_text(json.dumps(record))

    def audit_markdown(record):
        return f"## Duplicates found\n\n- `toy`: {record['count']} of its test images have a copy.\n- `other`: none.\n"

    monkeypatch.setattr(measurement_pages, "audit_markdown", audit_markdown)
    write_tables(results)
    audits = (results / "audits.md").read_text()
    assert "- `toy`: 3 of its test images" in audits and "9 of its" not in audits
    assert "[`audits/fer2013-duplicates/audit-2025.json`](audits/fer2013-duplicates/audit-2025.json)" in audits
    page = (results / "toy" / "README.md").read_text()
    assert (
        "**Duplicates found** ([the audit](../audits.md#duplicates-found)): `toy`: 3 of its test images have a copy."
        in page
    )
    assert "`other`" not in page and "## Data audits" not in (results / "absent" / "README.md").read_text()


def test_the_claims_figure_is_generated_with_the_tables_byte_for_byte_and_checked_like_them(root, results):
    write_tables(results)
    assert not (results / "claims.svg").exists()  # no record, nothing to plot
    write_record(_record(), results)
    write_tables(results)
    figure = results / "claims.svg"
    assert figure.read_text().startswith("<?xml") and "(claims.svg)" in (results / "TABLE.md").read_text()
    assert generated_files(results)[figure] == figure.read_text()  # no date, fixed ids: the same bytes again
    figure.write_text(figure.read_text().replace("<svg", "<svg data-edited='1'", 1))
    assert any(p.startswith(f"{figure}: differs") for p in check_generated_files(results))


RECIPE_YAML = """\
id: toyrecipe
title: "Our toy model (not a replication)"
authors: [fer-replicate]
year: 2026
paper_file: "none: our own recipe"
dataset: {name: toyset, data: real, description: "two classes"}
protocol: "NOT A REPLICATION: chosen on a validation split, scored once on the test split"
seeds: [0, 1]
config: {epochs: 3}
settings:
  random_split: "the test split, one pass"
beyond_paper:
  - {metric: accuracy, setting: random_split, group: recipe, note: "target >= 90%"}
  - {metric: loss, setting: random_split, kind: value, group: extra}
"""


def _cross_dataset_record(reference_ci: list[float]) -> dict:
    """The part of a cross-dataset record the headline reads: the `fer` reference cell on toyset."""
    cell = {"model": "fer (reference)", "test_set": "toyset test", "status": "scored", "n": 10}
    cell.update(accuracy=sum(reference_ci) / 2, accuracy_ci=reference_ci)
    return {"test_sets": [{"dataset": "toyset", "label": "toyset test"}], "cells": [cell]}


@pytest.mark.parametrize(
    ("reference_ci", "verdict"),
    [([0.1, 0.3], "above the `fer` package's interval"), ([0.5, 0.9], "overlaps the `fer` package's interval")],
)
def test_a_recipe_gets_a_page_and_a_headline_line_beside_the_fer_package(root, results, reference_ci, verdict):
    recipes = root.parent / "recipes"
    (recipes / "toyrecipe").mkdir(parents=True)
    (recipes / "toyrecipe" / "metadata.yaml").write_text(RECIPE_YAML)
    meta = load_metadata("toyrecipe", recipes)
    assert "toyrecipe" not in list_replications()  # a recipe is no paper: the claims table never lists it
    headline = generated_files(results)[results / "TABLE.md"]
    assert "- **toyrecipe** ([page](toyrecipe/README.md)): no record yet: run `make replicate-toyrecipe`" in headline

    config, seeds = meta.resolve()
    provenance = collect_provenance(meta, config, seeds, "sha256:toy", 1.5, command="make replicate-toyrecipe")
    settings = {"random_split": {"0": _seed(8), "1": _seed(9)}}
    write_record(build_record(meta, "full", "real", settings, provenance), results)
    recipes_found = collect_recipes(results)
    headline = render_markdown(collect_papers(results), recipes_found, _cross_dataset_record(reference_ci))
    line = next(line for line in headline.splitlines() if line.startswith("- **toyrecipe**"))
    assert "accuracy on toyset test: `random_split` 85.0 ± 7.1%" in line and "(2 seeds), " + verdict in line
    assert "The `fer` package on the same 10 images (cross-dataset record)" in line and "Target >= 90%" in line
    page = generated_files(results)[results / "toyrecipe" / "README.md"]
    assert "`recipes/toyrecipe/metadata.yaml`" in page and "our own model, not a replication" in page
    assert "## Paper claims" not in page and "## Results" in page and "### Recipe" in page


# --- committed files name no machine's folders ---------------------------------------------------------

ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~$\-\])])/(?:[\w.-]+/)+[\w.-]*")


def test_no_committed_result_or_shipped_model_names_an_absolute_path():
    found = []
    for folder in (REPO_ROOT / "results", REPO_ROOT / "fer_common" / "pretrained"):
        for path in folder.rglob("*"):
            if path.suffix in (".json", ".md", ".csv", ".tex") and path.is_file():
                found += [f"{path}: {m.group(0)}" for m in ABSOLUTE_PATH.finditer(path.read_text(encoding="utf-8"))]
    assert not found, "\n".join(found[:10])


def test_paths_are_written_portably(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path / "datasets"))
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    text = f"{REPO_ROOT}/.venv/bin/fer-replicate run x; {tmp_path}/datasets/fer2013 missing; {tmp_path}/cache/m.keras"
    assert portable(text) == ".venv/bin/fer-replicate run x; $FER_DATA_DIR/fer2013 missing; $FER_CACHE_DIR/m.keras"
    assert portable(f"{REPO_ROOT}") == "." and portable(f"{REPO_ROOT}ly/x") == f"{REPO_ROOT}ly/x"
    written = write_new_json(tmp_path / "out", "x", {"record": REPO_ROOT / "results" / "x.json", "n": [1]})
    assert json.loads(written.read_text()) == {"record": "results/x.json", "n": [1]}
    assert ABSOLUTE_PATH.search(f"see {tmp_path}/x") and not ABSOLUTE_PATH.search("see results/x, and/or http://a.b/c")


def test_accuracy_and_recall_rows_carry_what_a_model_that_learnt_nothing_scores():
    def seed(supports: dict[str, int]) -> SeedEntry:
        """A seed whose test set has `supports` images of each class (every one predicted right)."""
        y = np.repeat(np.arange(len(supports)), list(supports.values()))
        report = classification_report(y, np.eye(len(supports))[y], list(supports))
        return seed_entry(report=ClassificationReport.model_validate(report))

    # Two seeds whose test sets differ (random splits): the majority share is their mean.
    seeds = {"0": seed({"neg": 15, "neu": 62, "pos": 18}), "1": seed({"neg": 20, "neu": 55, "pos": 20})}
    chance, majority = baselines("accuracy", seeds)
    assert chance == pytest.approx(1 / 3) and majority == pytest.approx((62 / 95 + 55 / 95) / 2)
    assert baselines("recall/neu", seeds) == (pytest.approx(1 / 3), None)  # always-neu's recall is 1 or 0
    assert baselines("macro_f1", seeds) == (None, None) and baselines("accuracy", {"0": seed_entry()}) == (None, None)


def _seed_wrong(neg_wrong: int, pos_wrong: int) -> SeedEntry:
    """A seed on 10 images (5 per class) with `neg_wrong` negatives and `pos_wrong` positives misclassified."""
    y = np.array([0] * 5 + [1] * 5)
    predicted = y.copy()
    predicted[:neg_wrong] = 1
    predicted[5 : 5 + pos_wrong] = 0
    p = np.where(np.eye(2)[predicted] == 1, 0.8, 0.2)
    return SeedEntry.model_validate(evaluate_outcome(SeedOutcome(y, p, scored_set="toy test split"), CLASSES))


def _record_of(profile: str, neg_wrong: int, pos_wrong: int) -> Record:
    """A record whose two seeds agree: its ranges are tight, so its verdicts are clear."""
    meta = load_metadata("toy")
    config, seeds = meta.resolve(profile)
    provenance = collect_provenance(meta, config, seeds, "sha256:toy", 1.5, profile=profile)
    seed = _seed_wrong(neg_wrong, pos_wrong)
    settings = {"random_split": {"0": seed, "1": seed}}
    return build_record(meta, profile, "real", settings, provenance)


def test_a_variant_that_fixes_one_claim_and_breaks_another_is_not_an_explanation(root, results):
    data = yaml.safe_load((root / "toy" / "metadata.yaml").read_text())
    data["reported"] = [
        {"metric": "accuracy", "setting": "random_split", "value": 0.6, "n_test": 10, "where": "Table 1"},
        {"metric": "recall/pos", "setting": "random_split", "value": 1.0, "n_test": 5, "where": "Figure 2"},
    ]
    data["beyond_paper"] = []
    data["profiles"]["explain_fewer_epochs"] = {"config": {"epochs": 5}}
    data["hypotheses"] = [
        {"metric": "accuracy", "setting": "random_split", "profile": "explain_fewer_epochs", "hypothesis": "fewer"}
    ]
    _edit_metadata(root, **data)
    write_record(_record_of("full", 1, 0), results)  # accuracy 90% (the paper: 60%), every positive found
    write_record(_record_of("explain_fewer_epochs", 2, 2), results)  # accuracy 60%, but positives missed
    (toy,) = [paper for paper in collect_papers(results) if paper.meta.id == "toy"]
    assert [claim.verdict for claim in toy.claims] == [ABOVE, REPRODUCED]
    [variant] = toy.variants
    assert variant.brings_in == [0] and variant.pushes_out == [1] and not variant.explains
    write_tables(results)
    page = (results / "toy" / "README.md").read_text()
    assert "### Every claim under every variant" in page and "| `explain_fewer_epochs` (2 seeds) | ✓ 60.0% |" in page
    assert "none explains a gap without opening another" in (results / "TABLE.md").read_text()

    write_record(_record_of("explain_fewer_epochs", 2, 0), results)  # 80%: no closer to 60%, breaks nothing
    (toy,) = [paper for paper in collect_papers(results) if paper.meta.id == "toy"]
    assert toy.variants[0].brings_in == [] and not toy.variants[0].explains


def test_a_variant_can_read_the_claims_in_another_setting_of_the_same_record(root, results):
    hypothesis = {"metric": "accuracy", "setting": "random_split", "profile": "full", "reads_setting": "subject_split"}
    _edit_metadata(root, hypotheses=[{**hypothesis, "hypothesis": "no subject on both sides of the split"}])
    write_record(_record(), results)
    (toy,) = [paper for paper in collect_papers(results) if paper.meta.id == "toy"]
    [variant] = toy.variants
    assert variant.profile == "full, read in subject_split" and variant.rows[0].mean == pytest.approx(0.65)
    assert variant.rows[0].claim == "about" and variant.rows[0].reported == 0.85  # judged against the paper's claim


def test_each_claim_counts_once_by_its_primary_reading(root, results):
    _with_threshold_rows(root)  # adds two threshold claims and another reading of the recall/pos sentence
    write_record(_record(), results)
    (toy,) = [paper for paper in collect_papers(results) if paper.meta.id == "toy"]
    assert len(toy.claims) == 6
    text = summary_text(toy)
    assert text.endswith("of 5 claims (and 1 other reading of ambiguous sentences)"), text


def test_an_order_claim_is_the_share_of_cross_tier_pairs_in_the_papers_order(root):
    """Tiers a > b > c: pairs (a,b), (a,c), (b,c). Seed 0 keeps the order; seed 1 ties a with b and puts both
    below c (0.5 + 0 + 0 of 3); seed 2 lacks c and gets no value."""
    order_row = {
        "metric": "order/abc",
        "setting": "random_split",
        "value": 1.0,
        "kind": "value",
        "floor": 0.1,
        "where": "Sec. 2",
    }
    _edit_metadata(
        root,
        reported=[*yaml.safe_load(TOY_YAML)["reported"], order_row],
        orders=[{"metric": "order/abc", "setting": "random_split", "tiers": [["a"], ["b"], ["c"]]}],
    )
    meta = load_metadata("toy")
    seeds = {
        "0": seed_entry(metrics={"a": 0.9, "b": 0.5, "c": 0.1}),
        "1": seed_entry(metrics={"a": 0.5, "b": 0.5, "c": 0.7}),
        "2": seed_entry(metrics={"a": 0.9, "b": 0.5}),
    }
    derived = with_orders(meta, {"random_split": Setting(seeds=seeds, summary={})})["random_split"].seeds
    assert derived["0"].metrics["order/abc"] == 1.0
    assert derived["1"].metrics["order/abc"] == pytest.approx(0.5 / 3)
    assert "order/abc" not in derived["2"].metrics and "order/abc" not in seeds["0"].metrics
    _edit_metadata(root, orders=[{"metric": "order/none", "setting": "random_split", "tiers": [["a"], ["b"]]}])
    with pytest.raises(MetadataError, match=r"field 'orders\[0\]'.*no row for metric 'order/none'"):
        load_metadata("toy")


def test_rows_that_check_parts_of_one_statement_count_as_one_claim(root):
    """Boyce's one sentence about one confusion matrix gives three recall rows: they count once, and the claim
    holds only if every part does."""
    _with_threshold_rows(root)
    separate = outcome_counts(paper_result(load_metadata("toy"), _record()))
    rows = [*yaml.safe_load(TOY_YAML)["reported"], *THRESHOLD_ROWS]
    rows[3], rows[4] = {**rows[3], "statement": "recalls"}, {**rows[4], "statement": "recalls"}
    _edit_metadata(root, reported=rows)
    paper = paper_result(load_metadata("toy"), _record())
    together = outcome_counts(paper)
    # Its parts: "at least 90%" reproduced, "at most 10%" inconclusive: the statement is inconclusive.
    assert sum(together.values()) == sum(separate.values()) - 1
    assert together[REPRODUCED] == separate[REPRODUCED] - 1 and together[INCONCLUSIVE] == separate[INCONCLUSIVE]
    assert "2 rows check parts of 1 of them" in summary_text(paper)
    assert statement_outcome([REPRODUCED, "not reproduced"]) == "not reproduced"
    assert statement_outcome([REPRODUCED, NOT_RUN]) == INCONCLUSIVE
    assert statement_outcome([NOT_RUN, NOT_RUN]) == NOT_RUN


def test_a_claim_the_run_could_not_test_is_not_run_and_says_what_it_needs(root):
    needs = {"needs": "pretrained weights, which cannot be had here", "untested_when": "random initialisation"}
    _edit_metadata(
        root,
        reported=[
            {**row, **needs} if row["metric"] == "accuracy" else row for row in yaml.safe_load(TOY_YAML)["reported"]
        ],
    )
    meta = load_metadata("toy")
    record = _record()
    assert record_rows(meta, record)[0].verdict != NOT_RUN  # the run's seeds say nothing of the weights
    ran = record.settings["random_split"]
    note = "random initialisation (--weights none): no pretrained features"
    noted = {seed: entry.model_copy(update={"notes": [note]}) for seed, entry in ran.seeds.items()}
    record = record.model_copy(
        update={"settings": {**record.settings, "random_split": ran.model_copy(update={"seeds": noted})}}
    )
    row = record_rows(meta, record)[0]
    assert row.verdict == NOT_RUN and row.mean is not None
    assert row.judgement == "it needs pretrained weights, which cannot be had here"
    with pytest.raises(MetadataError, match="needs and untested_when go together"):
        _edit_metadata(root, reported=[{**yaml.safe_load(TOY_YAML)["reported"][0], "needs": "weights"}])
        load_metadata("toy")


def test_a_history_gap_is_one_curve_minus_another_at_the_last_epoch(root):
    gap_row = {"metric": "gap", "setting": "random_split", "value": 0.0, "kind": "value", "floor": 0.05, "where": "Fig"}
    _edit_metadata(
        root,
        reported=[*yaml.safe_load(TOY_YAML)["reported"], gap_row],
        history_gaps=[
            {"metric": "gap", "setting": "random_split", "minuend": "accuracy", "subtrahend": "val_accuracy"}
        ],
    )
    seeds = {
        "0": seed_entry(history={"accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.75]}),
        "1": seed_entry(history={"accuracy": [0.5, 0.8]}),  # no validation curve: no value
    }
    derived = with_derived(load_metadata("toy"), {"random_split": Setting(seeds=seeds, summary={})})
    assert derived["random_split"].seeds["0"].metrics["gap"] == pytest.approx(0.05)
    assert "gap" not in derived["random_split"].seeds["1"].metrics


def test_every_committed_record_is_written_again_byte_for_byte(tmp_path):
    """The typed record keeps every key, its order and its numbers: a committed record loaded and written again
    is the same file, so a reader never sees a field the writer dropped or reshaped."""
    committed = load_records(REPO_ROOT / "results")
    assert committed
    for record in committed:
        written = write_record(record, tmp_path)
        assert written.read_bytes() == record.path.read_bytes(), record.path.name
