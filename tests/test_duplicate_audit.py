"""The FER2013 duplicate audit: hashing, the band search against brute force, the counts and the model check."""

import itertools

import numpy as np
import pytest

from fer_common import audit_duplicates as audit
from fer_common.fairness import difference_interval
from fer_common.measurement_pages import audit_markdown
from fer_common.metrics import wilson_interval
from fer_common.records import load_records
from tests.helpers import requires_dataset


def brute_force_pairs(hashes: np.ndarray, threshold: int) -> set[tuple[int, int, int]]:
    found = set()
    for first, second in itertools.combinations(range(len(hashes)), 2):
        distance = bin(int(hashes[first]) ^ int(hashes[second])).count("1")
        if distance <= threshold:
            found.add((first, second, distance))
    return found


def clustered_hashes(seed: int) -> np.ndarray:
    """Random 64-bit hashes plus copies with a few bits flipped, so every distance 0..10 occurs."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2**63, size=40, dtype=np.uint64)
    copies = []
    for centre in centres:
        for flips in rng.integers(0, 11, size=4):
            bits = rng.choice(64, size=flips, replace=False)
            copies.append(centre ^ np.bitwise_or.reduce(np.uint64(1) << bits.astype(np.uint64), initial=np.uint64(0)))
    return np.concatenate([centres, np.array(copies, dtype=np.uint64), centres[:3]])  # and exact repeats


@pytest.mark.parametrize("threshold", [0, 2, 5, 8, 12])
def test_band_search_finds_exactly_the_pairs_brute_force_finds(threshold):
    hashes = clustered_hashes(seed=threshold)
    first, second, distance = audit.pairs_within(hashes, threshold)
    assert set(zip(first.tolist(), second.tolist(), distance.tolist(), strict=True)) == brute_force_pairs(
        hashes, threshold
    )
    assert len(first) > 0 and np.all(first < second)


def test_bands_cover_all_bits_once():
    for threshold in (0, 6, 63):
        edges = audit.band_edges(threshold)
        assert len(edges) == threshold + 1
        assert sum(width for _, width in edges) == 64 and edges[0][0] == 0
    with pytest.raises(ValueError, match="threshold must be 0..63"):
        audit.band_edges(64)


def faces(count: int, seed: int = 0) -> np.ndarray:
    """Smooth random 48x48 images (upsampled noise), unlike one another."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(count, 6, 6), dtype=np.uint8)
    return np.repeat(np.repeat(small, 8, axis=1), 8, axis=2)[..., None]


def test_hashes_find_a_copy_and_a_slightly_brightened_copy_but_not_a_blank_image():
    images = faces(5)
    brighter = np.clip(images[0].astype(int) + 3, 0, 255).astype(np.uint8)
    blank = np.full_like(images[0], 128)
    images = np.concatenate([images, images[:1], brighter[None], blank[None]])
    hashes, digests = audit.perceptual_hashes(images), audit.pixel_digests(images)
    assert hashes.dtype == np.uint64
    assert audit.blank_mask(images).tolist() == [False] * 7 + [True]
    pairs = audit.find_duplicates(hashes, digests, ~audit.blank_mask(images), threshold=4)
    found = {(int(a), int(b)): bool(exact) for a, b, exact in zip(pairs.first, pairs.second, pairs.exact, strict=True)}
    assert found == {(0, 5): True, (0, 6): False, (5, 6): False}


def example_pairs() -> tuple[audit.DuplicatePairs, np.ndarray, np.ndarray]:
    splits = np.array(["Training", "Training", "PrivateTest", "PrivateTest", "PublicTest", "Training"])
    labels = np.array([0, 0, 0, 1, 1, 2])
    pairs = audit.DuplicatePairs(
        first=np.array([0, 1, 0, 3]),
        second=np.array([2, 3, 1, 4]),
        distance=np.array([0, 4, 2, 6]),
        exact=np.array([True, False, False, False]),
    )
    return pairs, splits, labels


