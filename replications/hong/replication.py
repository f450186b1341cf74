"""Hong et al. (2023): a 4-conv + 3-FC CNN classifying CFD faces as negative / neutral / positive.

Settings: `grayscale` is the paper's input; `colour` is the same pipeline on RGB. Hong argues that grayscale
removes racial bias but never measures it, so every job also scores accuracy and per-class recall by race
and by sex (extras, one value per seed), and `finalize` adds a bias audit on the test predictions pooled
over the seeds (details).

Data: the paper's 320 CFD "Expression Morphs" are not public. A user who has them puts them in
`$FER_DATA_DIR/hong_morphs/` (one folder per class, or the files plus `labels.csv` with columns
`file,label`) and the run is `real`; otherwise the public CFD subset stands in and the run is `proxy`.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fer_common import metrics
from fer_common.contract import Prepared, Replication, SeedOutcome
from fer_common.data.dataset import FaceDataset
from fer_common.data.images import read_images, scan_class_folders
from fer_common.data.integrity import content_checksum, relative_name
from fer_common.errors import DatasetError
from fer_common.paths import data_dir
from fer_common.train import RuntimeOptions, fit, make_dataset, predict_probabilities, to_model_input

log = logging.getLogger(__name__)
CLASS_NAMES = ("negative", "neutral", "positive")
SETTING_CHANNELS = {"grayscale": 1, "colour": 3}
# Gaps are first group minus second group: a positive race gap means Black faces are classified better.
GAP_PAIRS = {"race": ("B", "W"), "sex": ("F", "M")}
STORED_SIZE = 256  # user morphs are stored like the CFD subset: centred 256x256 RGB squares
UNKNOWN = "?"  # race or sex of a file whose name does not follow the CFD convention
# CFD-<race><sex>-<target>..., e.g. CFD-BF-001-025-HC.jpg; morphs keep the target's CFD prefix.
CFD_NAME = re.compile(r"CFD-(?P<race>[A-Z])(?P<sex>[FM])-(?P<target>\d{3})", re.IGNORECASE)
# Several SGD steps per call into TensorFlow: the same updates in the same order, less Python overhead.
STEPS_PER_EXECUTION = 20
MORPHS_LAYOUT = (
    "Put the CFD Expression Morphs (request them from chicagofaces.org) either in one folder per class, "
    f"{'/, '.join(CLASS_NAMES)}/, or anywhere under the folder with a label map CSV (columns file,label; "
    "file relative to the CSV's folder; label one of " + ", ".join(CLASS_NAMES) + "). Keep the CFD file "
    "names (CFD-<race><sex>-<target>-...) so the bias audit can read race and sex."
)


# --- data -------------------------------------------------------------------------------------------


def demographics_from_names(names: list[str]) -> pd.DataFrame:
    """race, sex and target (person id, `BF-001` as the CFD loader writes it) from CFD-style file names.

    A name that is not CFD-style gets UNKNOWN race and sex and its file stem as target.
    """
    rows = []
    for name in names:
        match = CFD_NAME.search(Path(name).name)
        if match:
            race, sex = match["race"].upper(), match["sex"].upper()
            rows.append({"race": race, "sex": sex, "target": f"{race}{sex}-{match['target']}"})
        else:
            rows.append({"race": UNKNOWN, "sex": UNKNOWN, "target": Path(name).stem})
    return pd.DataFrame(rows, columns=["race", "sex", "target"])


def _normalised_row(row: dict) -> dict[str, str]:
    """Column names lower-cased and stripped, values stripped ("" where a row is short)."""
    return {key.strip().lower(): (text or "").strip() for key, text in row.items() if key}


def read_label_map(label_map: Path) -> list[tuple[Path, int]]:
    """(file, label) from a `file,label` CSV; files are relative to the CSV's folder and must exist."""
    with open(label_map, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [column.strip().lower() for column in reader.fieldnames or []]
        if "file" not in columns or "label" not in columns:
            raise DatasetError(f"Label map {label_map} needs the header columns file,label; has {columns}.")
        rows = [_normalised_row(row) for row in reader]
    labelled, missing, seen = [], [], set()
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        label = row["label"].lower()
        if label not in CLASS_NAMES:
            raise DatasetError(
                f"Label map {label_map} line {line}: label {row['label']!r} is not one of {', '.join(CLASS_NAMES)}."
            )
        path = (label_map.parent / row["file"]).resolve()
        if not row["file"] or not path.is_file():
            missing.append(f"line {line} {row['file']!r}")
        elif path in seen:
            raise DatasetError(f"Label map {label_map} line {line}: {row['file']!r} is listed twice.")
        seen.add(path)
        labelled.append((path, CLASS_NAMES.index(label)))
    if missing:
        shown = "; ".join(missing[:10]) + (f"; and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise DatasetError(
            f"Label map {label_map} names {len(missing)} file(s) not found in {label_map.parent}: {shown}."
        )
    return labelled


def load_user_morphs(folder: Path, label_map_name: str = "labels.csv") -> FaceDataset:
    """The user's morphs: `folder/<class>/*.jpg`, or `folder/<label_map_name>` naming files and labels."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"Hong morphs folder {folder} does not exist. {MORPHS_LAYOUT}")
    label_map = folder / label_map_name
    if label_map.is_file():
        labelled = read_label_map(label_map)
    else:
        try:
            labelled = scan_class_folders(folder, CLASS_NAMES, "Hong morphs folder")
        except DatasetError as error:
            raise DatasetError(f"{error} No label map {label_map} either. {MORPHS_LAYOUT}") from error
    counts = np.bincount([label for _, label in labelled], minlength=len(CLASS_NAMES))
    if not counts.all():
        empty = [name for name, count in zip(CLASS_NAMES, counts, strict=True) if count == 0]
        raise DatasetError(f"Hong morphs in {folder} have no {', '.join(empty)} image. {MORPHS_LAYOUT}")
    files = [path for path, _ in labelled]
    # The paper centres and resizes; the centred square here, the model's input size in prepare().
    images = read_images(
        files,
        color="rgb",
        size=(STORED_SIZE, STORED_SIZE),
        crop_to_size=True,
        progress=False,
        description="hong morphs",
    )
    # A label map may name files outside its folder: paths and checksum are relative to the common root.
    root = Path(os.path.commonpath([folder.resolve(), *(path.resolve() for path in files)]))
    names = [relative_name(path.resolve(), root) for path in files]
    meta = demographics_from_names(names)
    meta["path"], meta["split"] = names, "all"
    meta["expression"] = [CLASS_NAMES[label] for _, label in labelled]
    return FaceDataset(
        name="hong_morphs",
        images=images,
        labels=np.array([label for _, label in labelled], dtype=np.int64),
        class_names=list(CLASS_NAMES),
        meta=meta,
        groups=meta["target"].to_numpy(dtype=str),
        checksum=content_checksum([path.resolve() for path in files], root),
        extra={"composition": {name: int(count) for name, count in zip(CLASS_NAMES, counts, strict=True)}},
    )


def load_cfd_proxy(config: dict) -> FaceDataset:
    """The public CFD subset in Hong's 3 classes (negative = A+F, positive = HC+HO, neutral = N)."""
    from fer_common.data import load_dataset
    from fer_common.data.cfd import to_hong_classes

    return to_hong_classes(load_dataset("cfd"), races=tuple(config["races"]), neutral=config["neutral"])


@dataclass(frozen=True)
class HongData:
    images: dict[str, np.ndarray]  # setting -> model input (grayscale or colour)
    labels: np.ndarray
    demographics: dict[str, np.ndarray]  # "race" / "sex" -> one code per image
    composition: dict


def describe_composition(dataset: FaceDataset) -> str:
    """Class counts and race x sex counts, one line, for the record."""
    classes = ", ".join(f"{name} {count}" for name, count in dataset.class_counts().items())
    cells = dataset.meta.groupby(["race", "sex"]).size()
    groups = ", ".join(f"{race}{sex} {count}" for (race, sex), count in cells.items())
    return f"{len(dataset)} images ({classes}; {groups})"


# --- model ------------------------------------------------------------------------------------------


def final_feature_side(input_side: int, conv_layers: int, kernel_size: int) -> int:
    """Side of the feature map after `conv_layers` x (valid conv, 2x2 max-pool); < 1 means too small."""
    side = input_side
    for _ in range(conv_layers):
        side = (side - kernel_size + 1) // 2
        if side < 1:
            return 0
    return side


def pytorch_default_initializers(fan_in: int) -> dict:
    """PyTorch's default Conv2d/Linear initialisation, U(±1/√fan_in) for weights and biases.

    kaiming_uniform(a=√5) has bound √(6/((1+5)·fan_in)) = 1/√fan_in, which is Keras' VarianceScaling with
    scale 1/3, fan_in, uniform. The paper trains a PyTorch model; its slow start (near chance for ~35
    epochs) depends on this small initialisation, which Keras' Glorot default would not give.
    """
    import keras

    bound = 1.0 / math.sqrt(fan_in)
    return {
        "kernel_initializer": keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
        "bias_initializer": keras.initializers.RandomUniform(-bound, bound),
    }


def build_model(
    num_classes: int = 3,
    input_shape: tuple[int, int, int] = (96, 96, 1),
    conv_filters: tuple[int, ...] = (6, 16, 32, 64),
    kernel_size: int = 5,
    dense_units: tuple[int, ...] = (120, 84),
):
    """Normalise(0.5, 0.5) → 4 x [Conv k×k, ReLU, MaxPool 2] → Flatten → FC 120 → FC 84 → FC classes.

    The PyTorch CIFAR-10 tutorial's network with two more convolutions (the paper has 4 conv + 3 FC).
    """
    import keras
    from keras import layers

    side = final_feature_side(input_shape[0], len(conv_filters), kernel_size)
    if side < 1:
        raise ValueError(
            f"input {input_shape[0]}x{input_shape[1]} is too small for {len(conv_filters)} valid "
            f"{kernel_size}x{kernel_size} convolutions with 2x2 pooling"
        )
    # transforms.Normalize((0.5,), (0.5,)) of the tutorial: [0, 1] → [-1, 1].
    stack: list = [keras.Input(shape=input_shape), layers.Rescaling(2.0, offset=-1.0)]
    channels = input_shape[-1]
    for filters in conv_filters:
        fan_in = kernel_size * kernel_size * channels
        stack += [
            layers.Conv2D(filters, kernel_size, activation="relu", **pytorch_default_initializers(fan_in)),
            layers.MaxPooling2D(2),
        ]
        channels = filters
    stack.append(layers.Flatten())
    fan_in = side * side * channels
    for units in dense_units:
        stack.append(layers.Dense(units, activation="relu", **pytorch_default_initializers(fan_in)))
        fan_in = units
    # Softmax + categorical cross-entropy is PyTorch's CrossEntropyLoss on logits.
    output_init = pytorch_default_initializers(fan_in)
    stack.append(layers.Dense(num_classes, activation="softmax", dtype="float32", **output_init))
    return keras.Sequential(stack, name="hong_cnn")


# --- group metrics (the bias audit) -----------------------------------------------------------------


def group_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, attribute: str, values: np.ndarray, class_names: list[str] | tuple
) -> dict[str, float]:
    """`accuracy/<attribute>=<g>` and `recall/<class>/<attribute>=<g>` for every known group g.

    A recall whose group has no test image of that class is NaN (undefined; the record stores null).
    """
    y_true, y_pred, values = np.asarray(y_true), np.asarray(y_pred), np.asarray(values)
    result: dict[str, float] = {}
    for group in sorted(set(values.tolist()) - {UNKNOWN}):
        members = values == group
        result[f"accuracy/{attribute}={group}"] = float(np.mean(y_pred[members] == y_true[members]))
        for index, name in enumerate(class_names):
            of_class = members & (y_true == index)
            result[f"recall/{name}/{attribute}={group}"] = (
                float(np.mean(y_pred[of_class] == index)) if of_class.any() else math.nan
            )
    return result


