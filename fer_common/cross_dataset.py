"""Every trained model scored on the other datasets whose classes overlap with its own: inference only.

Each paper reports accuracy on a test split of the data it trained on; this matrix asks how each model does
on faces from elsewhere. The class correspondence between datasets lives in one table, `EMOTION_OF_CLASS`
(every dataset class -> its FER2013 emotion, or None), plus the grouping that a replication whose model
classes group its dataset's classes states (`class_groups`, e.g. CFD's expressions as negative / neutral /
positive). A cell is scored on the test images whose class has a counterpart among the model's classes, and
the model's prediction is the argmax over only those of its classes that have a counterpart in the test set
(`RESTRICTION_RULE`).

The library names no paper: models, reference models, groupings and the bundles to expect all come through
`fer_common.registry`.

Layout of the output: `results/cross-dataset/<stamp>-<commit>/cross-dataset.json` and `heatmap.png`. The
record sits one folder down so that `records.load_records`, which reads `results/<folder>/*.json` as
replication records, does not take it for one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from sklearn.metrics import f1_score

from fer_common import paths
from fer_common.atomic import write_text_atomically
from fer_common.bundles import PACKAGE_BUNDLES_DIR, Bundle, how_to_make, list_bundles, load_bundle, save_bundle_file
from fer_common.contract import BenchReference, Preprocessing
from fer_common.data import load_dataset
from fer_common.data.dataset import FaceDataset
from fer_common.errors import DatasetError, FerError
from fer_common.faces import FaceDetector, crop_face, make_face_detector
from fer_common.fairness import rate_with_interval
from fer_common.jobs import read_job
from fer_common.measurement_formats import FIGURE_FILE, row_label
from fer_common.metadata import FULL_PROFILE, load_metadata
from fer_common.metrics import wilson_interval
from fer_common.per_image import encode_correct, encode_labels
from fer_common.provenance import machine_provenance
from fer_common.records import is_full_record, latest_record
from fer_common.registry import REPLICATIONS
from fer_common.schema import Record

FORMAT_VERSION = 2  # 2: per-image results, each image's class and groups, group rates within class
OUTPUT_FOLDER = "cross-dataset"
RECORD_FILE = "cross-dataset.json"
NO_FACE = -1  # the predicted index of an image in which the detector found no face: always a miss
WITHIN_DATASET_NOTE = "within-dataset: see the replication's record"
# The OpenCV cascade the committed matrix was made with (`fer-replicate bench-detectors` compares it with hog).
FACE_DETECTOR = "haar"

RESTRICTION_RULE = (
    "A cell is scored on the test images whose true class maps to a class the model knows; images of other "
    "classes are left out (counted per class). The model's prediction is the argmax of its probabilities over "
    "only those of its classes that have a counterpart in the test set. A CFD photo in which the face detector "
    "finds no face counts as a miss (wrong), in its own column."
)

# Every dataset class, in the dataset's label order -> the FER2013 emotion it is (None: FER2013 has no such class).
# The one place where datasets' class names meet; every pairwise mapping is derived from it.
EMOTION_OF_CLASS: dict[str, dict[str, str | None]] = {
    "fer2013": {name: name for name in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")},
    "ckplus48": {
        "anger": "angry",
        "contempt": None,
        "disgust": "disgust",
        "fear": "fear",
        "happy": "happy",
        "sadness": "sad",
        "surprise": "surprise",
    },
    "cfd": {"N": "neutral", "HC": "happy", "HO": "happy", "A": "angry", "F": "fear"},
}


# A replication whose model classes group its dataset's classes (e.g. CFD's expressions as negative / neutral /
# positive) states the grouping in its package's `data` module as {dataset class: model class}.
SEED_BUNDLE = re.compile(r"-seed\d+$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationSet:
    """One column of the matrix: a dataset (or one of its official splits) and whether faces need finding."""

    dataset: str
    split: str | None  # an official split (`meta['split']`), None for every image
    label: str
    needs_face_crop: bool
    group_attributes: tuple[str, ...] = ()  # demographic columns of `meta` to report accuracy by (a bias audit)
    group_legend: str = ""  # what the group codes stand for
    # No model of the suite trains or selects on it (FER2013 PrivateTest: selection is on PublicTest), so the
    # models of its own dataset are scored on it too: their per-image results pair with the references'.
    held_out: bool = False


TEST_SETS = (
    EvaluationSet("fer2013", "PrivateTest", "FER2013 PrivateTest", needs_face_crop=False, held_out=True),
    EvaluationSet("ckplus48", None, "CK+48 (all 981)", needs_face_crop=False),
    EvaluationSet(
        "cfd",
        None,
        "CFD (all 823, face-cropped)",
        needs_face_crop=True,
        group_attributes=("race", "sex"),
        group_legend="CFD's codes: race A Asian, B Black, I Indian, L Latino, M Multiracial, W White; sex F, M",
    ),
)


@dataclass
class Model:
    """One row of the matrix: a classifier of uint8 faces (arrays of any size, 1 or 3 channels)."""

    name: str
    training_dataset: str
    class_names: list[str]
    predict: Callable[[Sequence[np.ndarray]], np.ndarray]  # faces -> probabilities (N, classes)
    description: dict = field(default_factory=dict)  # bundle metadata, for the record
    # {model class: [training set classes]} when the classes group the training set's; None when they are its own
    class_groups: dict[str, list[str]] | None = None
    # A reference has no replication record: its own dataset's test split is scored here (it never trained on it)
    scores_own_dataset: bool = False


@dataclass
class Faces:
    """A test set's images as the models see them: face crops (None where no face was found) and labels."""

    test_set: EvaluationSet
    crops: list[np.ndarray | None]
    labels: np.ndarray
    class_names: list[str]
    checksum: str
    groups: dict[str, np.ndarray] = field(default_factory=dict)  # attribute -> each image's group

    @property
    def not_found(self) -> int:
        return sum(crop is None for crop in self.crops)


