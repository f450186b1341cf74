"""`fer-replicate cross-dataset`: class mappings, restricted scoring, CFD face-crop misses, the record."""

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_common import bundles, cross_dataset
from fer_common.bundles import Preprocessing, load_bundle, save_bundle
from fer_common.cli import main
from fer_common.cross_dataset import (
    EMOTION_OF_CLASS,
    TEST_SETS,
    EvaluationSet,
    Faces,
    Model,
    bundle_model,
    carry_rows,
    class_groups,
    class_mapping,
    expected_bundles,
    missing_bundles,
    prepare_faces,
    restricted_predictions,
    score_cell,
    score_matrix,
    write_outputs,
)
from fer_common.data import load_dataset
from fer_common.data.cfd import EXPRESSIONS as CFD_CLASSES
from fer_common.data.ckplus48 import CLASS_NAMES as CKPLUS_CLASSES
from fer_common.data.dataset import FaceDataset
from fer_common.data.fer2013 import CLASS_NAMES as FER_CLASSES
from fer_common.errors import FerError
from fer_common.measurement_pages import CARRIED_NOTE, cross_dataset_markdown, paired_with, within_class_text
from fer_common.report import latest_measurements
from fer_common.tables import render_audits

from .helpers import job_origin, made_record, requires_dataset

FER_TEST = TEST_SETS[0]
CFD_TEST = next(test_set for test_set in TEST_SETS if test_set.dataset == "cfd")
CK_TEST = next(test_set for test_set in TEST_SETS if test_set.dataset == "ckplus48")
HONG_CLASSES = ["negative", "neutral", "positive"]


def fixed_model(name, training_dataset, class_names, probabilities):
    """A model that answers every face with the same probabilities, so the restricted argmax is predictable."""
    row = np.asarray(probabilities, dtype=np.float64)
    return Model(name, training_dataset, list(class_names), lambda faces: np.tile(row, (len(faces), 1)))


def faces_of(test_set, class_names, labels, crops=None):
    labels = np.asarray(labels, dtype=np.int64)
    crops = crops if crops is not None else [np.zeros((48, 48, 1), np.uint8) for _ in labels]
    return Faces(test_set, crops, labels, list(class_names), checksum="test")


# --- mappings --------------------------------------------------------------------------------------------


def test_fer2013_and_ckplus48_names_map_both_ways():
    to_ckplus = class_mapping("fer2013", "ckplus48", CKPLUS_CLASSES)
    to_fer = class_mapping("ckplus48", "fer2013", FER_CLASSES)
    assert to_ckplus["angry"] == "anger" and to_ckplus["sad"] == "sadness" and to_ckplus["neutral"] is None
    assert to_fer["anger"] == "angry" and to_fer["sadness"] == "sad" and to_fer["contempt"] is None
    assert {to_fer[model] for model in to_ckplus.values() if model and model in to_fer} <= set(FER_CLASSES)


def test_cfd_expressions_map_to_fer2013_emotions():
    assert class_mapping("cfd", "fer2013", FER_CLASSES) == {
        "N": "neutral",
        "HC": "happy",
        "HO": "happy",
        "A": "angry",
        "F": "fear",
    }


def test_the_class_table_lists_each_datasets_classes_in_its_label_order():
    # A reference model predicts its training set's classes in this order.
    assert list(EMOTION_OF_CLASS["fer2013"]) == list(FER_CLASSES)
    assert list(EMOTION_OF_CLASS["ckplus48"]) == list(CKPLUS_CLASSES)
    assert list(EMOTION_OF_CLASS["cfd"]) == list(CFD_CLASSES)


def test_a_regrouping_replication_states_its_grouping_and_the_others_have_none():
    assert class_groups("hong") == {"negative": ["A", "F"], "neutral": ["N"], "positive": ["HC", "HO"]}
    assert class_groups("chen") is None


def test_a_hong_model_gets_angry_and_fear_as_negative_and_nothing_for_classes_it_never_saw():
    mapping = class_mapping("fer2013", "cfd", HONG_CLASSES, class_groups("hong"))
    assert mapping["angry"] == mapping["fear"] == "negative"
    assert mapping["happy"] == "positive" and mapping["neutral"] == "neutral"
    assert mapping["sad"] is None and mapping["surprise"] is None and mapping["disgust"] is None


