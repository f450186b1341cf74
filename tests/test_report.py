"""The report's words: verdicts with direction and size, values without a meaningless ± 0.0."""

import subprocess
import sys

import pytest

from fer_common.bands import BELOW, BEYOND_PAPER, PROXY, REPRODUCED
from fer_common.report import ResultRow, claim_text, ours_text, verdict_text, where_short
from fer_common.schema import BandEntry
from fer_common.tables import STATUS_END, STATUS_START, with_status

from .helpers import REPO_ROOT


def _row(**changes) -> ResultRow:
    values = {
        "metric": "accuracy",
        "setting": "random_split",
        "kind": "proportion",
        "group": None,
        "better": None,
        "reported": 0.8325,
        "n_test": 197,
        "where": "Table 1 (0.8324872851371765)",
        "mean": 0.9096,
        "sd": 0.0184,
        "n_seeds": 5,
        "ci": (0.862, 0.942),
        "band": BandEntry(low=0.78, high=0.885, half_width=0.0525, terms={}, binding="sampling"),
        "verdict": "not reproduced (above)",
        "position": "above",
        "note": "",
    }
    return ResultRow(**{**values, **changes})


def test_verdict_gives_direction_and_size_in_points():
    assert verdict_text(_row()) == "not reproduced: ours 7.7 points higher"
    assert verdict_text(_row(mean=0.825, verdict=REPRODUCED)) == "reproduced: ours 0.8 points lower"


def test_verdict_of_a_loss_says_lower_is_better():
    loss = _row(metric="loss", kind="value", better="lower", reported=0.5008, mean=0.2596, verdict=BELOW)
    assert verdict_text(loss) == "not reproduced: ours 0.241 lower (lower = better)"
    rate = _row(metric="anger_false_positive_rate", better="lower", reported=0.13, mean=0.0176, verdict=BELOW)
    assert verdict_text(rate) == "not reproduced: ours 11.2 points lower (lower = better)"


def test_proxy_verdict_is_informative_only():
    row = _row(mean=0.7358, verdict=PROXY, position="inside")
    assert verdict_text(row) == "proxy data, no verdict: ours 9.7 points lower, inside the band"


def test_deterministic_or_single_seed_result_shows_no_plus_minus_zero():
    reference = _row(reported=None, group="reference model", mean=0.6587, sd=0.0, n_seeds=3, verdict=BEYOND_PAPER)
    assert "±" not in ours_text(reference) and "deterministic" in ours_text(reference)
    assert ours_text(_row(sd=None, n_seeds=1)) == "91.0% [86.2, 94.2] (1 seed)"
    assert ours_text(_row()) == "91.0 ± 1.8% [86.2, 94.2]"


def test_claim_and_place_in_words():
    assert claim_text(_row(metric="recall/anger")) == "recall of anger (random split)"
    assert claim_text(_row(metric="confusion/contempt->happy", setting="baseline")) == (
        "contempt predicted as happy (baseline)"
    )
    assert where_short("Section 3.2: 57% of sadness correctly classified") == "Section 3.2"
    assert where_short("Table 1 (0.8324872851371765)") == "Table 1"


def test_with_status_replaces_only_between_markers():
    readme = f"top\n{STATUS_START}\nold\n{STATUS_END}\nbottom\n"
    assert with_status(readme, "| new |\n") == f"top\n{STATUS_START}\n| new |\n{STATUS_END}\nbottom\n"
    with pytest.raises(ValueError, match="markers"):
        with_status("no markers here\n", "| new |\n")


def test_rendering_every_page_imports_no_tensorflow():
    """The report reads records and metadata only: `make all-tables` and `make check` work without the training
    stack (a fresh interpreter, since this test session has imported TensorFlow already)."""
    script = (
        "import sys\n"
        "from fer_common.checks import check_records\n"
        "from fer_common.tables import generated_files\n"
        "generated_files()\n"
        "check_records()\n"
        "loaded = sorted(name for name in ('tensorflow', 'keras') if name in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