@dataclass
class Cell:
    """One model on one test set."""

    model: str
    test_set: str
    status: str  # "scored", "within-dataset" (left to the replication's record), or "not scored" (a job's row)
    n: int = 0
    correct: int = 0
    accuracy: float | None = None
    accuracy_ci: tuple[float, float] | None = None
    macro_f1: float | None = None
    recall: dict[str, float] = field(default_factory=dict)  # per model class
    class_n: dict[str, int] = field(default_factory=dict)
    face_misses: int = 0  # of the n, images in which no face was found
    left_out: dict[str, int] = field(default_factory=dict)  # test classes with no counterpart: images left out
    scored_classes: list[str] = field(default_factory=list)  # the model classes the argmax is restricted to
    # "<attribute>=<group>" -> correct, n, value and Wilson 95% interval of the accuracy on that group's images
    groups: dict[str, dict] = field(default_factory=dict)
    # "<attribute>=<group>" -> {test class: the same, on that group's images of that class}: gaps within class,
    # which a gap over all of a group's images confounds with how hard each group's classes are
    groups_within_class: dict[str, dict[str, dict]] = field(default_factory=dict)
    # per test image: "1" right, "0" wrong (no face included), "." not scored (`per_image.encode_correct`)
    per_image: str = ""
    note: str = ""


# --- class mappings -----------------------------------------------------------------------------------


def class_groups(replication_id: str) -> dict[str, list[str]] | None:
    """{model class: [dataset classes]} of a replication whose classes group its dataset's, as its registry
    entry states it (`class_grouping`: {dataset class: model class}, the paper's own choice, which neither its
    metadata nor its bundles hold); None for a replication without one."""
    grouping = REPLICATIONS.class_grouping(replication_id)
    if grouping is None:
        return None
    groups: dict[str, list[str]] = {}
    for dataset_class, model_class in grouping.items():
        groups.setdefault(model_class, []).append(dataset_class)
    return groups


def model_class_emotions(
    training_dataset: str, class_names: Sequence[str], groups: Mapping[str, Sequence[str]] | None = None
) -> dict[str, set[str]]:
    """{model class: the FER2013 emotions it stands for}, through its training set's classes (or `groups` of them)."""
    emotions = _emotion_table(training_dataset)
    if all(name in emotions for name in class_names):
        members: Mapping[str, Sequence[str]] = {name: [name] for name in class_names}
    elif groups and set(groups) == set(class_names):
        members = groups
    else:
        raise FerError(
            f"A model trained on {training_dataset} with classes {', '.join(class_names)}: these are neither "
            f"{training_dataset}'s classes ({', '.join(emotions)}) nor a grouping of them that its replication "
            "states (its registry entry's `class_grouping`)."
        )
    return {name: {emotions[member] for member in members[name] if emotions[member]} for name in class_names}