def group_gaps(values: dict[str, float], class_names: list[str] | tuple) -> dict[str, float]:
    """`accuracy_gap/race(B-W)`, `recall_gap/<class>/race(B-W)`, the same for sex(F-M); NaN if a side is."""
    gaps: dict[str, float] = {}
    for attribute, (first, second) in GAP_PAIRS.items():
        suffix = f"{attribute}({first}-{second})"
        for head, tail in [("accuracy", "")] + [("recall", f"/{name}") for name in class_names]:
            a = values.get(f"{head}{tail}/{attribute}={first}", math.nan)
            b = values.get(f"{head}{tail}/{attribute}={second}", math.nan)
            gaps[f"{head}_gap{tail}/{suffix}"] = a - b
    return gaps


def group_counts(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    demographics: dict[str, np.ndarray],
    class_names: list[str] | tuple,
) -> dict[str, dict]:
    """{"race=B": {"correct", "n", "recall": {class: [correct, n]}}, ...}: the counts behind group_metrics."""
    counts: dict[str, dict] = {}
    for attribute, values in demographics.items():
        values = np.asarray(values)
        for group in sorted(set(values.tolist()) - {UNKNOWN}):
            members = values == group
            recall = {}
            for index, name in enumerate(class_names):
                of_class = members & (y_true == index)
                recall[name] = [int(np.sum(y_pred[of_class] == index)), int(of_class.sum())]
            counts[f"{attribute}={group}"] = {
                "correct": int(np.sum(y_pred[members] == y_true[members])),
                "n": int(members.sum()),
                "recall": recall,
            }
    return counts