def test_a_four_class_fer2013_model_leaves_out_the_other_emotions():
    mapping = class_mapping("ckplus48", "fer2013", ["happy", "sad", "neutral", "surprise"])
    assert mapping == {
        "anger": None,
        "contempt": None,
        "disgust": None,
        "fear": None,
        "happy": "happy",
        "sadness": "sad",
        "surprise": "surprise",
    }


def test_classes_that_are_neither_the_training_sets_nor_a_known_grouping_are_refused():
    with pytest.raises(FerError, match="grouping"):
        class_mapping("fer2013", "ckplus48", ["joy", "gloom"])


# --- scoring ---------------------------------------------------------------------------------------------


def test_the_argmax_is_restricted_to_the_given_columns():
    probabilities = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    assert restricted_predictions(probabilities, [0, 2]).tolist() == [1, 0]


def test_a_cell_scores_only_mapped_images_and_never_predicts_a_class_the_test_set_lacks():
    # The CK+48 model likes contempt best, which FER2013 lacks: its next best class, happy, is the prediction.
    model = fixed_model("ck", "ckplus48", CKPLUS_CLASSES, [0.0, 0.5, 0.0, 0.0, 0.3, 0.2, 0.0])
    happy, neutral, sad = FER_CLASSES.index("happy"), FER_CLASSES.index("neutral"), FER_CLASSES.index("sad")
    cell = score_cell(model, faces_of(FER_TEST, FER_CLASSES, [happy, happy, sad, neutral, neutral]))
    assert cell.status == "scored" and cell.n == 3 and cell.correct == 2
    assert cell.left_out == {"neutral": 2}
    assert "contempt" not in cell.scored_classes and "happy" in cell.scored_classes
    assert cell.recall == {"happy": 1.0, "sadness": 0.0} and cell.class_n == {"happy": 2, "sadness": 1}
    low, high = cell.accuracy_ci
    assert low < 2 / 3 < high
    assert cell.macro_f1 == pytest.approx(0.4)  # happy F1 0.8, sadness 0


def test_a_cell_of_the_models_own_dataset_is_left_to_the_record_unless_it_is_a_held_out_split():
    """CK+48 and CFD are scored whole, training images included: their own models' cells stay with the record.
    FER2013 PrivateTest is held out from every model's training and selection, so they are scored there too."""
    chen = fixed_model("chen", "ckplus48", CKPLUS_CLASSES, np.full(7, 1 / 7))
    cell = score_cell(chen, faces_of(CK_TEST, CKPLUS_CLASSES, [0, 1]))
    assert cell.status == "within-dataset" and "record" in cell.note and cell.n == 0
    neutral = FER_CLASSES.index("neutral")
    model = fixed_model("neamtiu", "fer2013", FER_CLASSES, np.eye(7)[neutral])
    cell = score_cell(model, faces_of(FER_TEST, FER_CLASSES, [neutral, 0]))
    assert FER_TEST.held_out and cell.status == "scored" and (cell.correct, cell.n) == (1, 2)
    assert cell.per_image == "10"


def test_models_scored_on_the_same_images_are_paired_with_mcnemar():
    """The per-image results pair two cells image by image; cells of different images are not paired."""
    happy = FER_CLASSES.index("happy")
    labels = [happy] * 30 + [0] * 10
    faces = faces_of(FER_TEST, FER_CLASSES, labels)
    always_happy = asdict(score_cell(fixed_model("ours", "fer2013", FER_CLASSES, np.eye(7)[happy]), faces))
    always_angry = asdict(score_cell(fixed_model("fer (reference)", "fer2013", FER_CLASSES, np.eye(7)[0]), faces))
    result = paired_with(always_happy, always_angry)
    # 30 images only "ours" gets right, 10 only the reference: McNemar's exact p = P(|X - 20| >= 10), X ~ B(40, 1/2)
    assert (result.n, result.only_setting, result.only_against) == (40, 30, 10)
    assert result.difference == pytest.approx(0.5) and result.p_value == pytest.approx(0.00221, abs=1e-4)
    four_classes = fixed_model("boyce", "fer2013", ["angry", "happy", "sad", "neutral"], [0, 1.0, 0, 0])
    fewer_images = asdict(score_cell(four_classes, faces_of(FER_TEST, FER_CLASSES, [1, *labels[1:]])))
    assert paired_with(fewer_images, always_angry) is None  # its disgust image is not scored: other images
    assert paired_with({**always_happy, "per_image": ""}, always_angry) is None  # scored before per-image results


