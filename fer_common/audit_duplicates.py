"""FER2013 duplicate audit: identical and near-identical images within and across Training, PublicTest and
PrivateTest, and what they do to a model's PrivateTest accuracy.

Exact duplicates: the same pixel array (a BLAKE2 digest of its bytes). Near duplicates: a perceptual hash
(imagehash's 64-bit pHash) within a Hamming distance of the threshold, found by multi-index hashing: the 64
bits are cut into threshold + 1 bands, and two hashes within the threshold agree on at least one whole band
(pigeonhole), so only hashes sharing a band are compared. Near-uniform images (pixel standard deviation under
BLANK_MAX_STD: black, white, grey frames) all hash alike; they are counted apart and left out of the pairs.

The record goes to `results/audits/fer2013-duplicates/` (a sub-folder, so `records.load_records`, which reads
the `*.json` directly inside each `results/<folder>/`, never takes it for a replication's record).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_common import paths
from fer_common.fairness import difference_interval, rate_with_interval
from fer_common.measurement_formats import ANY, DATASET, EXACT, NEAR, SCORED_SPLIT, SPLITS, TRAINING, split_pair_name

log = logging.getLogger(__name__)

HASH_BITS = 64
# Chosen by looking at 10 random pairs per distance: up to 6 bits all were the same photo (re-encoded,
# watermarked, shifted a pixel or two); at 8 bits 2 of 10 were different people, at 10 bits most were.
DEFAULT_THRESHOLD = 6
# pHash distances between balanced 64-bit hashes are even: the figure shows 0, t-2, t, t+2.
FIGURE_MARGIN = 2
BLANK_MAX_STD = 5.0
AUDIT_FOLDER = Path("audits") / "fer2013-duplicates"


@dataclass(frozen=True)
class DuplicatePairs:
    """Image pairs (first < second, indices into the dataset) whose hashes are within a distance."""

    first: np.ndarray
    second: np.ndarray
    distance: np.ndarray
    exact: np.ndarray  # bool: identical pixel arrays

    def __len__(self) -> int:
        return len(self.first)

    def where(self, keep: np.ndarray) -> DuplicatePairs:
        return DuplicatePairs(self.first[keep], self.second[keep], self.distance[keep], self.exact[keep])

    def within(self, threshold: int) -> DuplicatePairs:
        return self.where(self.distance <= threshold)


@dataclass(frozen=True)
class PairCount:
    """Pairs of one kind between two splits (or within one), and whether their two labels agree."""

    splits: str
    kind: str
    pairs: int
    labels_agree: int
    labels_conflict: int


@dataclass(frozen=True)
class AccuracySplit:
    """A model's accuracy on the scored images with and without a duplicate in Training."""

    model: str
    with_duplicate: dict  # rate_with_interval
    without_duplicate: dict
    difference: float | None
    difference_newcombe_95: tuple[float, float] | None