def add_counts(total: dict[str, dict], more: dict[str, dict]) -> dict[str, dict]:
    """The element-wise sum of two group_counts results."""
    summed = {key: {"correct": 0, "n": 0, "recall": {}} for key in {*total, *more}}
    for counts in (total, more):
        for key, entry in counts.items():
            summed[key]["correct"] += entry["correct"]
            summed[key]["n"] += entry["n"]
            for name, (correct, n) in entry["recall"].items():
                previous = summed[key]["recall"].get(name, [0, 0])
                summed[key]["recall"][name] = [previous[0] + correct, previous[1] + n]
    return summed


def _rate_with_interval(correct: int, n: int) -> dict:
    if n == 0:
        return {"correct": 0, "n": 0, "value": None, "wilson_95": None}
    interval = list(metrics.wilson_interval(correct, n))
    return {"correct": correct, "n": n, "value": correct / n, "wilson_95": interval}


def difference_interval(correct_a: int, n_a: int, correct_b: int, n_b: int) -> tuple[float, float]:
    """Newcombe's hybrid score interval (his method 10) for p_a − p_b, built from the two Wilson intervals."""
    p_a, p_b = correct_a / n_a, correct_b / n_b
    low_a, high_a = metrics.wilson_interval(correct_a, n_a)
    low_b, high_b = metrics.wilson_interval(correct_b, n_b)
    difference = p_a - p_b
    return (
        difference - math.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2),
        difference + math.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2),
    )


