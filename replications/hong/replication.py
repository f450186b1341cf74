"""Hong et al. (2023): a 4-conv + 3-FC CNN classifying CFD faces as negative / neutral / positive.

Settings: `grayscale_balanced` is the paper's input on classes of about equal size (the paper's train and
test accuracy sit near 33% before the network learns, so its classes were about balanced: the neutral class
is drawn down to the mean size of the other two); `grayscale` is the same input on every proxy image (65%
neutral); `colour` is `grayscale` on RGB. Hong argues that grayscale
removes racial bias but never measures it, so every job also scores accuracy and per-class recall by race
and by sex (extras, one value per seed), and `finalize` adds a bias audit on the test predictions pooled
over the seeds (details). The statistics are `fer_common.fairness`'s; the data is `data.py`'s (the user's
CFD Expression Morphs make the run `real`, else the public CFD subset stands in and it is `proxy`), the
network `model.py`'s.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from fer_common import fairness
from fer_common.contract import Prepared, Preprocessing, Replication, RunKeys, SeedOutcome, TrainedModel
from fer_common.errors import DatasetError
from fer_common.paths import data_dir
from fer_common.train import RuntimeOptions, fit, make_dataset, predict_probabilities, to_model_input
from replications.hong.data import (
    CLASS_NAMES,
    MORPHS_LAYOUT,
    UNKNOWN,
    HongData,
    describe_composition,
    load_cfd_proxy,
    load_user_morphs,
)
from replications.hong.model import build_model

log = logging.getLogger(__name__)
SETTING_CHANNELS = {"grayscale_balanced": 1, "grayscale": 1, "colour": 3}
BALANCED = "grayscale_balanced"
SUBSET_SEED = 0  # the balanced draw is the same for every seed: only the split and training vary by seed
# Gaps are first group minus second group: a positive race gap means Black faces are classified better.
GAP_PAIRS = {"race": ("B", "W"), "sex": ("F", "M")}
# Several SGD steps per call into TensorFlow: the same updates in the same order, less Python overhead.
STEPS_PER_EXECUTION = 20


def first_epoch_at(history_values: list[float], threshold: float) -> float:
    """1-based first epoch whose value reaches `threshold`; NaN if none does."""
    reached = [epoch for epoch, value in enumerate(history_values, start=1) if value >= threshold - 1e-9]
    return float(reached[0]) if reached else math.nan


def mean_over_epochs(history_values: list[float], first: int, last: int | None = None) -> float:
    """Mean of a per-epoch curve over the 1-based epochs first..last (last None = the final epoch); NaN when the
    run stopped before `last` (or before `first`), so a short run never passes for the paper's curve."""
    end = len(history_values) if last is None else last
    if first < 1 or end < first or len(history_values) < end:
        return math.nan
    return float(np.mean(history_values[first - 1 : end]))


def balanced_subset(labels: np.ndarray, neutral: int, seed: int = SUBSET_SEED) -> np.ndarray:
    """Sorted indices of every non-neutral image and a random draw of neutral ones, as many as the mean size of
    the other classes (all of them when there are fewer)."""
    counts = np.bincount(labels)
    others = [count for index, count in enumerate(counts) if index != neutral]
    neutral_images = np.flatnonzero(labels == neutral)
    size = min(int(round(float(np.mean(others)))), len(neutral_images))
    chosen = np.random.default_rng(seed).choice(neutral_images, size=size, replace=False)
    return np.sort(np.concatenate([np.flatnonzero(labels != neutral), chosen]))


def group_extras(
    y_true: np.ndarray, y_pred: np.ndarray, demographics: dict[str, np.ndarray], class_names: list[str]
) -> dict[str, float]:
    """Accuracy and per-class recall by race and by sex, and their gaps (GAP_PAIRS), for one seed."""
    values: dict[str, float] = {}
    for attribute, groups in demographics.items():
        values.update(fairness.group_metrics(y_true, y_pred, attribute, groups, class_names, ignore=(UNKNOWN,)))
    return {**values, **fairness.group_gaps(values, class_names, GAP_PAIRS)}


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