def class_mapping(
    test_dataset: str,
    training_dataset: str,
    model_classes: Sequence[str],
    groups: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, str | None]:
    """{test class: the model class it counts as, or None when the model has no counterpart}."""
    stands_for = model_class_emotions(training_dataset, model_classes, groups)
    mapping: dict[str, str | None] = {}
    for test_class, emotion in _emotion_table(test_dataset).items():
        matches = [name for name in model_classes if emotion is not None and emotion in stands_for[name]]
        if len(matches) > 1:
            raise FerError(f"{test_dataset} class {test_class!r} maps to several model classes: {matches}")
        mapping[test_class] = matches[0] if matches else None
    return mapping


def _emotion_table(dataset: str) -> dict[str, str | None]:
    if dataset not in EMOTION_OF_CLASS:
        raise FerError(f"No class table for dataset {dataset!r}; known: {', '.join(EMOTION_OF_CLASS)}.")
    return EMOTION_OF_CLASS[dataset]


# --- scoring -------------------------------------------------------------------------------------------


def restricted_predictions(probabilities: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """Per row, the position in `columns` of the highest probability among those columns only."""
    return np.asarray(probabilities, dtype=np.float64)[:, list(columns)].argmax(axis=1)


def score_cell(model: Model, faces: Faces) -> Cell:
    """`model` on the images of `faces` whose class it knows; argmax over the classes the test set has."""
    test_set = faces.test_set
    if not scores(model, test_set):
        return Cell(model.name, test_set.label, "within-dataset", note=WITHIN_DATASET_NOTE)
    mapping = class_mapping(test_set.dataset, model.training_dataset, model.class_names, model.class_groups)
    scored_classes = [name for name in model.class_names if name in mapping.values()]
    true_class = [mapping[faces.class_names[label]] for label in faces.labels]
    kept = [index for index, name in enumerate(true_class) if name is not None]
    y_true = np.array([scored_classes.index(true_class[index]) for index in kept], dtype=np.int64)
    y_pred = _predict_kept(model, [faces.crops[index] for index in kept], scored_classes)
    cell = _metrics(model.name, test_set.label, y_true, y_pred, scored_classes)
    cell.left_out = _left_out(faces, mapping)
    kept_groups = {name: values[kept] for name, values in faces.groups.items()}
    cell.groups = group_accuracies(y_true, y_pred, kept_groups)
    test_classes = np.array(faces.class_names)[faces.labels[kept]]
    cell.groups_within_class = group_accuracies_within_class(y_true, y_pred, kept_groups, test_classes)
    correct, scored = np.zeros(len(faces.labels), dtype=bool), np.zeros(len(faces.labels), dtype=bool)
    correct[kept], scored[kept] = y_true == y_pred, True
    cell.per_image = encode_correct(correct, scored)
    return cell


def scores(model: Model, test_set: EvaluationSet) -> bool:
    """Whether the matrix scores `model` on `test_set`: any other dataset, and its own dataset only on a split no
    model trains or selects on (or for a reference, which never trained on ours); else the record does."""
    return model.training_dataset != test_set.dataset or model.scores_own_dataset or test_set.held_out


def group_accuracies(y_true: np.ndarray, y_pred: np.ndarray, groups: Mapping[str, np.ndarray]) -> dict[str, dict]:
    """Accuracy with its Wilson interval per group of each attribute (`race=B`, `sex=F`); misses are wrong."""
    correct = y_true == y_pred
    return {
        f"{attribute}={group}": rate_with_interval(int(correct[values == group].sum()), int(np.sum(values == group)))
        for attribute, values in groups.items()
        for group in sorted(set(values.tolist()))
    }


def group_accuracies_within_class(
    y_true: np.ndarray, y_pred: np.ndarray, groups: Mapping[str, np.ndarray], test_classes: np.ndarray
) -> dict[str, dict[str, dict]]:
    """`group_accuracies` class by class (the test set's classes): {"race=B": {"N": rate, ...}}, the classes a
    group has images of only."""
    correct = y_true == y_pred
    return {
        f"{attribute}={group}": {
            name: rate_with_interval(int(correct[in_group & (test_classes == name)].sum()), int(count))
            for name in dict.fromkeys(test_classes.tolist())
            if (count := np.sum(in_group & (test_classes == name)))
        }
        for attribute, values in groups.items()
        for group in sorted(set(values.tolist()))
        if (in_group := values == group).any()
    }


def _predict_kept(model: Model, crops: Sequence[np.ndarray | None], scored_classes: Sequence[str]) -> np.ndarray:
    """The restricted prediction for each crop, NO_FACE where there is none."""
    predictions = np.full(len(crops), NO_FACE, dtype=np.int64)
    found = [index for index, crop in enumerate(crops) if crop is not None]
    if found:
        probabilities = model.predict([crops[index] for index in found])
        columns = [model.class_names.index(name) for name in scored_classes]
        predictions[found] = restricted_predictions(probabilities, columns)
    return predictions


def _metrics(model: str, test_set: str, y_true: np.ndarray, y_pred: np.ndarray, scored_classes: list[str]) -> Cell:
    """Accuracy with its Wilson 95% interval, macro-F1 and recall over the classes present; misses are wrong."""
    n, correct = len(y_true), int(np.sum(y_true == y_pred))
    present = [index for index in range(len(scored_classes)) if np.any(y_true == index)]
    recall = {scored_classes[index]: float(np.mean(y_pred[y_true == index] == index)) for index in present}
    class_n = {scored_classes[index]: int(np.sum(y_true == index)) for index in present}
    macro_f1 = float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)) if n else None
    return Cell(
        model,
        test_set,
        "scored",
        n=n,
        correct=correct,
        accuracy=correct / n if n else None,
        accuracy_ci=wilson_interval(correct, n) if n else None,
        macro_f1=macro_f1,
        recall=recall,
        class_n=class_n,
        face_misses=int(np.sum(y_pred == NO_FACE)),
        scored_classes=list(scored_classes),
    )