def bias_audit(counts: dict[str, dict], class_names: list[str] | tuple) -> dict:
    """Rates with Wilson intervals per group, and gaps with Newcombe intervals, from (pooled) counts."""
    groups = {
        key: {
            **_rate_with_interval(entry["correct"], entry["n"]),
            "recall": {name: _rate_with_interval(*entry["recall"][name]) for name in class_names},
        }
        for key, entry in sorted(counts.items())
    }
    gaps = {}
    for attribute, (first, second) in GAP_PAIRS.items():
        a, b = counts.get(f"{attribute}={first}"), counts.get(f"{attribute}={second}")
        if not (a and b):
            continue
        pairs = {"accuracy_gap": ((a["correct"], a["n"]), (b["correct"], b["n"]))}
        pairs.update({f"recall_gap/{name}": (a["recall"][name], b["recall"][name]) for name in class_names})
        for head, ((correct_a, n_a), (correct_b, n_b)) in pairs.items():
            if n_a and n_b:
                gaps[f"{head}/{attribute}({first}-{second})"] = {
                    "value": correct_a / n_a - correct_b / n_b,
                    "newcombe_95": list(difference_interval(correct_a, n_a, correct_b, n_b)),
                }
    return {"groups": groups, "gaps": gaps}


def metric_denominators(counts: dict[str, dict]) -> dict[str, int]:
    """{group metric: n} so the record can give each group row a Wilson interval."""
    denominators = {}
    for group, entry in counts.items():  # group is e.g. "race=B"
        if entry["n"]:
            denominators[f"accuracy/{group}"] = entry["n"]
        for name, (_, n) in entry["recall"].items():
            if n:
                denominators[f"recall/{name}/{group}"] = n
    return denominators