def _setting_data(data: HongData, setting: str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(images, labels, demographics) of the images a setting uses."""
    chosen = data.subsets.get(setting, np.arange(len(data.labels)))
    demographics = {attribute: values[chosen] for attribute, values in data.demographics.items()}
    return data.images[setting][chosen], data.labels[chosen], demographics


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
        by_channels = {
            channels: to_model_input(dataset.images, channels=channels, size=config["input_size"])
            for channels in set(SETTING_CHANNELS.values())
        }
        images = {setting: by_channels[channels] for setting, channels in SETTING_CHANNELS.items()}
        return Prepared(
            data=HongData(
                images=images,
                labels=dataset.labels,
                demographics={attribute: dataset.meta[attribute].astype(str).to_numpy() for attribute in GAP_PAIRS},
                composition=dataset.extra.get("composition", dataset.class_counts()),
                subsets={BALANCED: balanced_subset(dataset.labels, CLASS_NAMES.index("neutral"))},
            ),
            class_names=list(CLASS_NAMES),
            checksum=dataset.checksum,
            data_kind=data_kind,
            description=f"{source}; {describe_composition(dataset)}",
        )

    def run_setting(
        self, prepared: Prepared, setting: str, seed: int, config: dict, runtime: RuntimeOptions, run_keys: RunKeys
    ) -> SeedOutcome:
        from fer_common.data import splits

        data: HongData = prepared.data
        images, labels, demographics = _setting_data(data, setting)
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
            # Fig. 3's curve, as the paper tells it: near chance for the first 35 epochs, test accuracy
            # stable around 75% from about epoch 70 (the test set is the validation data: val_accuracy).
            "mean_train_accuracy_epochs_1_35": mean_over_epochs(result.history.get("accuracy", []), 1, 35),
            "mean_test_accuracy_epochs_1_35": mean_over_epochs(result.history.get("val_accuracy", []), 1, 35),
            "mean_test_accuracy_from_epoch_70": mean_over_epochs(result.history.get("val_accuracy", []), 70),
            # 1 when the running train accuracy ever reaches 100%: its mean over seeds counts the seeds that do.
            "train_accuracy_reached_1": float(not math.isnan(first_epoch_at(result.history.get("accuracy", []), 1.0))),
        }
        test_demographics = {attribute: values[test] for attribute, values in demographics.items()}
        extras.update(group_extras(y_true, y_pred, test_demographics, prepared.class_names))
        counts = fairness.group_counts(y_true, y_pred, test_demographics, prepared.class_names, ignore=(UNKNOWN,))
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
            denominators=fairness.metric_denominators(counts),
            details={
                "data": prepared.description,
                "composition": data.composition,
                "class_counts": {
                    name: int(n) for name, n in zip(prepared.class_names, np.bincount(labels), strict=True)
                },
                "n_train": int(len(train)),
                "n_test": int(len(test)),
                "test_set_is_validation_data": True,
                "group_counts": {group: entry.to_json() for group, entry in counts.items()},
            },
            # For `predict` / `demo` and the cross-dataset matrix. The paper validates on its test split, so no
            # held-out score can choose among seeds: the first seed is published.
            model=TrainedModel(
                model,
                Preprocessing(size=images.shape[1], channels=images.shape[3], scale="unit"),
                selection_score=None,
                selected_on="nothing (the test split is the validation data)",
            ),
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
            counts: dict[str, fairness.GroupCounts] = {}
            images: set[int] = set()
            for seed, seed_details in by_seed.items():
                seeds.append(seed)
                seed_counts = {
                    group: fairness.GroupCounts.from_json(entry)
                    for group, entry in seed_details["group_counts"].items()
                }
                counts = fairness.pool_counts([counts, seed_counts])
                _, test = splits.stratified_holdout(
                    _setting_data(prepared.data, setting)[1], config["test_fraction"], seed
                )
                images.update(test.tolist())
                audit = fairness.audit(counts, prepared.class_names, GAP_PAIRS)
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