def _left_out(faces: Faces, mapping: Mapping[str, str | None]) -> dict[str, int]:
    counts = np.bincount(faces.labels, minlength=len(faces.class_names))
    return {name: int(counts[i]) for i, name in enumerate(faces.class_names) if mapping[name] is None and counts[i]}


# --- test sets and faces -------------------------------------------------------------------------------


def largest_face(image_rgb: np.ndarray, detector: FaceDetector) -> np.ndarray | None:
    """The largest face `detector` finds in an RGB photo, cropped as `predict` crops it; None if none."""
    frame = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)  # the detector takes OpenCV frames, as the demo reads them
    boxes = detector.detect(frame)  # largest first
    return crop_face(frame, boxes[0]) if boxes else None


def prepare_faces(test_set: EvaluationSet, dataset: FaceDataset, detector: FaceDetector | None = None) -> Faces:
    """The test set's images as faces: as they are, or the largest detected face of each photo."""
    chosen = dataset.split(test_set.split) if test_set.split else dataset
    if test_set.needs_face_crop:
        detector = detector or make_face_detector(FACE_DETECTOR)
        crops = [largest_face(image, detector) for image in chosen.images]
    else:
        crops = list(chosen.images)
    groups = {attribute: chosen.meta[attribute].to_numpy(dtype=str) for attribute in test_set.group_attributes}
    faces = Faces(test_set, crops, chosen.labels, list(chosen.class_names), dataset.checksum, groups)
    if test_set.needs_face_crop:
        log.info("%s: no face found in %d of %d photos", test_set.label, faces.not_found, len(crops))
    return faces


# --- models --------------------------------------------------------------------------------------------


def _from_full_run(model: Model) -> bool:
    """Whether a bundle's description names a full run's record (a shipped copy names its source's)."""
    return is_full_record(model.description.get("source", {}).get("record") or "")


def default_model_names(available: Sequence[str]) -> list[str]:
    """Every bundle found, without the per-seed copies (`<name>-seed<N>`) of a published bundle."""
    return [name for name in available if not SEED_BUNDLE.search(name)]