def perceptual_hashes(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 1) grayscale images -> (N,) uint64 pHashes (imagehash's 8x8 DCT sign bits)."""
    import imagehash
    from PIL import Image

    bits = np.stack([imagehash.phash(Image.fromarray(image[..., 0])).hash.ravel() for image in images])
    return np.packbits(bits, axis=1).view(">u8")[:, 0].astype(np.uint64)


def pixel_digests(images: np.ndarray) -> np.ndarray:
    """One hex digest of each image's pixel bytes: equal digests = identical pixel arrays."""
    return np.array([hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest() for image in images])


def blank_mask(images: np.ndarray, max_std: float = BLANK_MAX_STD) -> np.ndarray:
    """True for near-uniform images (pixel standard deviation under `max_std`), which all hash alike."""
    return images.reshape(len(images), -1).std(axis=1) < max_std


def hamming(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distance between uint64 hashes, element by element."""
    return np.bitwise_count(np.bitwise_xor(first, second)).astype(np.int64)


def band_edges(threshold: int) -> list[tuple[int, int]]:
    """(first bit, width) of threshold + 1 contiguous bands covering the 64 bits, as even as possible."""
    if not 0 <= threshold < HASH_BITS:
        raise ValueError(f"threshold must be 0..{HASH_BITS - 1} bits, not {threshold}")
    count = threshold + 1
    widths = [HASH_BITS // count + (1 if band < HASH_BITS % count else 0) for band in range(count)]
    starts = np.cumsum([0, *widths[:-1]])
    return [(int(start), width) for start, width in zip(starts, widths, strict=True)]


def _pairs_sharing_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs (i, j), i != j, with keys[i] == keys[j] (each pair once, in some order)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    group_start = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    group_end = np.r_[group_start[1:], len(keys)]
    sizes = group_end - group_start
    # Position p pairs with p + 1, p + 2, ... up to its group's end; walking the offsets keeps the work
    # proportional to the pairs found.
    end_of = np.repeat(group_end, sizes)
    positions = np.arange(len(keys))
    firsts, seconds = [], []
    offset = 1
    while len(positions):
        positions = positions[positions + offset < end_of[positions]]
        firsts.append(order[positions])
        seconds.append(order[positions + offset])
        offset += 1
    return np.concatenate(firsts), np.concatenate(seconds)


def pairs_within(hashes: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first, second, distance) of every pair of hashes within `threshold` bits, first < second, sorted."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    count = len(hashes)
    codes = []
    for start, width in band_edges(threshold):
        keys = (hashes >> np.uint64(start)) & np.uint64((1 << width) - 1)
        first, second = _pairs_sharing_keys(keys)
        close = hamming(hashes[first], hashes[second]) <= threshold
        low, high = np.minimum(first[close], second[close]), np.maximum(first[close], second[close])
        codes.append(low.astype(np.int64) * count + high)
    unique = np.unique(np.concatenate(codes)) if codes else np.zeros(0, dtype=np.int64)
    first, second = unique // count, unique % count
    return first, second, hamming(hashes[first], hashes[second])


def find_duplicates(hashes: np.ndarray, digests: np.ndarray, searched: np.ndarray, threshold: int) -> DuplicatePairs:
    """Pairs among the `searched` images (a bool mask) whose hashes are within `threshold` bits."""
    index = np.flatnonzero(searched)
    first, second, distance = pairs_within(hashes[index], threshold)
    first, second = index[first], index[second]
    return DuplicatePairs(first, second, distance, digests[first] == digests[second])


def count_pairs(pairs: DuplicatePairs, splits: np.ndarray, labels: np.ndarray) -> list[PairCount]:
    """Pairs per split pair (within and across splits) and kind (exact, near), with label agreement."""
    names = np.array([split_pair_name(a, b) for a, b in zip(splits[pairs.first], splits[pairs.second], strict=True)])
    agree = labels[pairs.first] == labels[pairs.second]
    counts = []
    for position, first_split in enumerate(SPLITS):
        for second_split in SPLITS[position:]:
            name = split_pair_name(first_split, second_split)
            for kind, of_kind in ((EXACT, pairs.exact), (NEAR, ~pairs.exact)):
                chosen = (names == name) & of_kind
                counts.append(
                    PairCount(name, kind, int(chosen.sum()), int((chosen & agree).sum()), int((chosen & ~agree).sum()))
                )
    return counts


def has_duplicate_in(pairs: DuplicatePairs, splits: np.ndarray, split: str, other: str) -> np.ndarray:
    """Bool mask over the dataset: images of `split` with at least one pair partner in `other`."""
    marked = np.zeros(len(splits), dtype=bool)
    for mine, partner in ((pairs.first, pairs.second), (pairs.second, pairs.first)):
        hit = (splits[mine] == split) & (splits[partner] == other)
        marked[mine[hit]] = True
    return marked


def images_with_duplicates(
    pairs: DuplicatePairs, splits: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> list[dict]:
    """Per (split, other split, kind): how many images of `split` have such a duplicate in `other`, and per
    class (the image's own label)."""
    rows = []
    for split in SPLITS:
        for other in SPLITS:
            for kind, chosen in ((EXACT, pairs.exact), (NEAR, ~pairs.exact), (ANY, np.ones(len(pairs), bool))):
                marked = has_duplicate_in(pairs.where(chosen), splits, split, other)
                by_class = {name: int((marked & (labels == index)).sum()) for index, name in enumerate(class_names)}
                rows.append(
                    {"split": split, "in": other, "kind": kind, "images": int(marked.sum()), "by_class": by_class}
                )
    return rows


def accuracy_split(model: str, correct: np.ndarray, has_duplicate: np.ndarray) -> AccuracySplit:
    """Accuracy (Wilson 95%) on the images with and without a duplicate, and their difference (Newcombe 95%)."""
    correct, has_duplicate = np.asarray(correct, bool), np.asarray(has_duplicate, bool)
    with_n, without_n = int(has_duplicate.sum()), int((~has_duplicate).sum())
    with_correct, without_correct = int(correct[has_duplicate].sum()), int(correct[~has_duplicate].sum())
    both = with_n > 0 and without_n > 0
    return AccuracySplit(
        model=model,
        with_duplicate=rate_with_interval(with_correct, with_n),
        without_duplicate=rate_with_interval(without_correct, without_n),
        difference=with_correct / with_n - without_correct / without_n if both else None,
        difference_newcombe_95=difference_interval(with_correct, with_n, without_correct, without_n) if both else None,
    )


def held_out_duplicates(
    pairs: DuplicatePairs, splits: np.ndarray, labels: np.ndarray, paths_of: np.ndarray, class_names: Sequence[str]
) -> list[dict]:
    """Every PublicTest or PrivateTest image with a duplicate in Training: its file, label, closest distance,
    whether one partner is pixel-identical, and whether every partner's label agrees with its own."""
    entries = []
    for mine, partner in ((pairs.first, pairs.second), (pairs.second, pairs.first)):
        hit = (splits[mine] != TRAINING) & (splits[partner] == TRAINING)
        entries.extend(zip(mine[hit], partner[hit], pairs.distance[hit], pairs.exact[hit], strict=True))
    by_image: dict[int, list] = {}
    for image, partner, distance, exact in entries:
        by_image.setdefault(int(image), []).append((int(partner), int(distance), bool(exact)))
    return [
        {
            "path": str(paths_of[image]),
            "split": str(splits[image]),
            "label": class_names[labels[image]],
            "training_partners": [str(paths_of[partner]) for partner, _, _ in partners],
            "closest_distance": min(distance for _, distance, _ in partners),
            "exact": any(exact for _, _, exact in partners),
            "labels_agree": all(labels[partner] == labels[image] for partner, _, _ in partners),
        }
        for image, partners in sorted(by_image.items(), key=lambda item: str(paths_of[item[0]]))
    ]


def distance_histogram(pairs: DuplicatePairs) -> dict[str, int]:
    values, counts = np.unique(pairs.distance, return_counts=True)
    return {str(int(value)): int(count) for value, count in zip(values, counts, strict=True)}


def sample_pairs(pairs: DuplicatePairs, distance: int, count: int, seed: int = 0) -> DuplicatePairs:
    """Up to `count` pairs at exactly `distance`, drawn at random (cross-split pairs first where possible)."""
    at_distance = np.flatnonzero(pairs.distance == distance)
    if distance == 0:
        # Distance 0 is mostly identical pixels; show pairs whose pixels differ when there are any.
        differing = at_distance[~pairs.exact[at_distance]]
        at_distance = differing if len(differing) else at_distance
    chosen = np.random.default_rng(seed).permutation(at_distance)[:count]
    return pairs.where(np.sort(chosen))


def save_pair_figure(
    dataset, pairs: DuplicatePairs, distances: Sequence[int], path: Path, per_row: int = 4, seed: int = 0
) -> Path:
    """A grid: one row per distance, `per_row` pairs side by side, split and label above each image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = dataset.meta["split"].to_numpy()
    figure, axes = plt.subplots(len(distances), 2 * per_row, figsize=(2.0 * per_row * 1.6, 2.1 * len(distances)))
    axes = np.atleast_2d(axes)
    for row, distance in enumerate(distances):
        chosen = sample_pairs(pairs, distance, per_row, seed)
        for column in range(per_row):
            for side in range(2):
                axis = axes[row, 2 * column + side]
                axis.axis("off")
                if column >= len(chosen):
                    continue
                image = (chosen.first if side == 0 else chosen.second)[column]
                axis.imshow(dataset.images[image][..., 0], cmap="gray", vmin=0, vmax=255)
                axis.set_title(f"{splits[image]}\n{dataset.class_names[dataset.labels[image]]}", fontsize=7)
        axes[row, 0].text(
            -0.25, 0.5, f"distance {distance}", transform=axes[row, 0].transAxes, rotation=90, va="center", fontsize=9
        )
    figure.suptitle("FER2013 pHash pairs: each pair side by side, split and label above", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def bundle_correct(bundle, images: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """Whether a bundle's top class is each image's label; its classes must be the dataset's, in any order."""
    missing = [name for name in class_names if name not in bundle.class_names]
    if missing or len(bundle.class_names) != len(class_names):
        raise ValueError(
            f"model {bundle.path} predicts {', '.join(bundle.class_names)}, not FER2013's seven classes "
            f"({', '.join(class_names)}): the audit scores all seven"
        )
    bundle_index = np.array([bundle.class_names.index(name) for name in class_names])
    return bundle.predict(images).argmax(axis=1) == bundle_index[labels]


def reference_models() -> list:
    """The pretrained models from elsewhere that the FER2013 replications score (their bench references),
    when installed and predicting the dataset's classes in its order."""
    from fer_common.metadata import load_metadata
    from fer_common.registry import REPLICATIONS

    found = []
    for replication_id in REPLICATIONS.ids():
        if load_metadata(REPLICATIONS.metadata_file(replication_id)).dataset.name != DATASET:
            continue
        for reference in REPLICATIONS.get(replication_id).bench_references():
            if reference.available():
                found.append(reference)
            else:
                log.info("reference model %s skipped: %s", reference.name, reference.missing_note)
    return found


def reference_correct(reference, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    from fer_common.train import predict_probabilities

    return predict_probabilities(reference.load(), reference.preprocess(images)).argmax(axis=1) == labels


def score_models(dataset, has_duplicate: np.ndarray, scored: np.ndarray, model_name: str) -> list[AccuracySplit]:
    """Accuracy with and without a Training duplicate on the `scored` images: the bundle `model_name`, then
    the reference models."""
    from fer_common.bundles import load_bundle

    images, labels = dataset.images[scored], dataset.labels[scored]
    bundle = load_bundle(model_name)
    source = bundle.source
    label = f"bundle {model_name} ({source.get('replication', '?')} {source.get('setting', '')}".strip() + ")"
    splits = [accuracy_split(label, bundle_correct(bundle, images, labels, dataset.class_names), has_duplicate[scored])]
    for reference in reference_models():
        correct = reference_correct(reference, images, labels)
        splits.append(accuracy_split(reference.label, correct, has_duplicate[scored]))
    return splits


@dataclass(frozen=True)
class AuditResult:
    record: dict
    path: Path | None
    figure: Path | None


def audit_fer2013(
    threshold: int | None = None,
    model_name: str | None = None,
    *,
    output_dir: Path | None = None,
    write: bool = True,
    dataset=None,
) -> AuditResult:
    """Run the whole audit (threshold default DEFAULT_THRESHOLD, model default the demo's bundle); write the
    record (never overwriting) and its figure beside it unless `write` is off."""
    from fer_common.bundles import default_bundle_name
    from fer_common.data import load_dataset
    from fer_common.provenance import machine_provenance

    started = time.perf_counter()
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    band_edges(threshold)  # fails on an impossible threshold before the dataset loads
    dataset = dataset if dataset is not None else load_dataset(DATASET)
    model_name = model_name or default_bundle_name()
    splits, labels = dataset.meta["split"].to_numpy(), dataset.labels
    blank = blank_mask(dataset.images)
    hashes, digests = perceptual_hashes(dataset.images), pixel_digests(dataset.images)
    shown = find_duplicates(hashes, digests, ~blank, threshold + FIGURE_MARGIN)
    pairs = shown.within(threshold)
    log.info(
        "%d pairs within %d bits among %d images (%d near-uniform left out)",
        len(pairs),
        threshold,
        len(dataset),
        int(blank.sum()),
    )
    scored = (splits == SCORED_SPLIT) & ~blank
    in_training = has_duplicate_in(pairs, splits, SCORED_SPLIT, TRAINING)
    models = score_models(dataset, in_training, scored, model_name)
    record = {
        "kind": "fer2013 duplicate audit",
        "dataset": DATASET,
        "dataset_checksum": dataset.checksum,
        "hash": {"name": "pHash (imagehash)", "bits": HASH_BITS, "threshold": threshold},
        "images": {split: int((splits == split).sum()) for split in SPLITS},
        "blank": {
            "max_std": BLANK_MAX_STD,
            "images": {split: int((blank & (splits == split)).sum()) for split in SPLITS},
            "note": "near-uniform images hash alike; left out of every pair and of the model check",
        },
        "pairs": [vars(count) for count in count_pairs(pairs, splits, labels)],
        "images_with_duplicate": images_with_duplicates(pairs, splits, labels, dataset.class_names),
        "distance_histogram": distance_histogram(shown),
        "held_out_duplicates": held_out_duplicates(
            pairs, splits, labels, dataset.meta["path"].to_numpy(), dataset.class_names
        ),
        "model_check": {
            "scored": f"{SCORED_SPLIT} (without its near-uniform images)",
            "with": f"a duplicate in {TRAINING} (exact or within {threshold} bits)",
            "models": [vars(split) for split in models],
        },
        "provenance": {**machine_provenance(), "wall_time_s": elapsed_since(started), "model": model_name},
    }
    if not write:
        return AuditResult(record, None, None)
    return write_audit(record, dataset, shown, threshold, Path(output_dir or default_output_dir()))


def write_audit(record: dict, dataset, shown: DuplicatePairs, threshold: int, folder: Path) -> AuditResult:
    """The record as `fer2013-duplicates-<UTC time>-<commit>.json` (never overwritten) and its figure beside it
    under the same name."""
    from fer_common.records import bench_stem, write_new_json

    distances = [0, max(threshold - FIGURE_MARGIN, 0), threshold, threshold + FIGURE_MARGIN]
    record["figure"] = {"file": "this record's name with .png", "distances": distances}
    path = write_new_json(folder, bench_stem(record, "fer2013-duplicates"), record)
    figure = save_pair_figure(dataset, shown, distances, path.with_suffix(".png"))
    return AuditResult(record, path, figure)


def default_output_dir() -> Path:
    return paths.results_dir() / AUDIT_FOLDER


def elapsed_since(started: float) -> float:
    return round(time.perf_counter() - started, 1)