def test_cfd_rates_by_group_are_also_given_within_class():
    """Photos of happy faces of one group and neutral of another: the gap over all photos is the classes' gap;
    within class each group's rate is its own."""
    dataset = synthetic_cfd([True] * 6)
    dataset.labels[:] = [0, 0, 0, 1, 1, 1]  # N N N HC HC HC
    dataset.meta["race"] = ["B", "W", "B", "B", "W", "W"]
    faces = prepare_faces(CFD_TEST, dataset, StubDetector())
    cell = asdict(score_cell(fixed_model("fer", "fer2013", FER_CLASSES, np.eye(7)[6]), faces))  # always neutral
    assert {
        group: {name: rate["n"] for name, rate in classes.items()}
        for group, classes in cell["groups_within_class"].items()
    } == {"race=B": {"N": 2, "HC": 1}, "race=W": {"N": 1, "HC": 2}, "sex=F": {"N": 3, "HC": 3}}
    assert cell["groups_within_class"]["race=B"]["N"]["value"] == 1.0
    assert cell["groups_within_class"]["race=W"]["HC"]["value"] == 0.0
    text = within_class_text(cell, "race")
    assert text.startswith("N: B 100.0% [") and "HC: B 0.0% [" in text


def test_a_reference_model_is_scored_on_its_own_datasets_test_split_which_no_record_holds():
    happy = FER_CLASSES.index("happy")
    reference = fixed_model("fer (reference)", "fer2013", FER_CLASSES, np.eye(7)[happy])
    reference.scores_own_dataset = True
    cell = score_cell(reference, faces_of(FER_TEST, FER_CLASSES, [happy, happy, 0]))
    assert cell.status == "scored" and (cell.correct, cell.n) == (2, 3)


class StubDetector:
    """Finds a face (the centre square) only in photos whose top-left pixel is bright."""

    def detect(self, frame):
        return [(16, 16, 32, 32)] if frame[0, 0, 0] > 127 else []


def synthetic_cfd(with_face: list[bool]) -> FaceDataset:
    images = np.zeros((len(with_face), 64, 64, 3), dtype=np.uint8)
    images[np.array(with_face), 0, 0] = 255
    labels = np.zeros(len(with_face), dtype=np.int64)  # every photo neutral (N)
    races = ["B", "W"] * len(with_face)
    meta = pd.DataFrame(
        {
            "path": [f"{i}.jpg" for i in range(len(with_face))],
            "split": "all",
            "race": races[: len(with_face)],  # B, W, B, W, ...
            "sex": "F",
        }
    )
    return FaceDataset("cfd", images, labels, ["N", "HC", "HO", "A", "F"], meta, checksum="synthetic")


def test_cfd_photos_without_a_face_are_misses_counted_apart_not_dropped():
    faces = prepare_faces(CFD_TEST, synthetic_cfd([True, False, True, False, False]), StubDetector())
    assert faces.not_found == 3 and faces.crops[0].shape == (32, 32, 3)
    model = fixed_model("fer", "fer2013", FER_CLASSES, [0, 0, 0, 0, 0, 0, 1.0])  # always neutral
    cell = score_cell(model, faces)
    assert cell.n == 5 and cell.face_misses == 3 and cell.correct == 2 and cell.recall == {"neutral": 0.4}


def test_cfd_accuracy_is_reported_by_race_and_sex_with_wilson_intervals():
    # Faces found in photos 0 and 2 (race B) only: B 2 of 3 right, W 0 of 2, all five F.
    faces = prepare_faces(CFD_TEST, synthetic_cfd([True, False, True, False, False]), StubDetector())
    cell = score_cell(fixed_model("fer", "fer2013", FER_CLASSES, [0, 0, 0, 0, 0, 0, 1.0]), faces)
    assert {key: (rate["correct"], rate["n"]) for key, rate in cell.groups.items()} == {
        "race=B": (2, 3),
        "race=W": (0, 2),
        "sex=F": (2, 5),
    }
    low, high = cell.groups["race=B"]["wilson_95"]
    assert low < 2 / 3 < high
    section = cross_dataset_markdown(
        {
            "rule": "",
            "cells": [asdict(cell)],
            "test_sets": [],
            "mappings": {},
            "missing_models": {},
            "provenance": {"git_commit": "abc", "created_utc": "now"},
            "models": {},
        }
    )
    assert "race: B 66.7% [" in section and "gap 66.7 points" in section


# --- bundles and the record --------------------------------------------------------------------------------


