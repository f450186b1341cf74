"""Chen replication: the model as described, determinism, and the full protocol against the recorded band."""

import numpy as np
import pytest

from replications.chen.replication import anger_false_positive_rate, build_model

from .helpers import requires_dataset


def test_model_matches_the_paper_layer_by_layer():
    model = build_model()
    # conv 5x5x3x6+6, conv 5x5x6x16+16, conv 3x3x16x64+64, dense 576x128+128, dense 128x7+7 (hand-computed)
    assert model.count_params() == 456 + 2416 + 9280 + 73856 + 903 == 86911
    assert [layer.__class__.__name__ for layer in model.layers] == [
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dropout",
        "Dense",
    ]


def test_anger_false_positive_rate_counts_only_non_anger_images():
    y_true = np.array([0, 0, 1, 2, 3, 4])
    y_pred = np.array([1, 0, 0, 2, 0, 4])
    assert anger_false_positive_rate(y_true, y_pred, anger_index=0) == pytest.approx(2 / 4)


def _quick_accuracy(seed):
    from fer_common.registry import REPLICATIONS
    from fer_common.runner import run_replication

    record, _ = run_replication(REPLICATIONS.get("chen"), "quick", seeds=[seed], write=False, make_plots=False)
    return record.settings["random_split"].seeds[str(seed)].metrics


@requires_dataset("ckplus48")
def test_same_seed_gives_the_same_numbers():
    first, second = _quick_accuracy(3), _quick_accuracy(3)
    assert first["accuracy"] == second["accuracy"]
    assert first["loss"] == pytest.approx(second["loss"], abs=1e-12)


@pytest.mark.slow
@requires_dataset("ckplus48")
def test_chen_ci_profile_seed_0_lands_in_its_regression_bands():
    """The full protocol on the paper's split, one seed, against `regression:` (every recorded ci seed and CPU kind)."""
    from fer_common.metadata import load_metadata
    from fer_common.registry import REPLICATIONS
    from fer_common.regression import check_regression_run
    from fer_common.runner import run_replication

    record, _ = run_replication(REPLICATIONS.get("chen"), "ci", seeds=[0], write=False, make_plots=False)
    problems = check_regression_run(load_metadata("chen"), "ci", record)
    assert not problems, "\n".join(problems)