def expected_bundles() -> dict[str, str]:
    """{bundle: how to make it}: for each replication with data, the bundle its full run publishes for the
    setting of its first reported claim (`<id>-<setting>`)."""
    expected = {}
    for replication_id in REPLICATIONS.ids():
        meta = load_metadata(REPLICATIONS.metadata_file(replication_id))
        if meta.dataset.data != "missing" and meta.reported:
            expected[f"{replication_id}-{meta.reported[0].setting}"] = f"make replicate-{replication_id}"
    return expected


def missing_bundles(available: Sequence[str], models: Sequence[Model] = ()) -> dict[str, str]:
    """{expected bundle: how to make it} for the expected bundles neither found nor shipped as a copy
    (a shipped bundle names the `<id>-<setting>-seed<N>` it was copied from)."""
    shipped_from = [
        SEED_BUNDLE.sub("", model.description.get("source", {}).get("shipped_from") or "") for model in models
    ]
    present = set(available) | set(shipped_from)
    return {name: how for name, how in expected_bundles().items() if name not in present}


def bundle_model(bundle: Bundle, name: str) -> Model:
    """A bundle as a row; its training set is its replication's dataset (from the bundle's source)."""
    replication = bundle.source.get("replication")
    if not replication:
        raise FerError(f"Bundle {bundle.path} does not say which replication trained it (source.replication).")
    description = {
        "path": str(bundle.path),
        "sha256": hashlib.sha256(Path(bundle.path).read_bytes()).hexdigest(),  # which file a name stood for
        "shipped": bundle.path.parent == PACKAGE_BUNDLES_DIR,
        "class_names": bundle.class_names,
        "preprocessing": asdict(bundle.preprocessing),
        "source": bundle.source,
    }
    training_dataset = load_metadata(REPLICATIONS.metadata_file(replication)).dataset.name
    return Model(
        name, training_dataset, list(bundle.class_names), bundle.predict, description, class_groups(replication)
    )


def reference_models() -> list[Model]:
    """The pretrained models from elsewhere that the replications compare with (their bench references), as
    rows: each was trained on its replication's dataset and predicts that dataset's classes in their order.
    One that is not installed is left out, with a warning saying what to install."""
    models, seen = [], set()
    for replication_id in REPLICATIONS.ids():
        replication = REPLICATIONS.get(replication_id)
        for reference in replication.bench_references():
            if reference.name in seen:
                continue
            seen.add(reference.name)
            if not reference.available():
                log.warning("no reference row %s: %s", reference.label, reference.missing_note)
                continue
            training_dataset = load_metadata(replication.metadata_file).dataset.name
            models.append(_reference_model(reference, training_dataset))
    return models


def _reference_model(reference: BenchReference, training_dataset: str) -> Model:
    network = reference.load()

    def predict(faces: Sequence[np.ndarray]) -> np.ndarray:
        # The reference's own preprocessing one face at a time: crops differ in size.
        batch = np.concatenate([reference.preprocess(_gray(face)[None]) for face in faces])
        return np.asarray(network.predict_on_batch(batch), dtype=np.float64)

    description = {"source": {"reference": reference.name, "label": reference.label}}
    class_names = list(_emotion_table(training_dataset))
    return Model(
        f"{reference.name} (reference)", training_dataset, class_names, predict, description, scores_own_dataset=True
    )


def _gray(face: np.ndarray) -> np.ndarray:
    """(H, W, 1) grayscale uint8 from a grayscale or RGB face."""
    return face if face.shape[-1] == 1 else cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)[..., None]


def load_models(names: Sequence[str]) -> list[Model]:
    return [bundle_model(load_bundle(name), name) for name in names]


# --- the run and its record ----------------------------------------------------------------------------


def score_matrix(models: Sequence[Model], faces: Sequence[Faces]) -> list[Cell]:
    cells = []
    for model in models:
        for test_faces in faces:
            log.info("scoring %s on %s", model.name, test_faces.test_set.label)
            cells.append(score_cell(model, test_faces))
    return cells