def tiny_model(class_count: int):
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input((48, 48, 1))
    features = layers.MaxPooling2D(8)(layers.Conv2D(2, 3, activation="relu")(inputs))
    return keras.Model(inputs, layers.Dense(class_count, activation="softmax")(layers.Flatten()(features)))


@pytest.fixture(scope="module")
def models_folder(tmp_path_factory):
    """A CK+48 bundle (as Chen's) and a shipped-style copy of a FER2013 one, each a few hundred parameters."""
    folder = tmp_path_factory.mktemp("models")
    preprocessing = Preprocessing(size=48, channels=1, scale="unit")
    save_bundle(
        tiny_model(7),
        folder / "chen-tiny",
        class_names=CKPLUS_CLASSES,
        preprocessing=preprocessing,
        source={"replication": "chen", "setting": "tiny"},
    )
    save_bundle(
        tiny_model(7),
        folder / "neamtiu",
        class_names=FER_CLASSES,
        preprocessing=preprocessing,
        source={"replication": "neamtiu", "shipped_from": "neamtiu-clean_protocol-seed1"},
    )
    return folder


@pytest.fixture
def only_tiny_bundles(monkeypatch, tmp_path, models_folder):
    monkeypatch.setenv("FER_MODELS_DIR", str(models_folder))
    monkeypatch.setattr(bundles, "PACKAGE_BUNDLES_DIR", tmp_path / "no-shipped-model")
    return models_folder


def test_a_bundles_training_set_comes_from_its_replications_metadata(only_tiny_bundles):
    model = bundle_model(load_bundle("chen-tiny"), "chen-tiny")
    assert model.training_dataset == "ckplus48" and model.description["source"]["replication"] == "chen"
    cell = score_cell(model, faces_of(FER_TEST, FER_CLASSES, [0, 3, 4, 6]))
    assert cell.n == 3 and cell.left_out == {"neutral": 1} and 0 <= cell.correct <= 3


def test_each_replication_with_data_is_expected_to_publish_its_first_claims_bundle():
    assert expected_bundles() == {
        "hong-grayscale_balanced": "make replicate-hong",
        "chen-random_split": "make replicate-chen",
        "boyce-final": "make replicate-boyce",
        "neamtiu-source_protocol": "make replicate-neamtiu",
        "cmu_proxy-baseline": "make replicate-cmu_proxy",
    }  # cmu's AffectNet is missing here: no bundle to expect


def test_a_shipped_copy_counts_as_the_bundle_it_was_copied_from():
    shipped = fixed_model("neamtiu", "fer2013", FER_CLASSES, np.full(7, 1 / 7))
    shipped.description = {"source": {"shipped_from": "neamtiu-source_protocol-seed1"}}
    missing = missing_bundles(["neamtiu", "chen-tiny"], [shipped])
    assert "neamtiu-source_protocol" not in missing and missing["chen-random_split"] == "make replicate-chen"