def test_pairs_are_counted_per_split_pair_and_kind_with_label_agreement():
    pairs, splits, labels = example_pairs()
    counts = {(c.splits, c.kind): c for c in audit.count_pairs(pairs, splits, labels)}
    assert counts["Training–PrivateTest", "exact"] == audit.PairCount("Training–PrivateTest", "exact", 1, 1, 0)
    assert counts["Training–PrivateTest", "near"] == audit.PairCount("Training–PrivateTest", "near", 1, 0, 1)
    assert counts["Training–Training", "near"].pairs == 1
    assert counts["PublicTest–PrivateTest", "near"] == audit.PairCount("PublicTest–PrivateTest", "near", 1, 1, 0)
    assert sum(c.pairs for c in counts.values()) == len(pairs)


def test_images_with_a_duplicate_are_counted_per_class_of_the_image():
    pairs, splits, labels = example_pairs()
    rows = audit.images_with_duplicates(pairs, splits, labels, ["a", "b", "c"])
    private_in_training = {row["kind"]: row for row in rows if (row["split"], row["in"]) == ("PrivateTest", "Training")}
    assert private_in_training["any"]["images"] == 2
    assert private_in_training["any"]["by_class"] == {"a": 1, "b": 1, "c": 0}
    assert private_in_training["exact"]["images"] == 1 and private_in_training["near"]["images"] == 1
    mask = audit.has_duplicate_in(pairs, splits, "PrivateTest", "Training")
    assert mask.tolist() == [False, False, True, True, False, False]


def test_held_out_duplicates_list_each_test_image_with_its_training_copies():
    pairs, splits, labels = example_pairs()
    paths = np.array([f"img{index}.jpg" for index in range(6)])
    entries = audit.held_out_duplicates(pairs, splits, labels, paths, ["a", "b", "c"])
    assert entries == [
        {
            "path": "img2.jpg",
            "split": "PrivateTest",
            "label": "a",
            "training_partners": ["img0.jpg"],
            "closest_distance": 0,
            "exact": True,
            "labels_agree": True,
        },
        {
            "path": "img3.jpg",
            "split": "PrivateTest",
            "label": "b",
            "training_partners": ["img1.jpg"],
            "closest_distance": 4,
            "exact": False,
            "labels_agree": False,
        },
    ]


def test_accuracy_is_split_by_duplicate_with_wilson_and_newcombe_intervals():
    correct = np.array([True, True, True, False, True, False, False, True])
    has_duplicate = np.array([True, True, True, True, False, False, False, False])
    split = audit.accuracy_split("m", correct, has_duplicate)
    assert split.with_duplicate["value"] == 0.75 and split.without_duplicate["value"] == 0.5
    assert split.with_duplicate["wilson_95"] == list(wilson_interval(3, 4))
    assert split.difference == pytest.approx(0.25)
    assert split.difference_newcombe_95 == difference_interval(3, 4, 2, 4)
    assert audit.accuracy_split("m", correct, np.zeros(8, bool)).difference is None


def test_the_audit_folder_holds_no_replication_records(tmp_path):
    record = {"provenance": {"created_utc": "2026-01-01T00:00:00Z", "git_commit": "abcdef0123"}}
    from fer_common.records import write_new_json

    write_new_json(tmp_path / audit.AUDIT_FOLDER, "fer2013-duplicates-x", record)
    assert load_records(tmp_path) == []


@pytest.mark.slow
@requires_dataset("fer2013")
def test_real_fer2013_subset_finds_its_exact_duplicates_and_writes_a_section(tmp_path):
    from fer_common.data import load_dataset

    dataset = load_dataset("fer2013", progress=False)
    subset = dataset.subset(np.r_[np.arange(0, 28709, 10), np.arange(28709, len(dataset), 4)])
    result = audit.audit_fer2013(output_dir=tmp_path, dataset=subset)
    record = result.record
    assert result.path.parent == tmp_path and result.figure.is_file()
    assert sum(row["pairs"] for row in record["pairs"]) == sum(record["distance_histogram"].get(d, 0) for d in "0246")
    assert (
        record["model_check"]["models"][0]["with_duplicate"]["n"]
        + record["model_check"]["models"][0]["without_duplicate"]["n"]
        == int((subset.meta["split"] == "PrivateTest").sum()) - record["blank"]["images"]["PrivateTest"]
    )
    assert "## FER2013 duplicates" in audit_markdown(record)