def build_record(
    models: Sequence[Model], faces: Sequence[Faces], cells: Sequence[Cell], missing: Mapping[str, str], command: str
) -> dict:
    """The JSON record: provenance, datasets with checksums, models' metadata, mappings, rule and cells."""
    return {
        "kind": "cross-dataset",
        "format": FORMAT_VERSION,
        "provenance": machine_provenance(command),
        "rule": RESTRICTION_RULE,
        "test_sets": [_test_set_entry(test_faces) for test_faces in faces],
        "models": {model.name: {"training_dataset": model.training_dataset, **model.description} for model in models},
        "missing_models": dict(missing),
        "how_to_make": how_to_make(),
        "mappings": {
            f"{test_faces.test_set.dataset} -> {model.name}": class_mapping(
                test_faces.test_set.dataset, model.training_dataset, model.class_names, model.class_groups
            )
            for model in models
            for test_faces in faces
            if scores(model, test_faces.test_set)
        },
        "cells": [asdict(cell) for cell in cells],
    }


def _test_set_entry(faces: Faces) -> dict:
    """A test set as the record describes it, with each image's class and groups (one character each), which
    the cells' `per_image` results are read against."""
    counts = np.bincount(faces.labels, minlength=len(faces.class_names))
    groups = {}
    for attribute, values in faces.groups.items():
        members = sorted(set(values.tolist()))
        groups[attribute] = {"values": members, "per_image": encode_labels([members.index(v) for v in values])}
    return {
        **asdict(faces.test_set),
        "checksum": faces.checksum,
        "images": len(faces.crops),
        "class_counts": {name: int(count) for name, count in zip(faces.class_names, counts, strict=True)},
        "faces_not_found": faces.not_found if faces.test_set.needs_face_crop else None,
        "class_names": list(faces.class_names),
        "labels": encode_labels(faces.labels),
        "groups": groups,
    }


def write_outputs(record: dict, results_dir: Path | None = None) -> Path:
    """`results/cross-dataset/<stamp>-<commit>/` with the record and the heat map; returns the record's path."""
    commit = str(record["provenance"].get("git_commit", "unknown"))[:7]
    stamp = record["provenance"]["created_utc"].replace(":", "").replace("-", "")
    folder = Path(results_dir or paths.results_dir()) / OUTPUT_FOLDER / f"{stamp}-{commit}"
    folder.mkdir(parents=True, exist_ok=True)
    record_path = folder / RECORD_FILE
    portable = paths.portable_json(json.loads(json.dumps(record, default=_json_value)))  # committed: no local paths
    write_text_atomically(record_path, json.dumps(portable, indent=2) + "\n")
    plot_heatmap(record, folder / FIGURE_FILE)
    return record_path