@requires_dataset("ckplus48")
@requires_dataset("cfd")
def test_the_command_scores_real_subsets_and_writes_record_figure_and_markdown(
    only_tiny_bundles, monkeypatch, tmp_path, capsys
):
    small_sets = (
        EvaluationSet("ckplus48", None, "CK+48 sample", needs_face_crop=False),
        EvaluationSet("cfd", None, "CFD sample", needs_face_crop=True),
    )
    real_load = cross_dataset.load_dataset

    def first_images(name):
        dataset = real_load(name)
        return dataset.subset(np.linspace(0, len(dataset) - 1, 24).astype(int))  # every class of CK+48

    monkeypatch.setattr(cross_dataset, "TEST_SETS", small_sets)
    monkeypatch.setattr(cross_dataset, "load_dataset", first_images)
    monkeypatch.setenv("FER_RESULTS_DIR", str(tmp_path / "results"))
    assert main(["cross-dataset", "--models", "chen-tiny,neamtiu", "--no-reference", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "anger→angry" in printed and "contempt→(left out)" in printed

    [record_path] = (tmp_path / "results" / "cross-dataset").glob("*/cross-dataset.json")
    assert (record_path.parent / "heatmap.png").stat().st_size > 0
    record = json.loads(record_path.read_text())
    assert record["provenance"]["git_commit"] and set(record["models"]) == {"chen-tiny", "neamtiu"}
    cells = {(cell["model"], cell["test_set"]): cell for cell in record["cells"]}
    assert cells["chen-tiny", "CK+48 sample"]["status"] == "within-dataset"
    on_ckplus = cells["neamtiu", "CK+48 sample"]
    contempt = load_dataset("ckplus48").class_names.index("contempt")
    sample_contempt = int(np.sum(first_images("ckplus48").labels == contempt))
    assert on_ckplus["n"] == 24 - sample_contempt and on_ckplus["left_out"].get("contempt", 0) == sample_contempt
    cfd_entry = next(entry for entry in record["test_sets"] if entry["dataset"] == "cfd")
    assert cells["neamtiu", "CFD sample"]["face_misses"] == cfd_entry["faces_not_found"] <= 24
    assert cfd_entry["checksum"]
    markdown = cross_dataset_markdown(record)
    assert "see the replication's record" in markdown and "chen-random_split" in markdown
    assert "neamtiu-clean_protocol" not in record["missing_models"]  # the shipped copy stands for it


def test_the_audits_page_shows_the_latest_matrix_with_its_heat_map(tmp_path):
    model = fixed_model("ck", "ckplus48", CKPLUS_CLASSES, [0.0, 0.5, 0.0, 0.0, 0.3, 0.2, 0.0])
    faces = [faces_of(FER_TEST, FER_CLASSES, [3, 3, 4])]
    record = cross_dataset.build_record([model], faces, score_matrix([model], faces), {}, "fer-replicate cross-dataset")
    results = tmp_path / "results"
    record_path = write_outputs(record, results)
    page = render_audits(latest_measurements(results), results)
    folder = record_path.parent.relative_to(results).as_posix()
    assert f"![cross-dataset accuracy]({folder}/heatmap.png)" in page
    assert "| ck / ckplus48 | 66.7% (" in page and "regenerate with `make cross-dataset`" in page


def _written_matrix(results, models, test_set_checksum="test"):
    """A matrix of `models` on three FER2013 faces, written under `results` and read back as the report does."""
    faces = [faces_of(FER_TEST, FER_CLASSES, [3, 3, 4])]
    faces[0].checksum = test_set_checksum
    record = cross_dataset.build_record(models, faces, score_matrix(models, faces), {}, "fer-replicate cross-dataset")
    write_outputs(record, results)
    return latest_measurements(results).cross_dataset


def test_rows_of_models_not_scored_now_are_carried_over_unchanged_naming_where_they_were_scored(tmp_path):
    ck = fixed_model("ck", "ckplus48", CKPLUS_CLASSES, [0.0, 0.5, 0.0, 0.0, 0.3, 0.2, 0.0])
    previous = _written_matrix(tmp_path / "earlier", [ck])
    other = fixed_model("other", "ckplus48", CKPLUS_CLASSES, [0.0, 0.0, 0.0, 0.0, 0.9, 0.1, 0.0])
    faces = [faces_of(FER_TEST, FER_CLASSES, [3, 3, 4])]
    record = cross_dataset.build_record([other], faces, score_matrix([other], faces), {}, "now")
    assert carry_rows(record, previous) == ["ck"]
    assert [cell for cell in record["cells"] if cell["model"] == "ck"] == previous["cells"]
    origin = record["models"]["ck"]["carried_from"]
    folder = Path(previous["_path"]).parent.name
    assert origin == {
        "record": f"cross-dataset/{folder}/cross-dataset.json",
        "git_commit": previous["provenance"]["git_commit"],
        "created_utc": previous["provenance"]["created_utc"],
    }
    assert "fer2013 -> ck" in record["mappings"] and "carried_from" not in record["models"]["other"]
    markdown = cross_dataset_markdown(record)
    assert f"| ck / ckplus48 (scored at {str(origin['git_commit'])[:7]}) | 66.7% (" in markdown
    assert CARRIED_NOTE in markdown
    # Carried again, a row still names the matrix that scored it.
    later = cross_dataset.build_record([], faces, [], {}, "later")
    later_previous = {**record, "_path": str(tmp_path / "cross-dataset" / "x" / "cross-dataset.json")}
    assert carry_rows(later, later_previous) == ["other", "ck"]
    assert later["models"]["ck"]["carried_from"] == origin


def test_no_row_is_carried_over_from_a_matrix_made_on_other_test_images(tmp_path, caplog):
    ck = fixed_model("ck", "ckplus48", CKPLUS_CLASSES, [0.0, 0.5, 0.0, 0.0, 0.3, 0.2, 0.0])
    previous = _written_matrix(tmp_path, [ck], test_set_checksum="another")
    faces = [faces_of(FER_TEST, FER_CLASSES, [3, 3, 4])]
    record = cross_dataset.build_record([], faces, [], {}, "now")
    assert carry_rows(record, previous) == [] and record["models"] == {} and record["cells"] == []
    assert "checksums differ" in caplog.text
    assert CARRIED_NOTE not in cross_dataset_markdown(record)


def test_a_row_comes_from_the_job_result_that_scored_it_when_its_bundle_stayed_on_another_machine(
    tmp_path, monkeypatch
):
    from fer_common.contract import Preprocessing, TrainedModel
    from fer_common.job_types import JobResult
    from fer_common.jobs import JobKey, JobStore

    faces = [faces_of(FER_TEST, FER_CLASSES, [3, 3, 4])]
    model = fixed_model("cmu_proxy-baseline-seed1", "fer2013", FER_CLASSES, np.eye(7)[3])
    scored = cross_dataset.build_record([model], faces, score_matrix([model], faces), {}, "in the job")
    scored["cells"][0]["status"] = "scored"  # a FER2013 model scored on FER2013 faces stands in for CK+48 here
    store = JobStore(
        tmp_path / "results" / "cmu_proxy" / "jobs",
        "cmu_proxy",
        "full",
        JobKey("c", "h", "d", {}),
        {},
        {"git_commit": "a" * 40},
    )
    files = []
    for seed, score in ((0, 0.4), (1, 0.5)):  # seed 1 has the higher selection score: it is the published one
        result = JobResult(
            "baseline",
            seed,
            {"metrics": {}, "wall_time_s": 1.0},
            np.array([0]),
            np.eye(7)[[0]],
            model_file=b"a .keras file",
            model=TrainedModel(None, Preprocessing(48, 3, "raw"), score, "held-out test split"),
        )
        result.cross_dataset = {key: scored[key] for key in ("test_sets", "mappings", "cells")}
        files.append(store.save(result).file.name)
    jobs = [job_origin("baseline", seed, file) for seed, file in enumerate(files)]
    full = made_record("cmu_proxy", jobs=jobs, created_utc="2026-12-07T00:00:00Z")
    monkeypatch.setattr(
        cross_dataset,
        "latest_record",
        lambda replication, profile, results_dir: full if replication == "cmu_proxy" else None,
    )

    # The matrix has a test set the job did not score (its data was not on that machine): a cell says so. It
    # also holds a row of that name carried from a matrix older than the record: another model, replaced.
    record = cross_dataset.build_record([], [*faces, faces_of(CFD_TEST, CFD_CLASSES, [0])], [], {}, "now")
    record["models"]["cmu_proxy-baseline"] = {"carried_from": {"created_utc": "2026-12-03T00:00:00Z"}}
    record["cells"].append({"model": "cmu_proxy-baseline", "test_set": "stale", "status": "scored"})
    assert cross_dataset.rows_from_job_results(record, tmp_path / "results") == ["cmu_proxy-baseline"]
    entry = record["models"]["cmu_proxy-baseline"]
    assert entry["source"]["seed"] == 1 and entry["from_job_result"] == f"cmu_proxy/jobs/{files[1]}"
    assert [(cell["model"], cell["status"]) for cell in record["cells"]] == [
        ("cmu_proxy-baseline", "scored"),
        ("cmu_proxy-baseline", "not scored"),
    ]
    section = cross_dataset_markdown(record)
    assert "scored in its job" in section and "not scored in its job: scored on other images" in section
    # A row carried from a matrix made after the record stays: it scored the record's model.
    newer = {"carried_from": {"created_utc": "2026-12-08T00:00:00Z"}}
    record["models"]["cmu_proxy-baseline"] = newer
    assert cross_dataset.rows_from_job_results(record, tmp_path / "results") == []
    assert record["models"]["cmu_proxy-baseline"] is newer


def test_only_full_runs_models_are_rows_unless_named():
    """A quick or ci run saves a smoke-test model under the same kind of name: the matrix leaves it out by default."""
    full = fixed_model("neamtiu-clean_protocol", "fer2013", FER_CLASSES, np.full(7, 1 / 7))
    full.description = {"source": {"record": "results/neamtiu/full-20261201T003300Z-446eba8.json"}}
    quick = fixed_model("cmu_proxy-baseline", "fer2013", FER_CLASSES, np.full(7, 1 / 7))
    quick.description = {"source": {"record": "results/cmu_proxy/quick-20261207T071435Z-3373fab.json"}}
    assert cross_dataset._from_full_run(full) and not cross_dataset._from_full_run(quick)