# --- one job ----------------------------------------------------------------------------------------


def first_epoch_at(history_values: list[float], threshold: float) -> float:
    """1-based first epoch whose value reaches `threshold`; NaN if none does."""
    reached = [epoch for epoch, value in enumerate(history_values, start=1) if value >= threshold - 1e-9]
    return float(reached[0]) if reached else math.nan


def train_model(
    images: np.ndarray,
    labels: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    seed: int,
    config: dict,
    runtime: RuntimeOptions,
):
    """Train for the paper's 100 epochs; the test set is the validation data, as in the paper's Fig. 3."""
    import keras

    num_classes = len(CLASS_NAMES)
    model = build_model(
        num_classes,
        images.shape[1:],
        tuple(config["conv_filters"]),
        config["kernel_size"],
        tuple(config["dense_units"]),
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=config["learning_rate"], momentum=config["momentum"]),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    train_data = make_dataset(images[train], labels[train], num_classes, config["batch_size"], shuffle=True, seed=seed)
    test_data = make_dataset(images[test], labels[test], num_classes, 256)
    # No early stopping and no checkpoint choice: the model after the last epoch is the one tested.
    result = fit(model, train_data, test_data, epochs=config["epochs"], options=runtime, verbose=0)
    return model, result


class Hong(Replication):
    metadata_file = Path(__file__).with_name("metadata.yaml")

    def prepare(self, config: dict) -> Prepared:
        morphs_folder = data_dir() / config["morphs_folder"]
        if morphs_folder.exists():
            dataset, data_kind = load_user_morphs(morphs_folder, config["label_map_file"]), "real"
            source = f"CFD Expression Morphs supplied by the user in {morphs_folder}"
        else:
            try:
                dataset, data_kind = load_cfd_proxy(config), "proxy"
            except DatasetError as error:
                message = f"{error}\nOr supply the paper's own data in {morphs_folder}: {MORPHS_LAYOUT}"
                raise DatasetError(message) from error
            expressions = dataset.extra.get("composition", {}).get("expressions", {})
            source = (
                "PROXY: the public CFD subset (one photo per person), not the Expression Morphs; negative = A+F, "
                "neutral = N, positive = HC+HO; expressions "
                + ", ".join(f"{code} {count}" for code, count in expressions.items())
            )
        if list(dataset.class_names) != list(CLASS_NAMES):
            raise DatasetError(f"Hong needs the classes {CLASS_NAMES}, the data has {dataset.class_names}.")
        images = {
            setting: to_model_input(dataset.images, channels=channels, size=config["input_size"])
            for setting, channels in SETTING_CHANNELS.items()
        }
        return Prepared(
            data=HongData(
                images=images,
                labels=dataset.labels,
                demographics={attribute: dataset.meta[attribute].astype(str).to_numpy() for attribute in GAP_PAIRS},
                composition=dataset.extra.get("composition", dataset.class_counts()),
            ),
            class_names=list(CLASS_NAMES),
            checksum=dataset.checksum,
            data_kind=data_kind,
            description=f"{source}; {describe_composition(dataset)}",
        )

    def run_setting(
        self, prepared: Prepared, setting: str, seed: int, config: dict, runtime: RuntimeOptions
    ) -> SeedOutcome:
        from fer_common.data import splits

        data: HongData = prepared.data
        images, labels, demographics = data.images[setting], data.labels, data.demographics
        train, test = splits.stratified_holdout(labels, config["test_fraction"], seed)
        model, result = train_model(images, labels, train, test, seed, config, runtime)
        probabilities = predict_probabilities(model, images[test])
        y_true, y_pred = labels[test], probabilities.argmax(1)
        train_accuracy = float(np.mean(predict_probabilities(model, images[train]).argmax(1) == labels[train]))

        majority_class = np.bincount(labels[train], minlength=len(prepared.class_names)).argmax()
        extras: dict[str, float] = {
            # What always answering the most frequent training class scores: the floor accuracy is read against.
            "majority_class_accuracy": float(np.mean(y_true == majority_class)),
            "final_train_accuracy": train_accuracy,
            "epoch_train_accuracy_reaches_1": first_epoch_at(result.history.get("accuracy", []), 1.0),
        }
        group_values: dict[str, float] = {}
        for attribute, values in demographics.items():
            group_values.update(group_metrics(y_true, y_pred, attribute, values[test], prepared.class_names))
        extras.update(group_values)
        extras.update(group_gaps(group_values, prepared.class_names))

        test_demographics = {attribute: values[test] for attribute, values in demographics.items()}
        counts = group_counts(y_true, y_pred, test_demographics, prepared.class_names)
        log.info(
            "%s seed %d: test acc %.3f, train acc %.3f, race gap (B-W) %+.3f",
            setting,
            seed,
            np.mean(y_true == y_pred),
            train_accuracy,
            extras["accuracy_gap/race(B-W)"],
        )
        return SeedOutcome(
            y_true=y_true,
            probabilities=probabilities,
            scored_set=f"the {len(test)}-image random test split (also the validation data, as in the paper)",
            history=result.history,
            metrics=extras,
            denominators=metric_denominators(counts),
            details={
                "data": prepared.description,
                "composition": data.composition,
                "n_train": int(len(train)),
                "n_test": int(len(test)),
                "test_set_is_validation_data": True,
                "group_counts": counts,
            },
        )

    def finalize(
        self, prepared: Prepared, details: dict[str, dict[int, dict]], config: dict
    ) -> dict[str, dict[int, dict]]:
        """Give each seed's details a `bias_audit` on the counts of that seed and the seeds before it.

        Runs after all jobs, in the runner's process: the jobs may have run anywhere, so the pooling reads only
        their results (`group_counts`) and recomputes each seed's test split for the distinct-image count.
        """
        from fer_common.data import splits

        additions: dict[str, dict[int, dict]] = {}
        for setting, by_seed in details.items():
            additions[setting] = {}
            seeds: list[int] = []
            counts: dict[str, dict] = {}
            images: set[int] = set()
            for seed, seed_details in by_seed.items():
                seeds.append(seed)
                counts = add_counts(counts, seed_details["group_counts"])
                _, test = splits.stratified_holdout(prepared.data.labels, config["test_fraction"], seed)
                images.update(test.tolist())
                audit = bias_audit(counts, prepared.class_names)
                audit.update(
                    {
                        "pooled_over_seeds": list(seeds),
                        "distinct_test_images": len(images),
                        "note": "counts pooled over the seeds listed (the last seed's entry pools them all); test "
                        "sets overlap across seeds, so the same image counts once per seed it was tested in and the "
                        "intervals describe these predictions, not new faces",
                    }
                )
                additions[setting][seed] = {"bias_audit": audit}
        return additions