def _json_value(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def run_cross_dataset(
    model_names: Sequence[str] | None = None,
    *,
    reference: bool = True,
    command: str = "",
    previous: dict | None = None,
) -> dict:
    """Load the models and test sets and score every cell; returns the record (not yet written).

    previous: an earlier record whose rows of models not scored now are carried over unchanged (see
    `carry_rows`), so that a matrix grows one model at a time without retraining every replication."""
    available = list_bundles()
    names = list(model_names) if model_names else default_model_names(available)
    if not names:
        raise FerError(f"No model bundle found. {how_to_make()}")
    models = load_models(names)
    if not model_names:  # the models of short profiles' runs (quick, ci) are smoke tests, not rows
        shorts = [model.name for model in models if not _from_full_run(model)]
        if shorts:
            log.info("left out, made by a shorter profile than full (name them to score them): %s", ", ".join(shorts))
        models = [model for model in models if model.name not in shorts]
    if not models:
        raise FerError(f"No model bundle of a full run found. {how_to_make()}")
    models += reference_models() if reference else []
    faces = [prepare_faces(test_set, load_dataset(test_set.dataset)) for test_set in TEST_SETS]
    cells = score_matrix(models, faces)
    record = build_record(models, faces, cells, {}, command or "fer-replicate cross-dataset")
    if previous is not None:
        carry_rows(record, previous)
    rows_from_job_results(record)
    carried_names = [
        name for name, entry in record["models"].items() if entry.get("carried_from") or entry.get("from_job_result")
    ]
    record["missing_models"] = missing_bundles(names + carried_names, models)
    return record


@functools.cache
def _test_faces(test_set: EvaluationSet) -> Faces:
    """A test set's faces, prepared once per process (a run scores each of its jobs' models on them)."""
    return prepare_faces(test_set, load_dataset(test_set.dataset, progress=False))


def score_trained_model(
    model_file: bytes, *, name: str, replication_id: str, class_names: Sequence[str], preprocessing: Preprocessing
) -> dict:
    """A freshly trained model's row of the matrix, for its job result: the job then carries its cross-dataset
    cells, and the matrix never needs a bundle that stayed on the machine that trained it. A test set whose
    data is not here is named in `not_scored`, with why."""
    with tempfile.TemporaryDirectory() as folder:
        model_path = Path(folder) / "model.keras"
        model_path.write_bytes(model_file)
        bundle_path = save_bundle_file(
            model_path,
            Path(folder) / name,
            class_names=class_names,
            preprocessing=preprocessing,
            source={"replication": replication_id},
        )
        model = bundle_model(load_bundle(bundle_path), name)
        cells, test_sets, not_scored = [], [], {}
        for test_set in TEST_SETS:
            if not scores(model, test_set):
                continue  # within-dataset: the job's own record scores it
            try:
                faces = _test_faces(test_set)
            except DatasetError as error:
                not_scored[test_set.label] = str(error).splitlines()[0]
                continue
            cells.append(asdict(score_cell(model, faces)))
            test_sets.append(_test_set_entry(faces))
    mappings = {
        f"{entry['dataset']} -> {name}": class_mapping(
            entry["dataset"], model.training_dataset, model.class_names, model.class_groups
        )
        for entry in test_sets
    }
    return {
        "format": FORMAT_VERSION,
        "rule": RESTRICTION_RULE,
        "face_detector": FACE_DETECTOR,
        "test_sets": test_sets,
        "mappings": mappings,
        "cells": cells,
        "not_scored": not_scored,
    }


def rows_from_job_results(record: dict, results_dir: Path | None = None) -> list[str]:
    """Add to `record` a row for each published model it lacks (`<id>-<setting>`), from the job results of its
    replication's latest full record: a job that published a model scored it on the other datasets before it
    ended, so the matrix does not need a bundle that stayed on the machine that trained it. The seed is the one
    the runner publishes (highest selection score, the first on ties). Only cells scored on the same test sets
    (label, dataset, split, checksum) are added. Returns the names added."""

    def identity(entry: Mapping) -> tuple:
        return entry["label"], entry["dataset"], entry["split"], entry["checksum"]

    wanted = [identity(entry) for entry in record["test_sets"]]
    added = []
    for replication in REPLICATIONS.ids():
        full = latest_record(replication, FULL_PROFILE, results_dir)
        entries = full.provenance.jobs if full else []
        folder = Path(results_dir or paths.results_dir()) / replication / "jobs"
        training_dataset = load_metadata(REPLICATIONS.metadata_file(replication)).dataset.name if entries else None
        for setting in dict.fromkeys(entry.setting for entry in entries):
            name = f"{replication}-{setting}"
            if name in record["models"] and not _carried_before(record["models"][name], full):
                continue
            files = [entry.file for entry in entries if entry.setting == setting]
            jobs = [read_job(folder / file) for file in files if (folder / file).is_file()]
            jobs = [job for job in jobs if job.model is not None and (job.cross_dataset or {}).get("cells")]
            if not jobs:
                continue
            chosen = max(jobs, key=lambda job: (job.model.selection_score or 0.0, -job.seed))
            _drop_row(record, name)  # a row carried from a matrix older than the record: another model
            scored = chosen.cross_dataset
            usable = {entry["label"] for entry in scored["test_sets"] if identity(entry) in wanted}
            record["models"][name] = {
                "training_dataset": training_dataset,
                "source": {"replication": replication, "setting": setting, "seed": chosen.seed},
                "from_job_result": f"{replication}/jobs/{chosen.file.name}",
            }
            record["cells"].extend({**cell, "model": name} for cell in scored["cells"] if cell["test_set"] in usable)
            record["cells"].extend(
                asdict(_unscored_cell(name, entry, training_dataset, scored.get("not_scored", {})))
                for entry in record["test_sets"]
                if entry["label"] not in usable
            )
            record["mappings"].update(
                {f"{pair.split(' -> ')[0]} -> {name}": mapping for pair, mapping in scored["mappings"].items()}
            )
            added.append(name)
    return added


def _carried_before(model: Mapping, full: Record) -> bool:
    """Whether a model's row was carried over from a matrix made before `full`, the record whose run has
    published a model under that name since: the row then scored another file."""
    carried = model.get("carried_from")
    return bool(carried) and carried["created_utc"] < full.provenance.created_utc


def _drop_row(record: dict, name: str) -> None:
    record["models"].pop(name, None)
    record["cells"] = [cell for cell in record["cells"] if cell["model"] != name]
    record["mappings"] = {
        pair: mapping for pair, mapping in record["mappings"].items() if not pair.endswith(f" -> {name}")
    }


def _unscored_cell(model: str, test_set: Mapping, training_dataset: str, not_scored: Mapping[str, str]) -> Cell:
    """The cell of a test set a job did not score: its own dataset (left to its record), or one whose data was
    not on the machine that ran it (why, as the job said)."""
    if test_set["dataset"] == training_dataset:
        return Cell(model, test_set["label"], "within-dataset", note=WITHIN_DATASET_NOTE)
    why = not_scored.get(test_set["label"], "scored on other images than this matrix's")
    return Cell(model, test_set["label"], "not scored", note=f"not scored in its job: {why}")


def carry_rows(record: dict, previous: dict) -> list[str]:
    """Copy into `record` the rows of `previous` whose model it does not score (cells, mappings and model
    entry unchanged), each model entry naming the record its cells were scored in (`carried_from`).

    Only where every test set is the same (label, dataset, split and checksum): cells scored on other images
    are not comparable, so then nothing is carried and a warning says why. Returns the carried model names."""

    def identity(entry: Mapping) -> tuple:
        return entry["label"], entry["dataset"], entry["split"], entry["checksum"]

    if [identity(entry) for entry in previous["test_sets"]] != [identity(entry) for entry in record["test_sets"]]:
        log.warning("rows of %s not carried over: its test sets or their checksums differ", previous.get("_path"))
        return []
    carried = [name for name in previous["models"] if name not in record["models"]]
    origin = {  # the record's place under results/
        "record": f"{OUTPUT_FOLDER}/{Path(previous['_path']).parent.name}/{RECORD_FILE}",
        "git_commit": previous["provenance"].get("git_commit"),
        "created_utc": previous["provenance"]["created_utc"],
    }
    for name in carried:
        entry = previous["models"][name]
        record["models"][name] = {**entry, "carried_from": entry.get("carried_from") or origin}
        record["cells"].extend(cell for cell in previous["cells"] if cell["model"] == name)
        record["mappings"].update(
            {pair: mapping for pair, mapping in previous["mappings"].items() if pair.endswith(f" -> {name}")}
        )
    return carried


def plot_heatmap(record: dict, path: Path) -> Path:
    """Rows: model / training set; columns: test set; colour and text: accuracy, with n below."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    models, test_sets = list(record["models"]), [entry["label"] for entry in record["test_sets"]]
    accuracy = np.full((len(models), len(test_sets)), np.nan)
    figure = Figure(figsize=(2.4 * len(test_sets) + 3.5, 0.7 * len(models) + 1.8))
    axes = figure.add_subplot()
    for cell in record["cells"]:
        row, column = models.index(cell["model"]), test_sets.index(cell["test_set"])
        colour = "black"
        if cell["status"] == "scored" and cell["accuracy"] is not None:
            accuracy[row, column] = cell["accuracy"]
            text = f"{cell['accuracy']:.1%}\nn={cell['n']}"
            colour = "white" if cell["accuracy"] < 0.5 else "black"  # readable on viridis' dark end
        else:
            text = "within-dataset:\nsee its record" if cell["status"] == "within-dataset" else cell["status"]
        axes.text(column, row, text, ha="center", va="center", fontsize=8, color=colour)
    image = axes.imshow(accuracy, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(test_sets)), test_sets, fontsize=8)
    axes.set_yticks(range(len(models)), [row_label(record, model) for model in models], fontsize=8)
    axes.set_title("Cross-dataset accuracy (restricted argmax; no face = miss)", fontsize=9)
    figure.colorbar(image, ax=axes, label="accuracy")
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    return path
