"""The model shipped in the package (fer_common/pretrained/neamtiu.keras, from `make ship-neamtiu`): it loads
with no trained models around, is the Neamtiu CNN, scores on PrivateTest what its metadata says, and
`fer-replicate predict` works with it right after set-up."""

import pytest

from fer_common import bundles
from fer_common.cli import main
from fer_common.data.fer2013 import CLASS_NAMES

from .helpers import requires_dataset, shared_data_dir

SHIPPED = bundles.PACKAGE_BUNDLES_DIR / "neamtiu.keras"
pytestmark = pytest.mark.skipif(not SHIPPED.is_file(), reason="no model shipped yet: `make ship-neamtiu`")


@pytest.fixture
def no_trained_models(monkeypatch, tmp_path):
    """As on a fresh clone: FER_MODELS_DIR holds nothing, so only the package's own model can be found."""
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "empty"))


def test_the_shipped_model_is_the_default_and_is_the_neamtiu_cnn(no_trained_models):
    assert bundles.default_bundle_name() == "neamtiu"
    bundle = bundles.load_bundle("neamtiu")
    assert bundle.path == SHIPPED.resolve()
    assert bundle.class_names == list(CLASS_NAMES)
    assert bundle.preprocessing == bundles.Preprocessing(size=48, channels=1, scale="unit")
    assert bundle.model.count_params() == 2_345_607
    assert SHIPPED.stat().st_size < 12_000_000, "the shipped file should hold the weights only"
    source = bundle.source
    assert source["replication"] == "neamtiu" and source["setting"] == "clean_protocol"
    # The run publishes its best seed as `neamtiu-clean_protocol`, chosen on PublicTest, never on PrivateTest.
    assert source["shipped_from"] == "neamtiu-clean_protocol"
    assert source["selected_on"] == "PublicTest accuracy"
    assert source["scored_on"].startswith("PrivateTest") and 0 < source["accuracy"] < 1


@requires_dataset("fer2013")
def test_the_shipped_model_scores_on_private_test_what_its_metadata_says(no_trained_models):
    from fer_common.data import load_dataset

    private = load_dataset("fer2013").split("PrivateTest")
    bundle = bundles.load_bundle("neamtiu")
    inputs = bundle.preprocessing.apply(private.images)  # what Bundle.predict does, in batches
    predicted = bundle.model.predict(inputs, batch_size=512, verbose=0).argmax(axis=1)
    accuracy = float((predicted == private.labels).mean())
    # Another thread count may add sums in another order and flip a near-tie or two.
    assert accuracy == pytest.approx(bundle.source["accuracy"], abs=2 / len(private.labels))


@requires_dataset("cfd")
def test_predict_on_a_cfd_photo_with_the_shipped_model(no_trained_models, capsys):
    photo = sorted((shared_data_dir() / "cfd").glob("*.jpg"))[0]
    assert main(["predict", str(photo)]) == 0
    printed = capsys.readouterr().out
    assert f"model: {SHIPPED.resolve()}" in printed
    (row,) = [line for line in printed.splitlines() if line.startswith(str(photo))]
    assert any(name in row.split() for name in CLASS_NAMES)
